#!/usr/bin/env bash
# The peers' own venvs for benchmarks/bench_peers.py, next to this script (benchmark only: the
# package and its tests never need them). Idempotent: a venv with its .installed stamp is kept.
#   .venv-gunpowder  gunpowder 1.5.0 (needs Python >= 3.12), zarr 3
#   .venv-torch-em   torch-em 0.10.9 with python-elf from PyPI (no vigra/nifty needed for the
#                    default segmentation loader); torch 2.14.1 + torchvision 0.29.1 (torch_em
#                    imports torchvision; PyPI's torchvision does not load beside the CPU torch
#                    2.13.0 build; 2.14.1 is a CUDA build, run on the CPU here, ~5.5 GB)
#   .venv-monai      MONAI 1.6.1 + torch 2.13.0 (the CPU build where pip finds it on disk)
# PY311 / PY312 name the interpreters (default: python3.11 / python3.12 / pyenv's 3.12).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

find_python() {  # $1 = version, e.g. 3.12
    local v="$1" c
    for c in "python$v" "$(command -v pyenv >/dev/null 2>&1 && pyenv root || echo /root/.pyenv)"/versions/"$v"*/bin/python; do
        # a pyenv shim exists but may not run: ask the interpreter itself
        if "$c" -c "import sys; assert sys.version.startswith('$v')" >/dev/null 2>&1; then
            "$c" -c "import sys; print(sys.executable)"; return 0
        fi
    done
    return 1
}

make_venv() {  # $1 = name, $2 = python, rest = pip requirements
    local dir="$HERE/.venv-$1" py="$2"; shift 2
    if [ -f "$dir/.installed" ]; then echo "peers: $dir present"; return 0; fi
    echo "peers: creating $dir ($("$py" -V 2>&1)): $*"
    rm -rf "$dir"
    "$py" -m venv "$dir" || return 1
    "$dir/bin/python" -m pip install -q --upgrade pip || return 1
    "$dir/bin/python" -m pip install -q "$@" || return 1
    touch "$dir/.installed"
}

PY311="${PY311:-$(find_python 3.11 || true)}"
PY312="${PY312:-$(find_python 3.12 || true)}"
status=0
if [ -n "$PY312" ]; then
    make_venv gunpowder "$PY312" gunpowder==1.5.0 "zarr>=3" || status=1
else
    echo "peers: no Python 3.12 found (gunpowder 1.5.0 requires >= 3.12; set PY312=...): gunpowder skipped" >&2
    status=1
fi
if [ -n "$PY311" ]; then
    make_venv torch-em "$PY311" torch==2.14.1 torchvision==0.29.1 torch-em==0.10.9 || status=1
    make_venv monai "$PY311" torch==2.13.0 monai==1.6.1 || status=1
else
    echo "peers: no Python 3.11 found (set PY311=...): torch-em and MONAI skipped" >&2
    status=1
fi
exit $status
