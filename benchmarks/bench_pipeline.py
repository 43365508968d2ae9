"""Samples/s of the whole Loader vs the seed's MONAI pipeline, on the real FIB-25 volume.

Data: ../shared/data/fib25_sample2.npz (250^3, 10 nm, dense neuron ids), ingested to zarr3
with ``nj.datasets.generic`` + ``prepare``; tiled 2x in y and x (250 x 500 x 500) so that a
32x256x256 patch plus its augmentation margin fits. Ours: ``nj.pipeline.Loader`` with the
full default augmentation (fused elastic warp, defects, intensity), union labels and instance
relabelling, to global ``jax.Array`` batches. Peer: MONAI ``CacheDataset`` + torch
``DataLoader`` with the seed's transforms (SpatialPadd, RandSpatialCropd, RandFlipd x2,
RandRotate90d, RandGaussianNoised, RandAdjustContrastd), and again with Rand3DElasticd.
Same patch, batch size and number of workers.

Rate = steady state (``time_batches`` / ``steady_rate``): every batch's arrival is timed and
the rate counts only the batches delivered after the first one the consumer had to wait for,
i.e. once the prefetch buffers filled during start-up are drained (our Loader holds about 8
batches per worker, a torch DataLoader ``prefetch_factor`` per worker). ``naive_samples_per_s``
is the earlier method (the first 16 timed batches after the warm-up), kept for comparison.

    .venv/bin/python benchmarks/bench_pipeline.py --batches 48 --workers 2
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_volume(tile: int = 2):
    z = np.load(DATA / "fib25_sample2.npz")
    img, lab = z["image"], z["groundtruth"]
    return np.tile(img, (1, tile, tile)), np.tile(lab, (1, tile, tile))


def steady_rate(calls: Sequence[float], arrivals: Sequence[float], min_window: int = 4) -> dict:
    """Batches/s once the prefetch buffers are drained, from each ``next()``'s call and return times.

    A buffered batch returns at the consumer's own pace; the first call that *waited* for a
    producer (it took longer than the quickest calls by more than a quarter of the typical
    inter-arrival time of the second half, and at least 5 ms) marks the start of the steady
    state: the rate counts the batches that arrived after it, over the time since it.
    Without any waiting call the consumer is the bottleneck and every batch counts.

    Four buffered batches come at once, then one every 0.5 s:

    >>> arrivals = [0.01, 0.02, 0.03, 0.04] + [0.5 * (k + 1) for k in range(9)]
    >>> calls = [0.0] + [a + 0.001 for a in arrivals[:-1]]
    >>> r = steady_rate(calls, arrivals)
    >>> r["first_wait"], round(r["batches_per_s"], 3), round(r["naive_batches_per_s"], 2)
    (4, 2.0, 2.89)
    """
    n = len(arrivals)
    if n != len(calls) or n < 2:
        raise ValueError(f"calls and arrivals must be equal lists of >= 2 times; got {len(calls)}, {n}")
    took = [a - c for c, a in zip(calls, arrivals)]
    gaps = [b - a for a, b in zip(arrivals[:-1], arrivals[1:])]
    typical = float(np.median(gaps[len(gaps) // 2 :]))
    quickest = float(np.median(sorted(took)[: max(1, n // 8)]))
    threshold = quickest + max(0.005, 0.25 * typical)
    first_wait = next((i for i, t in enumerate(took) if t > threshold), None)
    k0 = 0 if first_wait is None else first_wait
    if n - 1 - k0 < min_window:
        raise ValueError(
            f"only {n - 1 - k0} batches after the buffers drained (batch {k0} of {n}); "
            f"expected >= {min_window}: time more batches"
        )
    if first_wait is None:  # consumer-bound: the clock starts at the first call
        window, span = n, arrivals[-1] - calls[0]
    else:
        window, span = n - 1 - k0, arrivals[-1] - arrivals[k0]
    return {
        "batches_per_s": window / span,
        "first_wait": first_wait,
        "window_batches": window,
        "window_s": span,
        "naive_batches_per_s": n / (arrivals[-1] - calls[0]),
        "buffered_fraction": k0 / n,
    }


def time_batches(next_batch, warm: int, n: int, settle_s: float = 0.0, naive: int = 16) -> dict:
    """Warm up, optionally let every buffer fill (``settle_s``), then time ``n`` batches.

    Returns ``steady_rate`` of the arrivals (batches/s) plus ``naive_batches_per_s``: the
    earlier method, the first ``naive`` batches after the warm-up over their wall time.
    """
    for _ in range(warm):
        next_batch()
    if settle_s:
        time.sleep(settle_s)
    calls, arrivals = [], []
    for _ in range(n):
        calls.append(time.perf_counter())
        next_batch()
        arrivals.append(time.perf_counter())
    r = steady_rate(calls, arrivals)
    k = min(naive, n)
    r["naive_batches_per_s"] = k / (arrivals[k - 1] - calls[0])
    r["naive_batches"] = k
    r["arrivals_s"] = [round(a - calls[0], 4) for a in arrivals]
    return r


def per_sample(r: dict, batch: int, settle_s: float) -> dict:
    """Samples/s (steady and naive) beside the raw timing record."""
    return {"samples_per_s": r["batches_per_s"] * batch,
            "naive_samples_per_s": r["naive_batches_per_s"] * batch,
            "settle_s": settle_s, **r}


def bench_ours(img, lab, patch, batch, workers, n_batches, tmp, settle_s=0.0) -> dict:
    import neurons_jax as nj

    root = Path(tmp) / "fib25"
    if not root.exists():
        nj.datasets.prepare("generic", img, root, label=lab, voxel_size=(10, 10, 10), progress=False)
    ds = nj.datasets.generic(str(root), split="train")
    loader = nj.pipeline.Loader({"fib25": (ds, 1.0)}, patch, batch, seed=0, worker_count=workers)
    it = iter(loader)

    def next_batch():
        next(it)["image"].block_until_ready()

    # start-up: every worker has delivered
    r = time_batches(next_batch, max(2, 2 * workers), n_batches, settle_s)
    timings = loader.timings()
    loader.close()
    return {**per_sample(r, batch, settle_s), "timings": timings}


def bench_monai(img, lab, patch, batch, workers, n_batches, elastic: bool, settle_s=0.0) -> dict:
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
    warm = max(2, 2 * workers)
    n = (n_batches + warm + 2 * max(1, workers)) * batch
    # as the seed did: the whole volume cached once; every sample deep-copies it (copy_cache)
    ds = CacheDataset([item], transform=Compose(t), cache_rate=1.0, num_workers=0, progress=False)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=n)
    dl = DataLoader(ds, batch_size=batch, num_workers=workers, sampler=sampler)
    it = iter(dl)
    r = time_batches(lambda: next(it), warm, n_batches, settle_s)  # same start-up as ours
    return per_sample(r, batch, settle_s)


def run_one(which: str, patch, a) -> dict:
    img, lab = load_volume()
    if which == "ours":
        with tempfile.TemporaryDirectory() as tmp:
            return bench_ours(img, lab, patch, a.batch_size, a.workers, a.batches, tmp, a.settle)
    n = a.batches if which == "monai_seed" else max(8, a.batches // 4)
    return bench_monai(img, lab, patch, a.batch_size, a.workers, n, which == "monai_elastic", a.settle)


def python_for(which: str) -> str:
    """MONAI rows run in the peer venv of benchmarks/peers/setup.sh when it exists (torch and
    MONAI are not dependencies of neurons_jax), else in this interpreter."""
    peer = ROOT / "benchmarks" / "peers" / ".venv-monai" / "bin" / "python"
    return str(peer) if which != "ours" and peer.exists() else sys.executable


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``): machines of one kind differ."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=48, help="timed batches (MONAI +elastic: a quarter)")
    p.add_argument("--settle", type=float, default=0.0,
                   help="seconds to sleep after the warm-up so every buffer fills (a check of the method)")
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
            cmd = [python_for(which), __file__, "--one", f"{which}:{ps}", "--batches", str(a.batches),
                   "--batch-size", str(a.batch_size), "--workers", str(a.workers),
                   "--settle", str(a.settle)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                row[which] = {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
                continue
            row[which] = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(row)
        line = f"{ps:>12} workers={a.workers}"
        for k in a.which:
            if "samples_per_s" in row.get(k, {}):
                line += (f"  {k} {row[k]['samples_per_s']:7.2f}/s"
                         f" (naive {row[k]['naive_samples_per_s']:.2f})")
        for k in ("monai_seed", "monai_elastic"):
            if "samples_per_s" in row.get(k, {}) and "samples_per_s" in row.get("ours", {}):
                line += f"  ours/{k} x{row['ours']['samples_per_s'] / row[k]['samples_per_s']:.1f}"
        print(line, flush=True)
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {cpu_model()}, "
                      f"Python {platform.python_version()}",
           "rows": rows, "command": " ".join(sys.argv)}
    write_json(a.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
