#!/usr/bin/env bash
# Fetches Google's emoji from the npm registry (`npm pack
# emoji-datasource-google`) and leaves its 64x64 RGBA PNGs in one folder, an
# unlabelled colour data set for `--model dcgan64`, and the same images
# sorted into one subfolder per emoji category (emoji.json's `category`, skin
# tones with their emoji), a labelled one that `gan-gpu eval --data` can
# measure against. Never run by the tests. Needs npm and jq.
# Usage: scripts/fetch_emoji.sh [DIR]   (default runs/emoji; the images end up
# in DIR/64 and, hard-linked, DIR/by-category/CATEGORY/; the tarball in DIR/)
set -euo pipefail
dir=${1:-runs/emoji}
mkdir -p "$dir"
cd "$dir"
tarball=$(ls emoji-datasource-google-*.tgz 2>/dev/null | head -n 1 || true)
if [ -z "$tarball" ]; then
  tarball=$(npm pack --silent emoji-datasource-google | tail -n 1)
fi
rm -rf package 64 by-category
tar -xzf "$tarball" package/img/google/64 package/emoji.json
mv package/img/google/64 64
# Each image with Google artwork, the emoji's own and its skin tones', by category.
jq -r '.[] | .category as $c
  | ([{image, has_img_google}]
     + ((.skin_variations // {}) | to_entries
        | map({image: .value.image, has_img_google: .value.has_img_google})))
  | .[] | select(.has_img_google) | "\($c)\t\(.image)"' package/emoji.json |
  while IFS=$'\t' read -r category image; do
    mkdir -p "by-category/$category"
    ln -f "64/$image" "by-category/$category/$image"
  done
rm -rf package
echo "$(ls 64 | wc -l) images in $(pwd)/64 (from $tarball)"
echo "$(find by-category -type f | wc -l) of them in $(ls by-category | wc -l) categories in $(pwd)/by-category"
