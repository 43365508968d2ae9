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
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...backend import check_connectivity, check_device
from ...volumes import Volume
from .hierarchy import down_task, up_task
from .job import Job, open_source, run_job
from .label import WHO, label_block
from .numbering import count_block
from .plan import BlockGrid, Hierarchy
from .renumber import merge_uniques, number, unique_block
from .runner import Runner
from .write import write_components, write_renumbered, write_union

ORDERS = ("auto", "raster", "blocks")
RASTER_MAX_VOXELS = 2**30  # order="auto": raster numbering up to this many voxels, blocks above
UINT64_FROM = 2**32  # n at which the output grows from uint32 to uint64 ids


def resolve_order(order: str, n_voxels: int) -> str:
    """``order`` checked; "auto" -> "raster" up to ``RASTER_MAX_VOXELS`` voxels, else "blocks"."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(map(repr, ORDERS))}; got {order!r}")
    if order == "auto":
        return "raster" if n_voxels <= RASTER_MAX_VOXELS else "blocks"
    return order


def blockwise_connected_components(
    source_spec: Any,
    dest_spec: Any,
    block_shape: Sequence[int],
    connectivity: int = 6,
    client: Any = None,
    *,
    order: str = "auto",
    group_shape: Sequence[int] = (2, 2, 2),
    n_workers: int | None = None,
    device: str = "auto",
    progress: bool = True,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    allow_missing: bool | None = None,
) -> tuple[Volume, int]:
    """Multilabel connected components of a volume of any size -> (output Volume, n).

    Each block is labelled once; equivalences across block faces are joined by a hierarchical
    merge over groups of ``group_shape`` neighbouring blocks (then groups of groups), so no
    process holds a volume-wide table. ``order``: "raster" numbers components like the
    in-memory ``nj.ops.connected_components(whole_volume, connectivity)`` (C-raster order of
    first voxels; needs the sorted first-voxel keys of all components, 8 B each, in one
    process); "blocks" numbers them by their first block (C order of the block grid), then by
    raster order inside it, compact 1..n, the same on every rerun and worker count; "auto" is
    "raster" up to ``RASTER_MAX_VOXELS`` (2**30) voxels, else "blocks". The output is uint32,
    uint64 when n >= 2**32. Integer or bool labels, uint64 ids of any value. ``client``: None
    (a LocalCluster of ``n_workers`` processes), a scheduler address, a
    ``distributed.Client`` or ``"synchronous"``. ``device``: "auto" labels blocks on the
    worker's GPU when it has one, "cpu" or "gpu" force it.
    """
    connectivity = check_connectivity(connectivity, 3, "blockwise_connected_components")
    check_device(device, WHO)  # resolved on each worker, which may or may not have a GPU
    src = open_source(source_spec, voxel_size, allow_missing)
    order = resolve_order(order, src.size)
    Hierarchy(BlockGrid(src.shape, block_shape).grid, group_shape)  # fails here, before any work
    group = [int(g) for g in group_shape]
    vol, summary = run_job(
        "connected_components", src, dest_spec, block_shape, None, _components,
        extra={"connectivity": connectivity, "order": order, "group_shape": group},
        options={"device": device}, client=client, n_workers=n_workers, progress=progress,
        chunks=chunks, voxel_size=voxel_size, allow_missing=allow_missing,
    )  # fmt: skip
    return vol, int(summary["n"])


def _components(runner: Runner, job: Job) -> dict:
    grid, nb = job.grid, job.grid.n_blocks
    if nb >= 2**31 or int(np.prod(grid.block_shape)) >= 2**32:
        raise ValueError(
            f"block_shape {grid.block_shape}: blocks need fewer than 2**32 voxels and the volume "
            f"fewer than 2**31 blocks; got {nb} blocks"
        )
    hier = Hierarchy(grid.grid, job.options["group_shape"])
    job.options["top"] = top = hier.top
    job.options["run"] = uuid.uuid4().hex  # names this run's caches in the workers
    job.create_provisional()
    blocks = range(nb)
    local = runner.map("label", label_block, [(job, b) for b in blocks])
    largest, pairs = {}, 0  # per level, the most open nodes and face pairs one merge task held
    for level in range(1, top + 1):  # level 1 finds the face pairs of its blocks first
        ups = runner.map(f"merge {level}", up_task, [(job, level, g) for g in range(hier.n_groups(level))])
        largest[str(level)] = [max(u[0] for u in ups), max(u[1] for u in ups)]
        pairs += sum(u[1] for u in ups) if level == 1 else 0
    counts: list = [None] * nb
    for level in range(top, 0, -1):  # level 1 counts its blocks last
        downs = runner.map(f"down {level}", down_task, [(job, level, g) for g in range(hier.n_groups(level))])
    if top == 0:
        counts = runner.map("count", count_block, [(job, b) for b in blocks])
    else:
        for part in downs:
            for b, c in part:
                counts[b] = c
        del downs
    t0 = time.perf_counter()
    homed = np.array([c for c, _, _ in counts], np.int64)
    offsets = np.concatenate([[0], np.cumsum(homed)[:-1]]).astype(np.int64)
    if job.options["order"] == "raster":
        rec = job.state.get_arrays("merge/keys.rec")
        if rec is None:
            keys = np.sort(np.concatenate([k for _, _, k in counts] + [np.zeros(0, np.int64)]))
            job.state.put_arrays("merge/keys.rec", keys=keys)
        else:
            keys = rec["keys"]
        n = len(keys)
        del keys
    else:
        n = int(homed.sum())
    dtype = np.dtype(np.uint32 if n < UINT64_FROM else np.uint64)
    job.create_output(dtype)
    runner.seconds["numbering"] = round(time.perf_counter() - t0, 3)
    args = []
    for b, (_, foreign, _) in enumerate(counts):
        args.append((job, b, {b: int(offsets[b]), **{int(h): int(offsets[h]) for h in foreign}}, dtype.name))
    del counts
    runner.map("write", write_components, args)
    return {"n": int(n), "order": job.options["order"], "levels": top, "dtype": dtype.name,
            "provisional_ids": int(sum(local)), "face_pairs": int(pairs),
            "merge_task_max_nodes_pairs": largest}  # fmt: skip


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
    order: str = "auto",
) -> tuple[Volume, int]:
    """What ``neurons-relabel components --block-shape Z Y X [--scheduler ADDRESS] [--order O]``
    runs: a LocalCluster when ``scheduler`` is None, else the Dask scheduler at that address;
    ``voxel_size`` (``--voxel-size``) replaces the source's in the output."""
    return blockwise_connected_components(
        source, dest, block_shape, connectivity, client=scheduler, progress=progress,
        voxel_size=voxel_size, order=order,
    )
