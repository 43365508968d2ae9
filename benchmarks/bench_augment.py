"""Augmentation throughput: neurons_jax (CPU, GPU) beside MONAI on (32, 256, 256) patches.

Measures patches/s of image + labels with the full default ``AugmentConfig`` (and with rotation,
scale and elastic forced on: the "elastic path"), on one core (pinned, one thread; rate from the
process CPU time summed over the patches, so other load on the machine does not count) and on all cores (one
pinned single-thread worker process per core, wall clock), plus the GPU when CuPy sees one.
MONAI runs RandFlipd (3 axes), RandRotate90d, Rand3DElasticd, RandGaussianNoised and
RandAdjustContrastd on the same patch in the same run; it is skipped when not installed
(``.venv/bin/pip install torch==2.13.0 monai``: CPU torch, only for this benchmark).

Also measures the CPU cost per sample of the warp by path (planar: 40x4x4 nm voxels; off-plane:
10 nm isotropic draws whose warp leaves the section plane, i.e. 3D elastic) with image uint8 +
labels uint32, and of the image ops (``apply.image_ops``) after it, at 32x128x128 and 32x256x256
with the default config: median CPU ms of ``--path-n`` draws per row (``--paths-only``: just these).

Usage:
    .venv/bin/python benchmarks/bench_augment.py [--n 30] [--monai-n 4] [--gpu-batch 64]
    .venv/bin/python benchmarks/bench_augment.py --paths-only [--path-n 25]
Writes benchmarks/results/augment.json (augment_paths.json with --paths-only) and prints a table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PATCH = (32, 256, 256)
VOXEL = (40.0, 4.0, 4.0)  # CREMI-like anisotropic voxels
SHARED = ROOT.parent / "shared" / "data" / "fib25_sample2.npz"


def make_data(shape, seed=0):
    """uint8 image + uint32 labels of ``shape``: real FIB-25 EM tiled in-plane, else synthetic."""
    if SHARED.exists():
        d = np.load(SHARED)
        reps = [math.ceil(s / n) for s, n in zip(shape, d["image"].shape)]
        img = np.tile(d["image"], reps)[tuple(slice(0, s) for s in shape)]
        lab = np.tile(d["groundtruth"], reps)[tuple(slice(0, s) for s in shape)]
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 500, shape, dtype=np.uint32)


def configs():
    from neurons_jax.augment import AugmentConfig

    return {"default": AugmentConfig(), "elastic_path": AugmentConfig(rotate_prob=1.0, scale_prob=1.0, elastic_prob=1.0)}


def _pin(core):
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def nj_worker(args):
    """Augment ``n`` patches after ``warm`` warm-up ones; per-patch CPU and wall seconds."""
    name, n, warm, seed, core = args
    _pin(core)
    import cv2

    cv2.setNumThreads(1)
    from neurons_jax import augment

    cfg = configs()[name]
    ctx = augment.context_shape(cfg, PATCH, VOXEL)
    img, lab = make_data(ctx)
    rng = np.random.default_rng(seed)
    cpu, wall, t0 = [], [], None
    for i in range(n + warm):
        if i == warm:
            t0 = time.time()
        c, w = time.process_time(), time.perf_counter()
        p = augment.draw(cfg, rng, PATCH, VOXEL)
        out = augment.apply(p, img, lab)
        assert out[0].shape == PATCH
        if i >= warm:
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
    return {"cpu": cpu, "wall": wall, "t0": t0, "t1": time.time(), "context": ctx}


def monai_transform(elastic_prob: float):
    from monai.transforms import (
        Compose,
        Rand3DElasticd,
        RandAdjustContrastd,
        RandFlipd,
        RandGaussianNoised,
        RandRotate90d,
    )

    keys = ["image", "label"]
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=0),
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandFlipd(keys, prob=0.5, spatial_axis=2),
        RandRotate90d(keys, prob=0.5, spatial_axes=(1, 2)),
        Rand3DElasticd(keys, sigma_range=(5, 8), magnitude_range=(50, 150), prob=elastic_prob,
                       rotate_range=(math.pi / 4, 0, 0), scale_range=(0, 0.1, 0.1), spatial_size=PATCH,
                       mode=("bilinear", "nearest"), padding_mode="reflection"),
        RandGaussianNoised(keys=["image"], prob=0.5, std=0.05),
        RandAdjustContrastd(keys=["image"], prob=0.5, gamma=(0.75, 1.33)),
    ])


def monai_worker(args):
    elastic_prob, n, warm, seed, core = args
    _pin(core)
    import torch

    torch.set_num_threads(1)
    t = monai_transform(elastic_prob)
    t.set_random_state(seed)
    img, lab = make_data(PATCH)
    data = {"image": torch.as_tensor(img[None].astype(np.float32) / 255), "label": torch.as_tensor(lab[None].astype(np.float32))}
    cpu, wall, t0 = [], [], None
    for i in range(n + warm):
        if i == warm:
            t0 = time.time()
        c, w = time.process_time(), time.perf_counter()
        out = t(dict(data))
        assert tuple(out["image"].shape[1:]) == PATCH
        if i >= warm:
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
    return {"cpu": cpu, "wall": wall, "t0": t0, "t1": time.time()}


def one_core(worker, arg, n, warm):
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        r = worker((arg, n, warm, 0, 0))
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    # mean, not median: a config mixes cheap and costly draws (a transform fires or not)
    return {
        "patches_per_s": n / sum(r["cpu"]), "median_cpu_s": statistics.median(r["cpu"]),
        "mean_wall_s": statistics.fmean(r["wall"]), "n": n,
    }


def all_cores(worker, arg, n, warm, cores):
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(cores)) as pool:
        rs = pool.map(worker, [(arg, n, warm, 100 + i, c) for i, c in enumerate(cores)])
    span = max(r["t1"] for r in rs) - min(r["t0"] for r in rs)
    return {"patches_per_s": n * len(cores) / span, "workers": len(cores), "n": n * len(cores)}


def gpu(batch: int, n_batches: int):
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() == 0:
            return None
    except Exception:
        return None
    from neurons_jax import augment

    out = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode()}
    for name, cfg in configs().items():
        ctx = augment.context_shape(cfg, PATCH, VOXEL)
        img, lab = make_data(ctx)
        imgs = cp.asarray(np.broadcast_to(img, (batch, *ctx)))
        labs = cp.asarray(np.broadcast_to(lab, (batch, *ctx)))
        rng = np.random.default_rng(0)
        params = [[augment.draw(cfg, rng, PATCH, VOXEL) for _ in range(batch)] for _ in range(n_batches + 1)]
        augment.apply_batch(params[0], imgs, labs)  # compile + warm up
        cp.cuda.Device().synchronize()
        t = time.perf_counter()
        for ps in params[1:]:
            augment.apply_batch(ps, imgs, labs)
        cp.cuda.Device().synchronize()
        out[name] = {"patches_per_s": batch * n_batches / (time.perf_counter() - t), "batch": batch}
    return out


PATH_SIZES = ((32, 128, 128), (32, 256, 256))
PATHS = (("planar", (40.0, 4.0, 4.0)), ("off-plane", (10.0, 10.0, 10.0)))


def path_costs(n: int, warp=None, image_ops=None, sizes=PATH_SIZES) -> dict:
    """Median CPU ms per sample of the warp (image uint8 + labels uint32) on each path and of
    the image ops after it, default config, one thread; ``warp``/``image_ops``: the functions
    measured (default: ``geometry.warp``, ``apply.image_ops``)."""
    import cv2

    cv2.setNumThreads(1)
    from neurons_jax import augment
    from neurons_jax.augment import AugmentConfig, geometry
    from neurons_jax.augment.apply import image_ops as _image_ops

    warp = warp or geometry.warp
    image_ops = image_ops or _image_ops
    cfg = AugmentConfig()
    out: dict = {}
    for patch in sizes:
        key = "x".join(map(str, patch))
        for path, vs in PATHS:
            ctx = augment.context_shape(cfg, patch, vs)
            img, lab = make_data(ctx)
            rng = np.random.default_rng(0)
            tw, ti, warm = [], [], 2
            while len(tw) < n:
                p = augment.draw(cfg, rng, patch, vs)
                if p.planar != (path == "planar"):
                    continue
                c = time.process_time()
                w = warp(p, img, lab)
                c1 = time.process_time()
                image_ops(p, w[0])
                c2 = time.process_time()
                if warm:
                    warm -= 1
                    continue
                tw.append(c1 - c)
                ti.append(c2 - c1)
            out[f"{key} {path}"] = {
                "warp_ms": 1e3 * statistics.median(tw), "image_ops_ms": 1e3 * statistics.median(ti),
                "n": n, "context": ctx,
            }
        pl, op = out[f"{key} planar"]["warp_ms"], out[f"{key} off-plane"]["warp_ms"]
        out[f"{key} off-plane / planar"] = op / pl
    return out


def print_paths(res: dict) -> None:
    print(f"{'patch, path (default config)':34s} {'warp ms':>8s} {'image ops ms':>13s}")
    for k, v in res.items():
        if isinstance(v, dict):
            print(f"{k:34s} {v['warp_ms']:8.1f} {v['image_ops_ms']:13.1f}")
        else:
            print(f"{k:34s} {v:8.2f}x")


def draw_rate(n=2000):
    from neurons_jax import augment

    cfg, rng = configs()["default"], np.random.default_rng(0)
    c = time.process_time()
    for _ in range(n):
        augment.draw(cfg, rng, PATCH, VOXEL)
    return n / (time.process_time() - c)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="patches per neurons_jax measurement")
    ap.add_argument("--monai-n", type=int, default=4, help="patches per MONAI measurement")
    ap.add_argument("--gpu-batch", type=int, default=64)
    ap.add_argument("--gpu-batches", type=int, default=10)
    ap.add_argument("--skip-monai", action="store_true")
    ap.add_argument("--path-n", type=int, default=25, help="draws per warp path / size")
    ap.add_argument("--paths-only", action="store_true", help="only the per-path warp / image-op costs")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if a.paths_only:
        _pin(cores[0])
        res = {"machine": f"{platform.machine()}, {len(cores)} cores", "paths": path_costs(a.path_n)}
        out = Path(a.out or ROOT / "benchmarks" / "results" / "augment_paths.json")
        write_json(out, res)
        print_paths(res["paths"])
        return 0
    a.out = a.out or str(ROOT / "benchmarks" / "results" / "augment.json")
    res = {
        "machine": f"{platform.machine()}, {len(cores)} cores ({platform.processor() or 'cpu'})",
        "patch": PATCH, "voxel_size": VOXEL, "command": "benchmarks/bench_augment.py " + " ".join(argv or sys.argv[1:]),
        "draws_per_s_one_core": draw_rate(),
    }
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    _pin(cores[0])
    res["paths"] = path_costs(a.path_n)
    if before is not None:
        os.sched_setaffinity(0, before)
    rows = []
    for name in configs():
        r1 = one_core(nj_worker, name, a.n, 2)
        ra = all_cores(nj_worker, name, a.n, 2, cores)
        res[f"neurons_jax_{name}"] = {"one_core": r1, "all_cores": ra}
        rows.append((f"neurons_jax {name}", r1["patches_per_s"], ra["patches_per_s"]))
    monai_ok = False
    if not a.skip_monai:
        try:
            import monai  # noqa: F401

            monai_ok = True
        except Exception as e:  # noqa: BLE001
            res["monai"] = f"skipped: {type(e).__name__}: {e}"
    if monai_ok:
        import monai

        for label, p in (("elastic_path", 1.0), ("elastic_p0.5", 0.5)):
            r1 = one_core(monai_worker, p, a.monai_n, 1)
            ra = all_cores(monai_worker, p, a.monai_n, 1, cores)
            res[f"monai_{label}"] = {"one_core": r1, "all_cores": ra, "version": monai.__version__}
            rows.append((f"MONAI {label}", r1["patches_per_s"], ra["patches_per_s"]))
        base = res["monai_elastic_path"]["one_core"]["patches_per_s"]
        res["ratio_elastic_path_per_core"] = res["neurons_jax_elastic_path"]["one_core"]["patches_per_s"] / base
        res["ratio_default_vs_monai_p0.5_per_core"] = (
            res["neurons_jax_default"]["one_core"]["patches_per_s"] / res["monai_elastic_p0.5"]["one_core"]["patches_per_s"]
        )
    g = gpu(a.gpu_batch, a.gpu_batches)
    res["gpu"] = g if g is not None else "not measured: no CUDA GPU with CuPy on this machine"
    write_json(a.out, res)
    print(f"{res['machine']}; patch {PATCH}, voxel {VOXEL} nm, image uint8 + labels uint32")
    print(f"{'method':32s} {'1 core (CPU time) p/s':>22s} {'all cores p/s':>14s}")
    for name, r1, ra in rows:
        print(f"{name:32s} {r1:22.2f} {ra:14.2f}")
    if monai_ok:
        print(f"elastic path, per core: neurons_jax / MONAI = {res['ratio_elastic_path_per_core']:.1f}x")
    print("GPU:", json.dumps(res["gpu"]))
    print_paths(res["paths"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
