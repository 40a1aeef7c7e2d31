#!/usr/bin/env bash
# Prepares what scripts/device_bench.sh needs on a lent GPU machine, here on
# the developer machine (x86-64): the stripped release binary, the criterion
# matmul bench, the GPU test binaries, PyTorch's peer script, and the Vulkan
# loader packages. Everything goes into .devrun/ and .gl/, which are added to
# .git/info/exclude and must be named in the device run's `carry`.
# Usage: scripts/device_prepare.sh [PATH/TO/torch_gan.py]
set -euo pipefail
cd "$(dirname "$0")/.."
torch_gan=${1:-../shared/bench/torch_gan.py}
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for dir in /.devrun/ /.gl/; do
    grep -qxF "$dir" "$exclude" || echo "$dir" >>"$exclude"
done
mkdir -p .devrun/tests .gl
cargo build --release
strip -o .devrun/gan-gpu target/release/gan-gpu
bench=$(cargo bench --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "matmul" and m.get("executable"):
        print(m["executable"])')
strip -o .devrun/matmul-bench "$bench"
rm -f .devrun/tests/*
cargo test --release --no-run --message-format=json \
    --test gpu_ops --test gpu_parity --test gpu_matmul_variants --test gpu_profile 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])' |
    while read -r name exe; do strip -o ".devrun/tests/$name" "$exe"; done
cp "$torch_gan" .devrun/torch_gan.py
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .devrun .gl
