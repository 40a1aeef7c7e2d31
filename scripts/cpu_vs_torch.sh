#!/usr/bin/env bash
# Interleaved rounds of the PyTorch CPU peer and `gan-gpu bench --backend cpu`,
# so both see the same machine load: each round runs torch and gan-gpu with
# the default thread counts, then both limited to one thread. Usage:
#   scripts/cpu_vs_torch.sh PYTHON [ROUNDS] [MODEL] [BATCH] [STEPS] [GAN_GPU...]
# PYTHON: an interpreter with torch. GAN_GPU: one or more gan-gpu binaries to
# time side by side (default target/release/gan-gpu), e.g. before and after.
set -euo pipefail
py=${1:?python with torch}; rounds=${2:-3}; model=${3:-vanilla}; batch=${4:-100}; steps=${5:-300}
shift $(( $# < 5 ? $# : 5 ))
here=$(cd "$(dirname "$0")/.." && pwd)
bins=("$@"); [ ${#bins[@]} -gt 0 ] || bins=("$here/target/release/gan-gpu")
torch_gan=${TORCH_GAN:-/work/shared/bench/torch_gan.py}
echo "machine: $(nproc) cores; $(uptime)"
ps aux --sort=-%cpu | awk 'NR>1 && $3>20 {print "busy: " $3 "% " substr($0, index($0,$11), 80)}'
for r in $(seq 1 "$rounds"); do
  for threads in default 1; do
    targ=(); menv=()
    if [ "$threads" = 1 ]; then targ=(--threads 1); menv=(MATMUL_NUM_THREADS=1); fi
    echo "--- round $r threads=$threads"
    "$py" "$torch_gan" --mnist "$here/data/mnist" --device cpu --model "$model" --batch "$batch" --steps "$steps" "${targ[@]}" | tail -1 | sed 's/^/torch: /'
    for b in "${bins[@]}"; do
      env "${menv[@]}" "$b" bench --backend cpu --model "$model" --batch-size "$batch" --warmup 20 --steps "$steps" | tail -1 | sed "s|^|$(basename "$b"): |"
    done
  done
done
echo "after: $(uptime)"
