"""Blockwise label ops on Dask: connected components, union classes and renumbering.

Each reads its input block by block through TensorStore (a path, URL, spec or Volume; never
opened for writing) and writes a zarr3 output with the input's voxel size (``voxel_size=``
replaces it; a source without one gives an output without one: label ops need none), equal to
what the in-memory op gives on the whole volume. Records in ``DEST.blockwise/`` make reruns
resume. Inputs are checked as ``neurons-relabel`` checks them in memory (integer or bool ids,
no negative ids); a missing chunk of the source is an error naming the store, the chunk and the
block unless ``allow_missing=True`` (a sparse store, whose missing chunks read as 0).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.ops.blockwise import blockwise_connected_components
    >>> a = np.zeros((4, 4, 4), np.uint32); a[:, 1] = 5; a[:, 3] = 5
    >>> src = nj.Volume.from_array(a, (40, 8, 8))
    >>> vol, n = blockwise_connected_components(src, "memory://doc-cc/out", (2, 2, 2),
    ...                                         client="synchronous", progress=False)
    >>> n, vol.read()[3, :, 0].tolist(), vol.voxel_size
    (2, [0, 1, 0, 2], (40.0, 8.0, 8.0))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...backend import check_connectivity, check_device
from ...volumes import Volume
from .job import Job, run_job
from .label import WHO, label_block
from .merge import face_block, solve
from .renumber import merge_uniques, number, unique_block
from .runner import Runner
from .write import write_components, write_renumbered, write_union


def blockwise_connected_components(
    source_spec: Any,
    dest_spec: Any,
    block_shape: Sequence[int],
    connectivity: int = 6,
    client: Any = None,
    *,
    n_workers: int | None = None,
    device: str = "auto",
    progress: bool = True,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    allow_missing: bool | None = None,
) -> tuple[Volume, int]:
    """Multilabel connected components of a volume of any size -> (uint32 output Volume, n).

    Equal to ``nj.ops.connected_components(whole_volume, connectivity)``, numbering included
    (integer or bool labels; uint64 ids of any value). ``client``: None (a LocalCluster of
    ``n_workers`` processes), a scheduler address, a ``distributed.Client`` or
    ``"synchronous"``. ``device``: "auto" labels blocks on the worker's GPU when it has one,
    "cpu" or "gpu" force it.
    """
    connectivity = check_connectivity(connectivity, 3, "blockwise_connected_components")
    check_device(device, WHO)  # resolved on each worker, which may or may not have a GPU
    vol, summary = run_job(
        "connected_components", source_spec, dest_spec, block_shape, np.uint32, _components,
        extra={"connectivity": connectivity}, options={"device": device}, client=client,
        n_workers=n_workers, progress=progress, chunks=chunks, voxel_size=voxel_size,
        allow_missing=allow_missing,
    )  # fmt: skip
    return vol, int(summary["n"])


def _components(runner: Runner, job: Job) -> dict:
    grid, nb = job.grid, job.grid.n_blocks
    rec = job.state.get_arrays("merge/table.npz")
    if rec is None:
        keys = runner.map("label", label_block, [(job, b) for b in range(nb)])
        counts = np.array([len(k) for k in keys], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        deltas = [(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)]
        args = []
        for b in range(nb):
            near = {u for u in (grid.upper(b, d) for d in deltas) if u is not None}
            if len(near) > 1:  # a block with no upper neighbour has no upper face to check
                args.append((job, b, {u: int(offsets[u]) for u in near}))
        pairs = runner.map("faces", face_block, args)
        t0 = time.perf_counter()
        lut, n = solve(keys, pairs)
        runner.seconds["merge"] = round(time.perf_counter() - t0, 3)
        n_pairs = sum(len(p) for p in pairs)
        job.state.put_arrays(
            "merge/table.npz", lut=lut, offsets=offsets, counts=counts, n=np.array([n, n_pairs])
        )
    else:
        lut, offsets, counts = rec["lut"], rec["offsets"], rec["counts"]
        n, n_pairs = (int(x) for x in rec["n"])
    zero = np.zeros(1, np.uint32)
    tables = [np.concatenate([zero, lut[o + 1 : o + c + 1]]) for o, c in zip(offsets, counts)]
    runner.map("write", write_components, [(job, b, tables[b]) for b in range(nb)])
    return {"n": int(n), "provisional_ids": int(counts.sum()), "face_pairs": int(n_pairs)}


def blockwise_union_semantic(
    source_spec: Any,
    dest_spec: Any,
    block_shape: Sequence[int],
    kind: str,
    ignore_classes: Sequence[str] = (),
    client: Any = None,
    *,
    n_workers: int | None = None,
    progress: bool = True,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    allow_missing: bool | None = None,
) -> Volume:
    """``nj.ops.union_semantic`` applied block by block -> uint8 union-class Volume."""
    from ...rules import get_rule

    get_rule(kind)  # an unknown kind fails here, naming the known ones, before any work
    extra = {"kind": kind, "ignore_classes": list(ignore_classes)}

    def phases(runner: Runner, job: Job) -> dict:
        runner.map("union", write_union, [(job, b) for b in range(job.grid.n_blocks)])
        return {}

    vol, _ = run_job(
        "union_semantic", source_spec, dest_spec, block_shape, np.uint8, phases, extra=extra,
        client=client, n_workers=n_workers, progress=progress, chunks=chunks, voxel_size=voxel_size,
        allow_missing=allow_missing,
    )  # fmt: skip
    return vol


def blockwise_renumber(
    source_spec: Any,
    dest_spec: Any,
    block_shape: Sequence[int],
    client: Any = None,
    *,
    preserve_zero: bool = True,
    n_workers: int | None = None,
    progress: bool = True,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    allow_missing: bool | None = None,
) -> tuple[Volume, np.ndarray]:
    """Compact uint32 ids 1..n in C-raster order of each id's first voxel (as
    ``fastremap.renumber`` numbers C-ordered input) -> (Volume, old_ids) with
    ``old_ids[new] == old``; the mapping is also kept in ``DEST.blockwise/mapping.npz``."""
    vol, _ = run_job(
        "renumber", source_spec, dest_spec, block_shape, np.uint32, _renumber,
        extra={"preserve_zero": bool(preserve_zero)}, client=client, n_workers=n_workers,
        progress=progress, chunks=chunks, voxel_size=voxel_size, allow_missing=allow_missing,
    )  # fmt: skip
    from .state import resolve_target

    return vol, resolve_target(dest_spec).state.get_arrays("mapping.npz")["old_ids"]


def _renumber(runner: Runner, job: Job) -> dict:
    nb = job.grid.n_blocks
    parts = runner.map("unique", unique_block, [(job, b) for b in range(nb)])
    rec = job.state.get_arrays("merge/renumber.npz")
    if rec is None:
        values, keys = merge_uniques(parts)
        new, n = number(values, keys, job.options["preserve_zero"])
        old_ids = np.zeros(n + 1, job.source.dtype)
        old_ids[new[new > 0]] = values[new > 0]
        job.state.put_arrays("mapping.npz", old_ids=old_ids)
        job.state.put_arrays("merge/renumber.npz", values=values, new=new)
    else:
        values, new = rec["values"], rec["new"]
        n = int((new > 0).sum())
    args = [(job, b, u, new[np.searchsorted(values, u)]) for b, (u, _) in enumerate(parts)]
    runner.map("write", write_renumbered, args)
    return {"n": int(n)}


def cli_components(
    source: Any,
    dest: Any,
    block_shape: Sequence[int],
    connectivity: int = 6,
    scheduler: str | None = None,
    progress: bool = True,
    voxel_size: Sequence[float] | None = None,
) -> tuple[Volume, int]:
    """What ``neurons-relabel components --block-shape Z Y X [--scheduler ADDRESS]`` runs:
    a LocalCluster when ``scheduler`` is None, else the Dask scheduler at that address;
    ``voxel_size`` (``--voxel-size``) replaces the source's in the output."""
    return blockwise_connected_components(
        source, dest, block_shape, connectivity, client=scheduler, progress=progress,
        voxel_size=voxel_size,
    )
