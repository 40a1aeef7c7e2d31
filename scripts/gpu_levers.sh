#!/usr/bin/env bash
# The GPU levers on whatever adapter is present (here: Mesa lavapipe/llvmpipe):
# matmul variant per API, then steps per submit and the progress sync on a
# small batch where per-step overheads weigh most. Usage: scripts/gpu_levers.sh [ROUNDS]
set -euo pipefail
rounds=${1:-2}
bin=$(cd "$(dirname "$0")/.." && pwd)/target/release/gan-gpu
echo "machine: $(nproc) cores; $(uptime)"
ps aux --sort=-%cpu | awk 'NR>1 && $3>20 {print "busy: " $3 "% " substr($0, index($0,$11), 80)}'
for r in $(seq 1 "$rounds"); do
  for api in vulkan gl; do
    for m in tiled direct; do
      "$bin" bench --backend $api --model vanilla --synthetic --warmup 1 --steps 3 --matmul $m | tail -1 | sed "s/^/matmul=$m: /"
    done
  done
done
for sps in 1 32 128; do
  for sync in 1 128; do
    "$bin" bench --backend vulkan --model vanilla --batch-size 8 --synthetic --warmup 8 --steps 128 \
      --steps-per-submit $sps --sync-every $sync | tail -1 | sed "s/^/steps_per_submit=$sps sync_every=$sync: /"
  done
done
echo "after: $(uptime)"
