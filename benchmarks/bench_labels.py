"""Label-op throughput (MVx/s): nj.ops against cc3d, fastremap and the per-label SciPy loop.

Data: pinky40_seg_256.npz (real dense segmentation, uint32) tiled to SIZE^3 with np.tile.
CPU rows compare each op with the library it wraps, called directly in the same run:
connected_components (6, 26) vs cc3d, renumber vs fastremap.renumber, union_semantic vs
fastremap (unique + remap of every id to its class); the per-label scipy.ndimage.label loop
that connected_components replaces runs on the centre LOOP^3 crop. With a GPU (CuPy), the same ops
run on the device against cupyx.scipy.ndimage.label on the binary foreground. Every figure
is the median of REPEATS runs. Writes benchmarks/results/bench_labels.json.

    .venv/bin/python benchmarks/bench_labels.py [--size 512] [--loop 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neurons_jax as nj  # noqa: E402
from neurons_jax import backend  # noqa: E402
from neurons_jax.backend import gpu_available  # noqa: E402

DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def median_seconds(fns, repeats: int, sync=lambda: None) -> list[float]:
    """Median wall time of each function; the functions alternate within every repeat, so
    load from other processes on a shared machine hits ours and the peer alike."""
    for fn in fns:  # warm-up (allocations, kernel compilation)
        fn()
        sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def per_label_scipy_loop(labels: np.ndarray, connectivity: int) -> np.ndarray:
    """The code connected_components replaces: one scipy.ndimage.label pass per label id."""
    import scipy.ndimage as ndi

    rank = backend.reach(connectivity)
    structure = ndi.generate_binary_structure(3, rank)
    out = np.zeros(labels.shape, np.uint32)
    offset = 0
    for v in np.unique(labels):
        if v == 0:
            continue
        cc, k = ndi.label(labels == v, structure=structure)
        out[cc > 0] = cc[cc > 0] + offset
        offset += k
    return out


def fastremap_union(labels: np.ndarray, kind: str) -> np.ndarray:
    """union_semantic done with fastremap: unique ids, their classes, remap, narrow."""
    import fastremap

    uniq = fastremap.unique(labels)
    classes = nj.ops.union_semantic(uniq, kind)
    table = dict(zip(uniq.tolist(), classes.tolist()))
    return fastremap.remap(labels, table, preserve_missing_labels=True).astype(np.uint8)


def cpu_rows(vol: np.ndarray, crop: np.ndarray, repeats: int) -> list[dict]:
    import cc3d
    import fastremap

    rows = []

    def row(op, ours, peer_name, peer, n_voxels, reps=repeats):
        t_ours, t_peer = median_seconds([ours, peer], reps)
        r = {
            "op": op, "backend": "cpu", "voxels": n_voxels,
            "ours_s": t_ours, "ours_mvx_s": n_voxels / t_ours / 1e6,
            "peer": peer_name, "peer_s": t_peer, "peer_mvx_s": n_voxels / t_peer / 1e6,
            "ours_over_peer_speed": t_peer / t_ours,
        }
        rows.append(r)
        print_row(r)

    for c in (6, 26):
        row(f"connected_components c={c}", lambda c=c: nj.ops.connected_components(vol, c),
            "cc3d.connected_components",
            lambda c=c: cc3d.connected_components(vol, connectivity=c, out_dtype=np.uint32),
            vol.size)
    fvol = np.asfortranarray(vol)  # labelled where it lies, numbered in C-raster order like cc3d on C input
    for c in (6, 26):
        row(f"connected_components c={c} (Fortran order)", lambda c=c, a=fvol: nj.ops.connected_components(a, c),
            "cc3d.connected_components (same F array)",
            lambda c=c, a=fvol: cc3d.connected_components(a, connectivity=c, out_dtype=np.uint32), vol.size)
    del fvol
    for kind in ("snemi3d", "cremi3d"):
        row(f"union_semantic {kind}", lambda k=kind: nj.ops.union_semantic(vol, k),
            "fastremap unique+remap", lambda k=kind: fastremap_union(vol, k), vol.size)
    row("renumber", lambda: nj.ops.renumber(vol), "fastremap.renumber",
        lambda: fastremap.renumber(vol), vol.size)
    for c in (6, 26):
        row(f"connected_components c={c} ({crop.shape[0]}^3 crop)",
            lambda c=c: nj.ops.connected_components(crop, c),
            "per-label scipy.ndimage.label loop", lambda c=c: per_label_scipy_loop(crop, c),
            crop.size, reps=max(1, min(repeats, 3)))
    return rows


def gpu_rows(vol_np: np.ndarray, repeats: int) -> list[dict]:
    import cupy
    import cupyx.scipy.ndimage as cndi
    import scipy.ndimage as ndi

    vol = cupy.asarray(vol_np)
    sync = cupy.cuda.Device().synchronize
    rows = []

    def row(op, ours, peer_name=None, peer=None, bytes_moved=None):
        t_ours, *t_peer = median_seconds([ours] + ([peer] if peer else []), repeats, sync)
        r = {"op": op, "backend": "gpu", "voxels": vol.size, "ours_s": t_ours,
             "ours_mvx_s": vol.size / t_ours / 1e6}
        if bytes_moved:
            r["ours_gb_s"] = bytes_moved / t_ours / 1e9
        if peer is not None:
            t_peer = t_peer[0]
            r.update(peer=peer_name, peer_s=t_peer, peer_mvx_s=vol.size / t_peer / 1e6,
                     ours_over_peer_speed=t_peer / t_ours)
        rows.append(r)
        print_row(r)

    fg = vol != 0
    for c, rank in ((6, 1), (26, 3)):
        structure = cupy.asarray(ndi.generate_binary_structure(3, rank))
        row(f"connected_components c={c}", lambda c=c: nj.ops.connected_components(vol, c),
            "cupyx.scipy.ndimage.label (binary)", lambda s=structure: cndi.label(fg, s))
    for kind in ("snemi3d", "cremi3d"):
        row(f"union_semantic {kind}", lambda k=kind: nj.ops.union_semantic(vol, k),
            bytes_moved=vol.nbytes + vol.size)
    row("renumber", lambda: nj.ops.renumber(vol))
    return rows


def print_row(r: dict) -> None:
    peer = (f"{r['peer']:<36} {r['peer_mvx_s']:9.1f} MVx/s  x{r['ours_over_peer_speed']:.2f}"
            if "peer" in r else "")
    print(f"{r['backend']:<4} {r['op']:<42} {r['ours_mvx_s']:9.1f} MVx/s   {peer}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512, help="edge of the tiled cube (default 512)")
    p.add_argument("--loop", type=int, default=128, help="edge of the crop for the SciPy loop")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_labels.json"))
    args = p.parse_args(argv)

    src = np.load(DATA / "pinky40_seg_256.npz")["labels"]
    reps = -(-args.size // src.shape[0])
    vol = np.ascontiguousarray(np.tile(src, (reps,) * 3)[: args.size, : args.size, : args.size])
    c0 = (args.size - args.loop) // 2  # the centre: the tiles' corners meet there, many ids
    crop = np.ascontiguousarray(vol[c0 : c0 + args.loop, c0 : c0 + args.loop, c0 : c0 + args.loop])
    from importlib.metadata import version

    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(), "numpy": np.__version__,
        "cc3d": version("connected-components-3d"), "fastremap": version("fastremap"),
        "data": f"pinky40_seg_256 tiled to {vol.shape} {vol.dtype} ({len(np.unique(src)) - 1} ids); "
        f"centre crop {crop.shape} for the SciPy loop ({len(np.unique(crop)) - 1} ids)",
        "repeats": args.repeats, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    print(json.dumps(info, indent=1))
    rows = cpu_rows(vol, crop, args.repeats)
    if gpu_available():
        import cupy

        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        rows += gpu_rows(vol, args.repeats)
    else:
        print("no GPU: the CuPy rows were not measured")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
