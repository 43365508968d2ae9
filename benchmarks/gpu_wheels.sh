#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu_wheels.txt into DIR, for a GPU machine without package
# access (Python 3.12, manylinux x86_64):  bash benchmarks/gpu_wheels.sh .whl
set -euo pipefail
dir=${1:?usage: gpu_wheels.sh DIR}
mkdir -p "$dir"
grep -v '^#' "$(dirname "$0")/gpu_wheels.txt" | while read -r spec; do
  [ -n "$spec" ] || continue
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$dir" "$spec"
done
ls "$dir"
