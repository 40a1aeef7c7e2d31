#!/usr/bin/env bash
# The README's loss table: one model trained with each --loss at its usual
# settings for the same number of epochs (seed 1, CPU path), measured with
# the built-in classifier after the last epoch. Usage:
#   scripts/loss_table.sh [MODEL] [EPOCHS] [OUT]     (default vanilla 10 runs/losses)
# Prints one row per loss: FID, classifier score, coverage, seconds of training.
set -euo pipefail
model=${1:-vanilla}; epochs=${2:-10}; out=${3:-runs/losses}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${GAN_GPU:-$here/target/release/gan-gpu}
mkdir -p "$out"
echo "| loss | FID | score | coverage | seconds |"
echo "|---|---|---|---|---|"
for loss in bce lsgan hinge wgan wgan-gp; do
  dir="$out/$model-$loss"
  "$bin" train --backend cpu --model "$model" --loss "$loss" --epochs "$epochs" --seed 1 \
    --sample-every "$epochs" --eval-every "$epochs" --quiet --out "$dir" > "$dir.log" 2>&1
  # The last metrics row: seconds summed over the epochs, the last epoch's figures.
  awk -F, -v loss="$loss" 'NR > 1 { s += $7; fid = $9; score = $10; cov = $11 }
    END { printf "| %s | %s | %s | %s | %.0f |\n", loss, fid, score, cov, s }' "$dir/metrics.csv"
done
