"""Blockwise connected components on Dask against the in-memory call.

Data: ``pinky40_seg_256.npz`` (real segmentation, uint32) tiled 2x2x2 to 512^3, stored as zarr3
(zstd, chunks 32x128x128). Peers, measured in the same run: ``nj.ops.connected_components`` on
the array in memory, and the same call with the zarr3 read and write around it (what the
blockwise path does store to store). The blockwise path runs on a ``LocalCluster`` of 1 and 2
single-threaded worker processes (started before timing) with 128^3 and 256^3 blocks. Each
output is checked equal to the in-memory ids. Medians over ``--repeats`` runs.

Run (from the project root):
    .venv/bin/python benchmarks/bench_blockwise.py --repeats 3
Writes benchmarks/results/blockwise.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neurons_jax as nj  # noqa: E402
from neurons_jax.backend import gpu_available  # noqa: E402
from neurons_jax.ops.blockwise import blockwise_connected_components  # noqa: E402

DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def timed(fn, repeats):
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="edge of the tiled cube (voxels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--blocks", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--connectivity", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "blockwise.json"))
    args = ap.parse_args()

    from dask.distributed import Client, LocalCluster

    base = np.load(DATA / "pinky40_seg_256.npz")["labels"]
    reps = -(-args.size // base.shape[0])
    labels = np.ascontiguousarray(np.tile(base, (reps,) * 3)[: args.size, : args.size, : args.size])
    mvx = labels.size / 1e6
    conn = args.connectivity
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench_blockwise_"))
    rows = []
    try:
        src = tmp / "src.zarr"
        nj.volumes.write_zarr3(src, labels, (40.0, 8.0, 8.0))

        (ref, n_ref), t_mem = timed(lambda: nj.ops.connected_components(labels, conn), args.repeats)
        rows.append({"path": "in-memory connected_components", "workers": 1, "block": None, "seconds": t_mem})

        def store_to_store(i=[0]):  # noqa: B006 - a counter for fresh output names
            i[0] += 1
            vol = nj.Volume.open(src)
            ids, _ = nj.ops.connected_components(vol.read(), conn)
            nj.volumes.write_zarr3(tmp / f"mem{i[0]}.zarr", ids, vol.voxel_size)
            shutil.rmtree(tmp / f"mem{i[0]}.zarr")

        _, t_io = timed(store_to_store, args.repeats)
        rows.append({"path": "in-memory + zarr3 read/write", "workers": 1, "block": None, "seconds": t_io})

        for workers in args.workers:
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster, Client(cluster) as client:
                for b in args.blocks:
                    times, phases = [], []
                    for r in range(args.repeats):
                        dest = tmp / f"bw-{workers}-{b}-{r}.zarr"
                        t0 = time.perf_counter()
                        vol, n = blockwise_connected_components(
                            src, dest, (b, b, b), conn, client=client, progress=False
                        )
                        times.append(time.perf_counter() - t0)
                        done = json.loads((tmp / f"{dest.name}.blockwise" / "complete.json").read_text())
                        phases.append(done["seconds"])
                        if n != n_ref or (r == 0 and not np.array_equal(vol.read(), ref)):
                            raise SystemExit(f"blockwise output differs from in-memory ({workers} workers, {b}^3)")
                        shutil.rmtree(dest)
                    rows.append({
                        "path": "blockwise (Dask)", "workers": workers, "block": b,
                        "seconds": statistics.median(times),
                        "phases": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
                        "face_pairs": done["face_pairs"], "provisional_ids": done["provisional_ids"],
                    })  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for row in rows:
        row["MVx_per_s"] = round(mvx / row["seconds"], 1)
        row["vs_in_memory"] = round(t_mem / row["seconds"], 3)
        row["vs_in_memory_with_io"] = round(t_io / row["seconds"], 3)
        row["seconds"] = round(row["seconds"], 3)
    result = {
        "data": f"pinky40_seg_256 tiled to {labels.shape}, uint32, {n_ref} components ({conn}-connected)",
        "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
        + ("blocks labelled on the GPU" if gpu_available() else "no GPU"),
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "repeats": args.repeats,
        "command": "python benchmarks/bench_blockwise.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    nj.volumes.write_json(args.out, result)
    print(result["data"], "|", result["machine"], "| load", result["load_average_1min_before_after"])
    print(f"{'path':34s} {'workers':>7s} {'block':>6s} {'s':>8s} {'MVx/s':>8s} {'x mem':>7s} {'x mem+io':>8s}  phases (s)")
    for r in rows:
        ph = " ".join(f"{k}={v:.2f}" for k, v in r.get("phases", {}).items())
        print(
            f"{r['path']:34s} {r['workers']:7d} {str(r['block'] or '-'):>6s} {r['seconds']:8.2f} "
            f"{r['MVx_per_s']:8.1f} {r['vs_in_memory']:7.2f} {r['vs_in_memory_with_io']:8.2f}  {ph}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
