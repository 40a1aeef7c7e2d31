#!/usr/bin/env bash
# GPU benchmarks on a lent device machine, gan-gpu beside its PyTorch peers in one command.
#
# Expects, in the repository root on the device (see BENCHMARKS.md for how
# they are prepared and carried):
#   .gl/*.deb                 the Vulkan/EGL loaders (device README)
#   .devrun/gan-gpu           the release binary, built on the developer machine
#   .devrun/matmul-bench      the criterion matmul bench binary (cargo bench --no-run)
#   .devrun/torch_gan.py      ../shared/bench/torch_gan.py
#   .devrun/tests/*           the GPU test binaries (parity on the real GPU)
# scripts/device_prepare.sh makes all of these.
# Usage: scripts/device_bench.sh [SECTION...]
#   sections: info parity vanilla deep epochs matmul variants profile matmul_sizes levers gl
#             dcgan dcgan_epochs
#   (default: all but parity and the two dcgan sections; the dcgan sections
#   were written on the developer machine and have not yet run on a device)
# Writes the full log to $OUT/device_bench.log when OUT is set.
set -u
cd "$(dirname "$0")/.."
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export PYTHONUNBUFFERED=1 TORCH_GAN_DIR=.devrun
GAN=${GAN:-.devrun/gan-gpu}
MNIST=data/mnist
LOG=${OUT:-/tmp}/device_bench.log
sections=${*:-info vanilla deep epochs matmul variants profile matmul_sizes levers gl}

say() { echo "== $*" | tee -a "$LOG"; }
run() { timeout "${LIMIT:-120}" "$@" 2>&1 | tee -a "$LOG" | tail -1; }
torch_eager() { run python3 .devrun/torch_gan.py --mnist $MNIST --device cuda "$@"; }
torch_graphs() { run python3 scripts/torch_gan_graphs.py --mnist $MNIST "$@"; }
bench() { run $GAN bench "$@"; }

