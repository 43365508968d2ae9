"""Phase 1 of blockwise connected components: label each block once, keep what the rest needs.

A task reads one block, labels it with the in-memory ``connected_components`` (on the worker's
GPU when it has one, else on the CPU; uint64 ids of any value, bool masks as uint8) and keeps:

- the block's provisional labels (local ids 1..n in the block's own raster order), zstd-
  compressed in ``DEST.blockwise/provisional`` (a zarr3 array, deleted at the end): the write
  phase relabels them, so no block is read or labelled twice;
- ``label/<block>.rec``: n, the global C-order index of each local component's first voxel
  (its key for ``order="raster"``), and the *open* local ids, those on a face shared with
  another block, each with a 6-bit mask of the faces it touches (bit 2a: lower face on axis a,
  2a+1: upper face);
- ``planes/<block>.rec``: the local ids on each shared face and each local id's input value,
  for the face phase.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.label import first_voxels, face_masks
    >>> first_voxels(np.array([[0, 1, 1], [2, 1, 0]], np.uint32), 2).tolist()
    [1, 3]
    >>> ids = np.array([[[1, 0], [2, 2]]], np.uint32)  # one z section; upper x face shared
    >>> face_masks(ids, 2, {(2, 1): ids[:, :, -1]}).tolist()
    [0, 0, 32]
"""

from __future__ import annotations

import numpy as np

from ...backend import resolve_device, to_numpy
from ..components import connected_components
from .job import Job

WHO = "blockwise_connected_components: device"


def label_array(block: np.ndarray, connectivity: int, device: str = "auto") -> tuple[np.ndarray, int]:
    """``(uint32 ids, n)`` of one block, numbered like ``nj.ops.connected_components``, on this
    worker's GPU or CPU (``device`` as ``neurons_jax.backend.resolve_device`` reads it)."""
    if resolve_device(device, WHO) == "gpu":
        import cupy

        ids, n = connected_components(cupy.asarray(block), connectivity=connectivity)
        return np.ascontiguousarray(to_numpy(ids), dtype=np.uint32), int(n)
    ids, n = connected_components(block, connectivity=connectivity)
    return np.ascontiguousarray(ids, dtype=np.uint32), int(n)


def first_voxels(ids: np.ndarray, n: int) -> np.ndarray:
    """C-order flat index of the first voxel of components 1..n (int64, length n).

    The first voxel of a component starts a run of equal ids in the flattened array, so only
    run starts (few, for segmentations) are reduced; no assumption about the numbering.
    """
    flat = ids.reshape(-1)
    if n == 0 or flat.size == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([np.zeros(1, np.int64), starts.astype(np.int64)])
    v = flat[starts].astype(np.int64)
    new = v > np.concatenate([[0], np.maximum.accumulate(v)[:-1]])
    if int(new.sum()) == n and np.array_equal(v[new], np.arange(1, n + 1)):
        return starts[new]  # numbered in raster order (cc3d's): each id first starts a new maximum
    first = np.full(n + 1, flat.size, np.int64)
    np.minimum.at(first, flat[starts].astype(np.int64), starts)
    return first[1:]


def global_index(local: np.ndarray, block_shape, origin, shape) -> np.ndarray:
    """Flat block-local indices -> flat C-order indices in the whole volume (int64)."""
    coords = np.unravel_index(local, tuple(block_shape))
    coords = tuple(c.astype(np.int64) + int(o) for c, o in zip(coords, origin))
    return np.ravel_multi_index(coords, tuple(shape)).astype(np.int64)


def face_masks(ids: np.ndarray, n: int, planes: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """Per local id 0..n, the bits of the shared faces it touches (``planes[(axis, side)]``:
    the ids on that face, side 0 lower, 1 upper); uint8, 0 for ids on no shared face."""
    mask = np.zeros(n + 1, np.uint8)
    for (a, side), plane in planes.items():
        hit = np.zeros(n + 1, bool)
        hit[plane.reshape(-1)] = True
        mask[hit] |= np.uint8(1 << (2 * a + side))
    mask[0] = 0
    return mask


def small_ids(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` (ids 0..n) as uint16 when n allows, else uint32: planes stored at half the size."""
    return np.ascontiguousarray(a, np.uint16 if n < 2**16 else np.uint32)


def label_block(job: Job, bid: int) -> int:
    """Label block ``bid`` (or find its record): -> its number of local components."""
    done = job.state.get_arrays(f"label/{bid}.rec")
    if done is not None:
        return int(done["n"])
    grid = job.grid
    block = job.read_block(bid)
    ids, n = label_array(block, job.options["connectivity"], job.options.get("device", "auto"))
    job.write_provisional(bid, ids, n)
    first = first_voxels(ids, n)
    idx = grid.index(bid)
    planes = {}
    for a in range(3):
        if idx[a] > 0:
            planes[(a, 0)] = ids.take(0, axis=a)
        if idx[a] + 1 < grid.grid[a]:
            planes[(a, 1)] = ids.take(-1, axis=a)
    mask = face_masks(ids, n, planes)
    opened = np.flatnonzero(mask).astype(np.uint32)
    named = {f"{'first' if s == 0 else 'last'}{a}": small_ids(p, n) for (a, s), p in planes.items()}
    job.state.put_arrays(f"planes/{bid}.rec", values=block.reshape(-1)[first], **named)
    keys = global_index(first, ids.shape, grid.origin(bid), grid.shape)
    job.state.put_arrays(  # written last: the block's done-marker
        f"label/{bid}.rec", n=np.array(n, np.int64), keys=keys, open=opened, mask=mask[opened],
        voxels=np.array(np.count_nonzero(ids), np.int64), compress=True,
    )
    return n


def provisional_ids(job: Job, bid: int, n: int, voxels: int) -> np.ndarray:
    """Block ``bid``'s provisional labels as the label phase kept them; labelled again from the
    input (the same ids: labelling is deterministic) when they are lost or damaged (their
    foreground voxel count or largest id differs from the label record's)."""
    ids = job.read_provisional(bid, n)
    if ids is not None and int(np.count_nonzero(ids)) == voxels and (ids.size == 0 or int(ids.max()) == n):
        return ids
    ids, again = label_array(job.read_block(bid), job.options["connectivity"], job.options.get("device", "auto"))
    if again != n or int(np.count_nonzero(ids)) != voxels:
        raise RuntimeError(
            f"block {bid}: labelled into {again} components now but {n} in the label phase "
            "(was the input changed while the job ran?)"
        )
    return ids
