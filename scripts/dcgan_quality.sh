#!/usr/bin/env bash
# The dcgan quality comparison of the README: gan-gpu's CPU path and the
# PyTorch twin train the same model for the same epochs (seed 1), one after
# the other, then `gan-gpu eval` scores both: gan-gpu's checkpoint, and the
# twin's 10,000 samples through `eval --images`. Usage:
#   scripts/dcgan_quality.sh PYTHON [EPOCHS] [OUT]
# PYTHON: an interpreter with torch and numpy (and Pillow, for the twin grid). OUT (default runs/dcgan_quality)
# gets gan/ (the gan-gpu run), torch_samples.npy, torch_grid.png and the
# logs; the figures are printed at the end.
set -euo pipefail
py=${1:?python with torch}; epochs=${2:-5}; out=${3:-runs/dcgan_quality}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${GAN_GPU:-$here/target/release/gan-gpu}
mkdir -p "$out"
echo "gan-gpu: $epochs epochs, started $(date -u +%FT%TZ)"
start=$(date +%s)
"$bin" train --backend cpu --model dcgan --epochs "$epochs" --seed 1 \
  --sample-every 1 --eval-every 1 --out "$out/gan" > "$out/gan.log" 2>&1
echo "gan-gpu: done in $(( $(date +%s) - start )) s"
echo "torch: $epochs epochs, started $(date -u +%FT%TZ)"
start=$(date +%s)
"$py" "$here/scripts/torch_dcgan.py" --device cpu --epochs "$epochs" --seed 1 \
  --samples 10000 --out-samples "$out/torch_samples.npy" \
  --out-grid "$out/torch_grid.png" > "$out/torch.log" 2>&1
echo "torch: done in $(( $(date +%s) - start )) s"
echo "--- gan-gpu (its checkpoint, running statistics)"
"$bin" eval --backend cpu --checkpoint "$out/gan/checkpoint.safetensors" | tee "$out/gan_eval.txt"
echo "--- torch twin (its samples)"
"$bin" eval --backend cpu --images "$out/torch_samples.npy" | tee "$out/torch_eval.txt"
