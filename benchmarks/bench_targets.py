"""Per-sample cost of every training target at 32x256x256 (a FIB-25 crop), beside the peers.

Ours (``nj.targets``, NumPy in -> CPU) against gunpowder's ``seg_to_affgraph`` (the function its
``AddAffinities`` node calls) and lsds' ``get_local_shape_descriptors``, measured in the same run
on the same crop. The peers live in their own virtual environment (they pin other NumPy/SciPy
versions and pull gunpowder's dependencies), made once with

    python3.12 -m venv benchmarks/peers/.venv-targets
    benchmarks/peers/.venv-targets/bin/pip install numpy scipy gunpowder cython setuptools wheel
    benchmarks/peers/.venv-targets/bin/pip install --no-build-isolation lsds==0.1.3

and run from here in a subprocess; their outputs come back and are compared with ours (the
affinities bitwise, the LSDs to 1e-4). Without that venv the peer rows say so. GPU rows (CuPy
in -> our kernels) run where CuPy sees a CUDA device and are marked unmeasured elsewhere.

    .venv/bin/python benchmarks/bench_targets.py [--repeats 3] [--lsd-repeats 1] [--out FILE]

The crop is fib25_sample2.npz groundtruth[:32] (32x250x250, 10 nm isotropic) padded by
reflection to 32x256x256; LSD sigma 80 nm, the long-range affinities of ``nj.targets.LONG_RANGE``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import neurons_jax as nj  # noqa: E402

PEER_PY = ROOT / "benchmarks" / "peers" / ".venv-targets" / "bin" / "python"
DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))
VS = (10, 10, 10)
SIGMA = (80.0, 80.0, 80.0)

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
from gunpowder.nodes.add_affinities import seg_to_affgraph
from lsd.train.local_shape_descriptor import get_local_shape_descriptors
d = np.load(sys.argv[1]); seg, offs = d["seg"], d["offsets"]
reps, lreps = int(sys.argv[3]), int(sys.argv[4])
res = {}
t = []
for _ in range(reps):
    t0 = time.perf_counter(); aff = seg_to_affgraph(seg, offs); t.append(time.perf_counter() - t0)
res["gunpowder seg_to_affgraph"] = t
t = []
for _ in range(lreps):
    t0 = time.perf_counter()
    lsd = get_local_shape_descriptors(seg, tuple(d["sigma"]), voxel_size=tuple(int(v) for v in d["vs"]))
    t.append(time.perf_counter() - t0)
res["lsds get_local_shape_descriptors"] = t
np.savez(sys.argv[2], aff=aff.astype(np.uint8), lsd=lsd)
print(json.dumps(res))
"""


def crop() -> np.ndarray:
    seg = np.load(DATA / "fib25_sample2.npz")["groundtruth"][:32]
    return np.ascontiguousarray(np.pad(seg, ((0, 0), (3, 3), (3, 3)), mode="reflect"))


def timed(f, repeats: int) -> tuple[list[float], object]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return times, out


def ours(seg: np.ndarray, repeats: int, lsd_repeats: int, xp=np, sync=lambda: None) -> dict:
    s = xp.asarray(seg)
    u = nj.targets.PointPrompts(n_pos=5, n_neg=5).draw(np.random.default_rng(0))
    jobs = {
        "affinities (8 long-range offsets)": (lambda: nj.targets.affinities(s, nj.targets.LONG_RANGE), repeats),
        "boundaries (width 1, thick)": (lambda: nj.targets.boundaries(s), repeats),
        "distance (multi-label EDT, nm)": (lambda: nj.targets.distance(s, VS), repeats),
        "distance clip 100 nm + normalize": (lambda: nj.targets.distance(s, VS, clip=100.0, normalize=True), repeats),
        "local_shape_descriptors (sigma 80 nm)": (lambda: nj.targets.local_shape_descriptors(s, SIGMA, VS), lsd_repeats),
        "point_prompts (5 + 5)": (lambda: nj.targets.point_prompts(s, None, 5, 5, u), repeats),
    }
    res, outs = {}, {}
    for name, (f, n) in jobs.items():
        f()  # warm-up: Numba / kernel compile, caches
        sync()

        def run(f=f):
            out = f()
            sync()
            return out

        res[name], outs[name] = timed(run, n)
    return res, outs


def peers(seg: np.ndarray, repeats: int, lsd_repeats: int):
    if not PEER_PY.exists():
        return {"peers": f"not measured: {PEER_PY} does not exist (see this script's docstring)"}, None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, seg=seg, offsets=np.array(nj.targets.LONG_RANGE), sigma=np.array(SIGMA), vs=np.array(VS))
        p = subprocess.run([str(PEER_PY), "-c", PEER_SCRIPT, str(src), str(dst), str(repeats), str(lsd_repeats)],
                           capture_output=True, text=True, timeout=3600)
        if p.returncode != 0:
            return {"peers": f"failed: {p.stderr.strip().splitlines()[-1:]}"}, None
        out = np.load(dst)
        return json.loads(p.stdout.strip().splitlines()[-1]), {k: out[k] for k in out.files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lsd-repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    seg = crop()
    info = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
            "crop": f"fib25_sample2 groundtruth[:32] reflect-padded to {seg.shape}, {len(np.unique(seg))} ids",
            "command": "benchmarks/bench_targets.py " + " ".join(sys.argv[1:])}
    rows = {}
    cpu, outs = ours(seg, a.repeats, a.lsd_repeats)
    for k, v in cpu.items():
        rows[f"ours CPU: {k}"] = v
    peer, pouts = peers(seg, a.repeats, a.lsd_repeats)
    for k, v in peer.items():
        rows[k] = v
    checks = {}
    if pouts is not None:
        aff = outs["affinities (8 long-range offsets)"][0]
        checks["affinities == gunpowder (bitwise)"] = bool(np.array_equal(np.moveaxis(aff, -1, 0), pouts["aff"]))
        lsd = outs["local_shape_descriptors (sigma 80 nm)"]
        checks["LSD max |ours - lsds|"] = float(np.abs(np.moveaxis(lsd, -1, 0) - pouts["lsd"]).max())
    try:
        from neurons_jax.backend import gpu_available

        gpu = gpu_available()
    except Exception:  # noqa: BLE001
        gpu = False
    if gpu:
        import cupy

        g, _ = ours(seg, a.repeats, a.repeats, cupy, cupy.cuda.runtime.deviceSynchronize)
        for k, v in g.items():
            rows[f"ours GPU: {k}"] = v
    else:
        rows["ours GPU: every target"] = "unmeasured here (no CUDA GPU): run on a GPU machine"
    table = {k: (f"{statistics.median(v) * 1e3:.1f} ms (median of {len(v)})" if isinstance(v, list) else v)
             for k, v in rows.items()}
    result = {**info, "rows": table, "checks": checks}
    print(json.dumps(result, indent=1))
    if a.out:
        write_json(a.out, result, indent=1)


if __name__ == "__main__":
    main()
