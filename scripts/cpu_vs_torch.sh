#!/usr/bin/env bash
# Interleaved rounds of the PyTorch CPU peer and `gan-gpu bench --backend cpu`,
# so both see the same machine load. Usage:
#   scripts/cpu_vs_torch.sh PYTHON ROUNDS [MODEL] [BATCH]
# PYTHON is an interpreter with torch; the binary is target/release/gan-gpu.
set -euo pipefail
py=${1:?python with torch}; rounds=${2:-3}; model=${3:-vanilla}; batch=${4:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
torch_gan=${TORCH_GAN:-/work/shared/bench/torch_gan.py}
echo "machine: $(nproc) cores; $(uptime)"
for r in $(seq 1 "$rounds"); do
  echo "--- round $r"
  "$py" "$torch_gan" --mnist "$here/data/mnist" --device cpu --model "$model" --batch "$batch" --steps 500 | tail -1
  "$here/target/release/gan-gpu" bench --backend cpu --model "$model" --batch-size "$batch" --warmup 20 --steps 500 | tail -1
done
echo "after: $(uptime)"