for s in $sections; do
    case $s in
    info)
        say info
        nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv 2>&1 | tee -a "$LOG"
        python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$LOG"
        $GAN info 2>&1 | tee -a "$LOG"
        ;;
    vanilla)
        nvidia-smi --query-gpu=clocks.sm,clocks.mem,utilization.gpu,power.draw --format=csv,noheader -lms 1000 >"$LOG.clocks" 2>&1 &
        smi=$!
        for r in 1 2; do
            say "vanilla batch 100, round $r"
            bench --backend vulkan --model vanilla --batch-size 100 --warmup 200 --steps 3000
            torch_eager --model vanilla --batch 100 --steps 2000
            torch_graphs --model vanilla --batch 100 --steps 3000
        done
        kill $smi 2>/dev/null
        echo "GPU clocks while the vanilla rounds ran (sm, mem, utilization, power):" | tee -a "$LOG"
        sort "$LOG.clocks" | uniq -c | sort -rn | head -5 | tee -a "$LOG"
        if [ -n "${COMPILE:-}" ]; then
            say "vanilla, torch.compile"
            LIMIT=240 torch_eager --model vanilla --batch 100 --steps 2000 --compile
        fi
        ;;
    levers)
        for sps in 1 8 32 128 512; do
            say "vanilla steps per submit $sps"
            bench --backend vulkan --model vanilla --warmup 200 --steps 3000 --steps-per-submit $sps
        done
        say "vanilla batch 8 (per-step overhead floor)"
        bench --backend vulkan --model vanilla --batch-size 8 --warmup 200 --steps 3000
        say "vanilla sync every 128"
        bench --backend vulkan --model vanilla --warmup 200 --steps 3000 --sync-every 128
        ;;
    deep)
        for b in 100 1024; do
            say "deep batch $b"
            bench --backend vulkan --model deep --batch-size $b --warmup 100 --steps 1000
            torch_eager --model deep --batch $b --steps 1000
            torch_graphs --model deep --batch $b --steps 1000
        done
        ;;
    variants)
        # Every GPU matmul variant on each model size (direct only where it finishes quickly).
        for case in "vanilla 100" "deep 100" "deep 1024"; do
            set -- $case
            for v in auto tiled split blocked64 blocked128; do
                say "variant $v, $1 batch $2"
                LIMIT=60 bench --backend vulkan --model $1 --batch-size $2 --warmup 50 --steps 500 --matmul $v
            done
        done
        ;;
    profile)
        for case in "vanilla 100" "deep 1024"; do
            set -- $case
            say "profile $1 batch $2"
            $GAN bench --backend vulkan --model $1 --batch-size $2 --warmup 50 --steps 200 --profile 60 2>&1 | tee -a "$LOG" | grep -E "^ +[0-9]+ |profile summary|^bench "
        done
        ;;
    parity)
        # The GPU tests on the real GPU: kernels, whole-step parity with the
        # CPU (every matmul variant), the profile. CI=true: no skipping.
        for t in .devrun/tests/*; do
            say "test $(basename "$t")"
            CI=true GAN_GPU_TEST_API=vulkan LIMIT=300 run "$t" --test-threads 1
        done
        ;;
    gl)
        say "vanilla on GL"
        bench --backend gl --model vanilla --warmup 200 --steps 3000
        ;;
    matmul)
        for v in blocked128 blocked64; do
            say "matmul 4096^3, gan-gpu $v (criterion)"
            GAN_GPU_BENCH_MATMUL=$v GAN_GPU_BENCH_QUICK=1 GAN_GPU_BENCH_NO_CPU=1 GAN_GPU_BENCH_LARGE=1 LIMIT=200 \
                run .devrun/matmul-bench --bench '/4096x4096x4096'
            grep -A2 "gpu-vulkan-$v/4096x4096x4096\$" "$LOG" | grep -E 'thrpt' | tail -3
        done
        say "matmul, cuBLAS FP32 (TF32 off) at the same sizes"
        run python3 -c "
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
def t(m, k, n, reps):
    a = torch.randn(m, k, device='cuda'); b = torch.randn(k, n, device='cuda')
    for _ in range(5): a @ b
    torch.cuda.synchronize(); s = time.perf_counter()
    for _ in range(reps): a @ b
    torch.cuda.synchronize(); dt = (time.perf_counter() - s) / reps
    print(f'cublas fp32 {m}x{k}x{n}: {dt*1e6:.1f} us {2*m*k*n/dt/1e9:.0f} GFLOP/s')
for m, k, n in [(100,128,256),(100,256,784),(200,784,256),(128,1024,784),(256,784,1024)]:
    t(m, k, n, 2000)
t(4096, 4096, 4096, 50)
" 2>&1 | tee -a "$LOG"
        ;;
    matmul_sizes)
        say "matmul at the model sizes, gan-gpu auto (criterion)"
        GAN_GPU_BENCH_QUICK=1 GAN_GPU_BENCH_NO_CPU=1 LIMIT=200 run .devrun/matmul-bench --bench gpu
        grep -E '^linear_|thrpt' "$LOG" | grep -B1 thrpt | grep -A1 auto | tail -30
        ;;
    dcgan)
        # The dcgan at its batch of 256 beside PyTorch eager on the same GPU,
        # TF32 off (scripts/torch_dcgan.py, tracked, so it travels).
        for r in 1 2; do
            say "dcgan batch 256, round $r"
            LIMIT=300 bench --backend vulkan --model dcgan --warmup 10 --steps 200
            LIMIT=300 run python3 scripts/torch_dcgan.py --data $MNIST --device cuda --tf32 off --batch 256 --warmup 10 --steps 200
        done
        ;;
    dcgan_epochs)
        # The tutorial's whole run: 50 epochs, then FID and coverage of
        # 10,000 samples drawn with the running statistics.
        say "dcgan, 50 epochs"
        rm -rf /tmp/d50
        t0=$(date +%s%N)
        timeout "${LIMIT:-480}" $GAN train --backend vulkan --model dcgan --quiet --out /tmp/d50 2>&1 | tee -a "$LOG" | tail -3
        echo "wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$LOG"
        tail -2 /tmp/d50/metrics.csv | tee -a "$LOG"
        run $GAN eval --checkpoint /tmp/d50/checkpoint.safetensors
        cp /tmp/d50/*.png "${OUT:-/tmp}/" 2>/dev/null
        ;;
    epochs)
        say "vanilla, 100 epochs"
        rm -rf /tmp/v100
        t0=$(date +%s%N)
        timeout 300 $GAN train --backend vulkan --model vanilla --quiet --out /tmp/v100 2>&1 | tee -a "$LOG" | tail -3
        echo "wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$LOG"
        tail -2 /tmp/v100/metrics.csv | tee -a "$LOG"
        ;;
    esac
done
