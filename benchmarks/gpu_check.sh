#!/usr/bin/env bash
# One command for a machine with a GPU: the gpu tests on real CuPy, then every GPU benchmark row.
#
#   make gpu-check OUT=DIR [WHEELS=DIR] [DATA=DIR]
#
# OUT receives gpu_check.json (tests summary + every row) and gpu_check.log. WHEELS: a folder of
# the wheels in benchmarks/gpu_wheels.txt (made by benchmarks/gpu_wheels.sh), installed with
# --no-index where there is no package access. DATA: a folder with the ../shared/data files
# (pinky40_seg_256.npz, fib25_sample2.npz, ...), when ../shared/data is not beside the checkout.
# Sized for an H100/H200 to finish within 8 minutes: the four steps are limited to 170 + 110 + 60 +
# 110 s (7.5 min) on top of the install.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_check.sh OUT_DIR [WHEELS_DIR] [DATA_DIR]}
wheels=${2:-}
data=${3:-}
mkdir -p "$out"
log="$out/gpu_check.log"
work=$(mktemp -d)
py=python3
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" "$wheels"/*.whl || exit 1
  export PYTHONPATH="$work/site"
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NJ_REQUIRE_CUDA=1
[ -n "$data" ] && export NEURONS_JAX_SHARED_DATA="$data"
{
  echo "== gpu-check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  $py -c "import cupy, jax; print('cupy', cupy.__version__, 'jax', jax.__version__, jax.devices())"
  echo "== pytest -m gpu (real CuPy)"
  timeout 170 $py -m pytest -m gpu -q -p no:cacheprovider --junitxml="$work/tests.xml"
  echo "pytest rc=$?"
  echo "== label ops (512^3)"
  timeout 110 $py benchmarks/bench_labels.py --size 512 --loop 64 --repeats 3 --out "$work/labels.json"
  echo "== augmentation"
  timeout 60 $py benchmarks/bench_augment.py --skip-monai --n 8 --gpu-batch 64 --gpu-batches 10 --out "$work/augment.json"
  echo "== device stage and loader"
  timeout 110 $py benchmarks/bench_gpu.py --out "$work/stage.json"
} 2>&1 | tee "$log"
$py - "$work" "$out/gpu_check.json" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
work, dst = Path(sys.argv[1]), Path(sys.argv[2])
res = {}
x = work / "tests.xml"
if x.exists():
    s = ET.parse(x).getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    res["tests"] = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
for name in ("labels", "augment", "stage"):
    f = work / f"{name}.json"
    res[name] = json.loads(f.read_text()) if f.exists() else "not produced (see gpu_check.log)"
tmp = dst.with_suffix(".tmp")
tmp.write_text(json.dumps(res, indent=1))
tmp.replace(dst)
print("wrote", dst, "tests:", res.get("tests"))
PY
rm -rf "$work"
