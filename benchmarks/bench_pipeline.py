"""Samples/s of the whole Loader vs the seed's MONAI pipeline, on the real FIB-25 volume.

Data: ../shared/data/fib25_sample2.npz (250^3, 10 nm, dense neuron ids), ingested to zarr3
with ``nj.datasets.generic`` + ``prepare``; tiled 2x in y and x (250 x 500 x 500) so that a
32x256x256 patch plus its augmentation margin fits. Ours: ``nj.pipeline.Loader`` with the
full default augmentation (fused elastic warp, defects, intensity), union labels and instance
relabelling, to global ``jax.Array`` batches. Peer: MONAI ``CacheDataset`` + torch
``DataLoader`` with the seed's transforms (SpatialPadd, RandSpatialCropd, RandFlipd x2,
RandRotate90d, RandGaussianNoised, RandAdjustContrastd), and again with Rand3DElasticd.
Same patch, batch size and number of workers.

    .venv/bin/python benchmarks/bench_pipeline.py --batches 12 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_volume(tile: int = 2):
    z = np.load(DATA / "fib25_sample2.npz")
    img, lab = z["image"], z["groundtruth"]
    return np.tile(img, (1, tile, tile)), np.tile(lab, (1, tile, tile))


def bench_ours(img, lab, patch, batch, workers, n_batches, tmp) -> dict:
    import neurons_jax as nj

    root = Path(tmp) / "fib25"
    if not root.exists():
        nj.datasets.prepare("generic", img, root, label=lab, voxel_size=(10, 10, 10), progress=False)
    ds = nj.datasets.generic(str(root), split="train")
    loader = nj.pipeline.Loader({"fib25": (ds, 1.0)}, patch, batch, seed=0, worker_count=workers)
    it = iter(loader)
    for _ in range(max(2, 2 * workers)):
        next(it)  # start-up: every worker has delivered, prefetch buffers are full
    t0 = time.perf_counter()
    for _ in range(n_batches):
        b = next(it)
    b["image"].block_until_ready()
    dt = time.perf_counter() - t0
    timings = loader.timings()
    loader.close()
    return {"samples_per_s": n_batches * batch / dt, "seconds": dt, "timings": timings}


def bench_monai(img, lab, patch, batch, workers, n_batches, elastic: bool) -> dict:
    import torch
    from monai.data import CacheDataset, DataLoader
    from monai.transforms import (
        Compose,
        Rand3DElasticd,
        RandAdjustContrastd,
        RandFlipd,
        RandGaussianNoised,
        RandRotate90d,
        RandSpatialCropd,
        SpatialPadd,
    )

    torch.set_num_threads(1)
    keys = ["image", "label"]
    t = [
        SpatialPadd(keys, spatial_size=patch),
        RandSpatialCropd(keys, roi_size=patch, random_size=False),
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandFlipd(keys, prob=0.5, spatial_axis=2),
        RandRotate90d(keys, prob=0.5, spatial_axes=(1, 2)),
    ]
    if elastic:
        t.append(Rand3DElasticd(keys, sigma_range=(5, 8), magnitude_range=(50, 150), prob=1.0,
                                mode=("bilinear", "nearest"), padding_mode="reflection"))
    t += [RandGaussianNoised(["image"], prob=0.5, std=0.05), RandAdjustContrastd(["image"], prob=0.5)]
    item = {"image": (img[None] / 255.0).astype(np.float32), "label": lab[None].astype(np.int32)}
    n = (n_batches + 2 + 2 * max(1, workers)) * batch
    # as the seed did: the whole volume cached once; every sample deep-copies it (copy_cache)
    ds = CacheDataset([item], transform=Compose(t), cache_rate=1.0, num_workers=0, progress=False)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=n)
    dl = DataLoader(ds, batch_size=batch, num_workers=workers, sampler=sampler)
    it = iter(dl)
    for _ in range(max(2, 2 * workers)):
        next(it)  # same start-up as ours
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    dt = time.perf_counter() - t0
    return {"samples_per_s": n_batches * batch / dt, "seconds": dt}


def run_one(which: str, patch, a) -> dict:
    img, lab = load_volume()
    if which == "ours":
        with tempfile.TemporaryDirectory() as tmp:
            return bench_ours(img, lab, patch, a.batch_size, a.workers, a.batches, tmp)
    n = a.batches if which == "monai_seed" else max(3, a.batches // 3)
    return bench_monai(img, lab, patch, a.batch_size, a.workers, n, which == "monai_elastic")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--patches", nargs="+", default=["32x128x128", "32x256x256"])
    p.add_argument("--which", nargs="+", default=["ours", "monai_seed", "monai_elastic"])
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_pipeline.json"))
    a = p.parse_args()
    if a.one:  # child process: one framework, one patch size (JAX and torch never share a process)
        which, ps = a.one.split(":")
        print(json.dumps(run_one(which, tuple(int(v) for v in ps.split("x")), a), default=float))
        return 0
    rows = []
    for ps in a.patches:
        row = {"patch": ps, "batch": a.batch_size, "workers": a.workers}
        for which in a.which:
            cmd = [sys.executable, __file__, "--one", f"{which}:{ps}", "--batches", str(a.batches),
                   "--batch-size", str(a.batch_size), "--workers", str(a.workers)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                row[which] = {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
                continue
            row[which] = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(row)
        line = f"{ps:>12} workers={a.workers}"
        for k in a.which:
            if "samples_per_s" in row.get(k, {}):
                line += f"  {k} {row[k]['samples_per_s']:7.2f}/s"
        for k in ("monai_seed", "monai_elastic"):
            if "samples_per_s" in row.get(k, {}) and "samples_per_s" in row.get("ours", {}):
                line += f"  ours/{k} x{row['ours']['samples_per_s'] / row[k]['samples_per_s']:.1f}"
        print(line, flush=True)
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
           "rows": rows, "command": " ".join(sys.argv)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, default=float))
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
