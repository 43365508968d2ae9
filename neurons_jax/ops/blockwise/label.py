"""Phase 1 of blockwise connected components: label each block, keep what stitching needs.

A task reads one block, labels it with the in-memory ``connected_components`` (on the worker's
GPU when it has one, else on the CPU; uint64 ids of any value, bool masks as uint8) and
records, per local component, the global C-order index of its first voxel (the key that fixes
the final numbering) and its input value, plus the six boundary planes of local ids. Only the
keys travel back to the scheduler; the planes stay in the job's records for the face phase.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.label import first_voxels
    >>> first_voxels(np.array([[0, 1, 1], [2, 1, 0]], np.uint32), 2).tolist()
    [1, 3]
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
    first = np.full(n + 1, flat.size, np.int64)
    np.minimum.at(first, flat[starts].astype(np.int64), starts)
    return first[1:]


def global_index(local: np.ndarray, block_shape, origin, shape) -> np.ndarray:
    """Flat block-local indices -> flat C-order indices in the whole volume (int64)."""
    coords = np.unravel_index(local, tuple(block_shape))
    coords = tuple(c.astype(np.int64) + int(o) for c, o in zip(coords, origin))
    return np.ravel_multi_index(coords, tuple(shape)).astype(np.int64)


def label_block(job: Job, bid: int) -> np.ndarray:
    """Label block ``bid`` (or read back its record): -> keys of its components (int64)."""
    done = job.state.get_arrays(f"keys/{bid}.npz")
    if done is not None:
        return done["keys"]
    grid = job.grid
    block = job.read_block(bid)
    ids, n = label_array(block, job.options["connectivity"], job.options.get("device", "auto"))
    first = first_voxels(ids, n)
    keys = global_index(first, ids.shape, grid.origin(bid), grid.shape)
    faces = {}
    for a in range(3):
        faces[f"first{a}"] = np.ascontiguousarray(ids.take(0, axis=a))
        faces[f"last{a}"] = np.ascontiguousarray(ids.take(-1, axis=a))
    job.state.put_arrays(f"label/{bid}.npz", values=block.reshape(-1)[first], **faces)
    job.state.put_arrays(f"keys/{bid}.npz", keys=keys)  # written last: the block's done-marker
    return keys
