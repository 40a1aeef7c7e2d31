#!/usr/bin/env bash
# Fetches Google's emoji from the npm registry (`npm pack
# emoji-datasource-google`) and leaves its 64x64 RGBA PNGs in one folder, an
# unlabelled colour data set for `--model dcgan64`. Never run by the tests.
# Usage: scripts/fetch_emoji.sh [DIR]   (default runs/emoji; the images end up
# in DIR/64, the tarball in DIR/)
set -euo pipefail
dir=${1:-runs/emoji}
mkdir -p "$dir"
cd "$dir"
tarball=$(ls emoji-datasource-google-*.tgz 2>/dev/null | head -n 1 || true)
if [ -z "$tarball" ]; then
  tarball=$(npm pack --silent emoji-datasource-google | tail -n 1)
fi
rm -rf package 64
tar -xzf "$tarball" package/img/google/64
mv package/img/google/64 64
rm -rf package
echo "$(ls 64 | wc -l) images in $(pwd)/64 (from $tarball)"
