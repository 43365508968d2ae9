"""GPU rows of the device stage and the Loader: ``finish`` per batch and samples/s end to end.

Rows (each on the GPU and, in the same run, on the CPU):
  * ``finish``: the device stage of one batch (warp + defects + intensity, crop, union unpack,
    instance relabelling, boundary growth for MitoEM2 rows) on host batches drawn once;
  * ``boundary_separated_instances`` on a MitoEM2-like 3-class volume;
  * ``loader``: the whole Loader (FIB-25 tiled 2x when ../shared/data has it, else the sample
    workspace), ``device="gpu"`` against ``device="cpu"``, same workers.
Under the cudasim stand-in (``--smoke``) the figures only prove the script runs: never speeds.

    python benchmarks/bench_gpu.py --out gpu_stage.json [--batch 8] [--workers 8] [--smoke --standin]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import neurons_jax as nj  # noqa: E402

DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def timed(fn, repeats: int, sync) -> float:
    fn()
    sync()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def sources(tmp: Path, split="train"):
    fib = DATA / "fib25_sample2.npz"
    if fib.exists():
        from bench_pipeline import load_volume

        img, lab = load_volume(2)
        root = tmp / "fib25"
        nj.datasets.prepare("generic", img, root, label=lab, voxel_size=(10, 10, 10), progress=False)
        return {"fib25": (nj.datasets.generic(str(root), split=split), 1.0)}, "FIB-25 tiled to 250x500x500"
    ws = nj.sample.write_workspace(tmp / "ws")
    return ({k: (getattr(nj.datasets, k)(ws[k]), 1.0) for k in ("snemi3d", "mitoem2")},
            "sample workspace (snemi3d + mitoem2)")


def finish_rows(src, patch, batch, repeats, cp) -> list[dict]:
    from neurons_jax.pipeline import Loader

    loader = Loader(src, patch, batch, seed=0, device="gpu", output="numpy")
    host = loader._reader.open_batch(next(loader._make_iter()))  # footprint boxes, as the workers read them
    host = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}
    bs, boxes = host["instance_classes"], host["box"]
    dev = cp.cuda.Device()
    img, packed = cp.asarray(host["image"]), cp.asarray(host["packed"])
    t_gpu = timed(lambda: nj.stage.finish(img, packed, None, host["params"], patch, bs, boxes=boxes), repeats,
                  dev.synchronize)
    t_cpu = timed(lambda: nj.stage.finish(host["image"], host["packed"], host.get("mask"), host["params"], patch, bs,
                                          boxes=boxes), max(1, repeats // 3), lambda: None)
    loader.close()
    return [{"op": "finish (device stage of one batch)", "batch": batch, "patch": list(patch),
             "gpu_ms": 1e3 * t_gpu, "cpu_one_core_ms": 1e3 * t_cpu, "gpu_over_cpu_core": t_cpu / t_gpu,
             "gpu_samples_per_s": batch / t_gpu}]


def instance_rows(size, repeats, cp) -> list[dict]:
    rng = np.random.default_rng(0)
    sem = rng.choice(np.array([0, 1, 1, 2], np.uint8), size=(size,) * 3)
    d = cp.asarray(sem)
    t_gpu = timed(lambda: nj.ops.boundary_separated_instances(d), repeats, cp.cuda.Device().synchronize)
    t_cpu = timed(lambda: nj.ops.boundary_separated_instances(sem), max(1, repeats // 3), lambda: None)
    return [{"op": "boundary_separated_instances", "voxels": sem.size, "gpu_mvx_s": sem.size / t_gpu / 1e6,
             "cpu_mvx_s": sem.size / t_cpu / 1e6, "gpu_over_cpu": t_cpu / t_gpu}]


def loader_rows(src, patch, batch, workers, n_batches) -> list[dict]:
    from neurons_jax.pipeline import Loader

    rows = []
    for device in ("gpu", "cpu"):
        loader = Loader(src, patch, batch, seed=0, device=device, worker_count=workers)
        for _ in range(max(2, 2 * workers)):
            b = next(loader)
        t = time.perf_counter()
        for _ in range(n_batches):
            b = next(loader)
        b["image"].block_until_ready()
        dt = time.perf_counter() - t
        rows.append({"op": f"loader device={device}", "handover": getattr(loader, "handover", "host"),
                     "batch": batch, "workers": workers, "samples_per_s": n_batches * batch / dt,
                     "timings": loader.timings()})
        loader.close()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the script runs")
    ap.add_argument("--standin", action="store_true", help="run on tests/cudasim (with --smoke, in CI-like runs)")
    a = ap.parse_args(argv)
    if a.standin:
        sys.path.insert(0, str(ROOT / "tests"))
        import cudasim

        cudasim.install()
    from neurons_jax.backend import gpu_available, gpu_unavailable_reason

    if not gpu_available():
        print(f"no GPU: {gpu_unavailable_reason()}")
        return 2
    import cupy as cp
    standin = getattr(cp, "IS_CUDASIM", False)
    patch = (8, 32, 32) if a.smoke else (32, 256, 256)
    batch, workers, n_batches = (2, 0, 2) if a.smoke else (a.batch, a.workers, a.batches)
    repeats = 2 if a.smoke else a.repeats
    info = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
            "gpu": "cudasim stand-in (not a speed figure)" if standin
            else cp.cuda.runtime.getDeviceProperties(0)["name"].decode(),
            "cupy": cp.__version__, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    with tempfile.TemporaryDirectory() as tmp:
        src, info["data"] = sources(Path(tmp)) if not a.smoke else (None, None)
        if src is None:
            ws = nj.sample.write_workspace(Path(tmp) / "ws")
            src = {k: (getattr(nj.datasets, k)(ws[k]), 1.0) for k in ("snemi3d", "mitoem2")}
            info["data"] = "sample workspace (smoke)"
        rows = finish_rows(src, patch, batch, repeats, cp)
        rows += instance_rows(32 if a.smoke else 256, repeats, cp)
        rows += loader_rows(src, patch, batch, workers, n_batches)
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k != "timings"}))
    write_json(a.out, {"info": info, "rows": rows}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
