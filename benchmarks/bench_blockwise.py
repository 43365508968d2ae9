"""Blockwise connected components on Dask against the in-memory call with the same I/O.

Data: ``pinky40_seg_256.npz`` (real segmentation) tiled 2x2x2 to 512^3, stored as zarr3 (zstd,
chunks 32x128x128), with its uint32 ids and as uint64 ids above 2**32 (id + 2**32). Peer,
measured in the same run: the in-memory call with the same store I/O (read the whole zarr3,
``nj.ops.connected_components``, write the whole zarr3 with the same chunks and codec). The
blockwise job runs on a ``LocalCluster`` of 1 and 2 single-threaded worker processes (started
before timing) with 128^3 and 256^3 blocks; every output is checked equal to the in-memory ids
(``order="auto"`` is raster at this size). Each configuration runs in a fresh driver process,
so the peak RSS of the driver and of each worker (``VmHWM``) are the job's own.

``--generated`` adds the generated volume (``ops/blockwise/generated.py``: cells and winding
tubes computed from the coordinates, uint64 ids, no input on disk) of ``--generated-shape``
(default 1280^3 = 2.1 GVx, more than this machine could label in memory), ``order="auto"``
(blocks at this size): its component count must equal what the generator implies, and sampled
cells and tubes must each be one output id, distinct from each other. Its output goes to a
temporary folder on the disk with the most room (checked first) and is deleted afterwards.

Run (from the project root):
    .venv/bin/python benchmarks/bench_blockwise.py --repeats 3 [--generated]
Writes benchmarks/results/blockwise.json and prints a table (medians over repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ``ru_maxrss`` would carry over the peak of
    the process that forked this one, here the benchmark's own parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_inmem(src: str, dest: str, conn: int, ref: str | None) -> dict:
    import neurons_jax as nj

    t0 = time.perf_counter()
    vol = nj.Volume.open(src)
    ids, n = nj.ops.connected_components(vol.read(), conn)
    chunks = json.loads((Path(src) / "zarr.json").read_text())["chunk_grid"]["configuration"]["chunk_shape"]
    nj.volumes.write_zarr3(dest, ids, vol.voxel_size, chunks=chunks)
    out = {"seconds": time.perf_counter() - t0, "n": int(n), "driver_peak_mb": peak_mb()}
    if ref is not None:
        np.save(ref, ids)
    return out


def child_blockwise(src, dest: str, conn: int, workers: int, block: int, ref: str | None) -> dict:
    from dask.distributed import Client, LocalCluster

    import neurons_jax as nj  # noqa: F401
    from neurons_jax.ops.blockwise import blockwise_connected_components

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        memory_limit=0,
    ) as cluster, Client(cluster) as client:  # fmt: skip
        client.run(warm_up)  # start-up costs (imports, first calls) before timing, as the cluster's
        t0 = time.perf_counter()
        vol, n = blockwise_connected_components(src, dest, (block,) * 3, conn, client=client, progress=False)
        seconds = time.perf_counter() - t0
        rss = client.run(peak_mb)
    done = json.loads((Path(dest + ".blockwise") / "complete.json").read_text())
    out = {
        "seconds": seconds, "n": int(n), "driver_peak_mb": peak_mb(),
        "worker_peak_mb": max(rss.values()), "phases": done["seconds"], "levels": done["levels"],
        "order": done["order"], "dtype": done["dtype"], "provisional_ids": done["provisional_ids"],
        "face_pairs": done["face_pairs"],
    }  # fmt: skip
    if ref is not None:
        out["equal_to_in_memory"] = bool(np.array_equal(vol.read(), np.load(ref, mmap_mode="r")))
    if isinstance(src, dict):
        out["checks"] = check_generated(src, vol, int(n))
    return out


def warm_up() -> None:
    """What a worker loads on its first task: imports and first calls of cc3d and fastremap."""
    import cc3d
    import fastremap
    import scipy.sparse.csgraph  # noqa: F401

    import neurons_jax.ops.blockwise.api  # noqa: F401

    cc3d.connected_components(np.ones((2, 2, 2), np.uint32))
    fastremap.remap_from_array(np.zeros(4, np.uint32), np.zeros(1, np.uint32), in_place=True)


def check_generated(spec: dict, vol, n: int) -> dict:
    """Count and sampled components against what the generator implies."""
    from neurons_jax.ops.blockwise.generated import GeneratedSource, verify

    return verify(GeneratedSource(spec["shape"], spec.get("seed", 0)), vol, n)


def run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(args)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"child {args} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def roomiest_tmp(need: int) -> Path:
    best = max([Path(tempfile.gettempdir()), ROOT.parent], key=lambda p: shutil.disk_usage(p).free)
    free = shutil.disk_usage(best).free
    if free < need:
        raise SystemExit(f"the generated volume needs about {need / 1e9:.0f} GB of disk; {best} has {free / 1e9:.0f} GB")
    return Path(tempfile.mkdtemp(prefix="bench_blockwise_", dir=best))


def median_row(runs: list[dict], **meta) -> dict:
    row = dict(meta)
    for k in ("seconds", "driver_peak_mb", "worker_peak_mb"):
        if k in runs[0]:
            row[k] = statistics.median(r[k] for r in runs)
    for k in ("n", "levels", "order", "dtype", "provisional_ids", "face_pairs", "checks"):
        if k in runs[0]:
            row[k] = runs[0][k]
    if "phases" in runs[0]:
        row["phases"] = {k: statistics.median(r["phases"].get(k, 0) for r in runs) for k in runs[0]["phases"]}
    if "equal_to_in_memory" in runs[0]:
        row["equal_to_in_memory"] = all(r["equal_to_in_memory"] for r in runs)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=512, help="edge of the tiled cube (voxels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--blocks", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--dtypes", nargs="+", default=["uint32", "uint64"])
    ap.add_argument("--connectivity", type=int, default=6)
    ap.add_argument("--generated", action="store_true", help="also the generated >= 2 GVx volume")
    ap.add_argument("--generated-shape", type=int, nargs=3, default=[1280, 1280, 1280])
    ap.add_argument("--generated-runs", default="1:256,2:256,2:128",
                    help="workers:block pairs for the generated volume (one run each)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "blockwise.json"))
    args = ap.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        out = child_inmem(*rest) if kind == "inmem" else child_blockwise(*rest)
        print(json.dumps(out))
        return 0

    import neurons_jax as nj
    from neurons_jax.backend import gpu_available

    conn = args.connectivity
    load = [os.getloadavg()[0]]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_blockwise_"))
    try:
        base = np.load(DATA / "pinky40_seg_256.npz")["labels"]
        reps = -(-args.size // base.shape[0])
        labels = np.ascontiguousarray(np.tile(base, (reps,) * 3)[: args.size, : args.size, : args.size])
        mvx = labels.size / 1e6
        for dt in args.dtypes:
            data = labels if dt == "uint32" else np.where(labels > 0, labels.astype(np.uint64) + 2**32, 0)
            src = str(tmp / f"src-{dt}.zarr")
            nj.volumes.write_zarr3(src, data, (40.0, 8.0, 8.0), chunks=(32, 128, 128))
            del data
            ref = str(tmp / "ref.npy")
            runs = []
            for r in range(args.repeats):
                runs.append(run_child(["inmem", src, str(tmp / f"mem-{r}.zarr"), conn, ref if r == 0 else None]))
                shutil.rmtree(tmp / f"mem-{r}.zarr")
                load.append(os.getloadavg()[0])
            rows.append(median_row(runs, path="in-memory + zarr3 read/write", ids=dt, workers=1, block=None, mvx=mvx))
            for w in args.workers:
                for b in args.blocks:
                    runs = []
                    for r in range(args.repeats):
                        dest = str(tmp / f"bw-{dt}-{w}-{b}-{r}.zarr")
                        runs.append(run_child(["bw", src, dest, conn, w, b, ref]))
                        shutil.rmtree(dest)
                        shutil.rmtree(dest + ".blockwise", ignore_errors=True)
                        load.append(os.getloadavg()[0])
                    row = median_row(runs, path="blockwise (Dask)", ids=dt, workers=w, block=b, mvx=mvx)
                    if not row["equal_to_in_memory"]:
                        raise SystemExit(f"blockwise output differs from in-memory ({dt}, {w} workers, {b}^3)")
                    rows.append(row)
            os.remove(ref)
            shutil.rmtree(src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if args.generated:
        shape = [int(s) for s in args.generated_shape]
        gvx = int(np.prod(shape))
        gtmp = roomiest_tmp(need=gvx * 8 // 3)  # uint32 output compresses; records are small
        try:
            spec = {"driver": "nj_generated", "shape": shape, "seed": 0}
            for pair in args.generated_runs.split(","):
                w, b = (int(v) for v in pair.split(":"))
                dest = str(gtmp / f"gen-{w}-{b}.zarr")
                out = run_child(["bw", spec, dest, conn, w, b, None])
                shutil.rmtree(dest)
                shutil.rmtree(dest + ".blockwise", ignore_errors=True)
                load.append(os.getloadavg()[0])
                if not out["checks"]["ok"]:
                    raise SystemExit(f"generated volume: wrong components ({out['checks']})")
                rows.append(median_row([out], path="blockwise (Dask), generated", ids="uint64", workers=w, block=b,
                                       mvx=gvx / 1e6))
        finally:
            shutil.rmtree(gtmp, ignore_errors=True)

    peers = {r["ids"]: r["seconds"] for r in rows if r["block"] is None}
    for row in rows:
        row["MVx_per_s"] = round(row.pop("mvx") / row["seconds"], 1)
        if row["ids"] in peers and "generated" not in row["path"]:
            row["x_in_memory_with_io"] = round(row["seconds"] / peers[row["ids"]], 2)
        for k in ("seconds", "driver_peak_mb", "worker_peak_mb"):
            if k in row:
                row[k] = round(row[k], 2 if k == "seconds" else 0)
    result = {
        "data": f"pinky40_seg_256 tiled to {labels.shape} (uint32 ids, and uint64 ids + 2**32), {conn}-connected",
        "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
        + ("blocks labelled on the GPU" if gpu_available() else "no GPU"),
        "load_average_1min": {"min": min(load), "median": statistics.median(load), "max": max(load)},
        "repeats": args.repeats,
        "command": "python benchmarks/bench_blockwise.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    nj.volumes.write_json(args.out, result)
    print(result["data"], "|", result["machine"], "| load", result["load_average_1min"])
    print(f"{'path':30s} {'ids':6s} {'w':>2s} {'block':>5s} {'s':>8s} {'MVx/s':>7s} {'x mem+io':>8s} "
          f"{'driver MB':>9s} {'worker MB':>9s}  phases (s)")
    for r in rows:
        ph = " ".join(f"{k}={v:.2f}" for k, v in r.get("phases", {}).items())
        print(f"{r['path']:30s} {r['ids']:6s} {r['workers']:2d} {str(r['block'] or '-'):>5s} {r['seconds']:8.2f} "
              f"{r['MVx_per_s']:7.1f} {r.get('x_in_memory_with_io', '-')!s:>8s} {r['driver_peak_mb']:9.0f} "
              f"{r.get('worker_peak_mb', 0):9.0f}  {ph}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
