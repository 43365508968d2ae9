"""Blockwise renumbering: a distributed unique, then one table from old ids to compact ids.

Each block reports its sorted unique values and, per value, the global C-order index of its
first voxel (values are found on run starts only, so a block costs one pass). The driver merges
the sorted lists in batches (memory: the global unique set plus one batch) keeping the smallest
key per value, and numbers values 1..n in the order of their first voxel in the whole volume,
the order ``fastremap.renumber`` gives C-ordered input; 0 stays 0 with ``preserve_zero``.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.renumber import merge_uniques, number
    >>> u, k = merge_uniques([(np.array([0, 7, 9]), np.array([5, 0, 3])), (np.array([4, 9]), np.array([8, 1]))])
    >>> u.tolist(), k.tolist()
    ([0, 4, 7, 9], [5, 8, 0, 1])
    >>> number(u, k)[0].tolist()  # 7 first, then 9, then 4
    [0, 3, 1, 2]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .job import Job
from .label import global_index

BATCH = 256


def block_uniques(block: np.ndarray, origin, shape) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values of ``block`` and the global index of each one's first voxel."""
    flat = block.reshape(-1)
    if flat.size == 0:
        return np.zeros(0, block.dtype), np.zeros(0, np.int64)
    starts = np.concatenate([np.zeros(1, np.int64), np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    values, idx = np.unique(flat[starts], return_index=True)
    return values, global_index(starts[idx], block.shape, origin, shape)


def unique_block(job: Job, bid: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique task: (values, first-voxel keys) of block ``bid``, recorded for reruns."""
    done = job.state.get_arrays(f"unique/{bid}.npz")
    if done is not None:
        return done["values"], done["keys"]
    block = job.read_block(bid)
    values, keys = block_uniques(block, job.grid.origin(bid), job.grid.shape)
    job.state.put_arrays(f"unique/{bid}.npz", values=values, keys=keys)
    return values, keys


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate([p[0] for p in parts])
    keys = np.concatenate([np.asarray(p[1], np.int64) for p in parts])
    order = np.lexsort((keys, values))
    values, keys = values[order], keys[order]
    first = np.ones(len(values), bool)
    first[1:] = values[1:] != values[:-1]
    return values[first], keys[first]


def merge_uniques(parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-block (sorted values, keys) into the global sorted values with minimal keys."""
    merged: tuple[np.ndarray, np.ndarray] | None = None
    batch: list = []
    for p in parts:
        batch.append(p)
        if len(batch) >= BATCH:
            merged = _merge(([merged] if merged is not None else []) + batch)
            batch = []
    if batch:
        merged = _merge(([merged] if merged is not None else []) + batch)
    if merged is None:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return merged


def number(values: np.ndarray, keys: np.ndarray, preserve_zero: bool = True) -> tuple[np.ndarray, int]:
    """New id of each value (aligned with sorted ``values``), numbered by first voxel; -> (ids, n)."""
    numbered = (values != 0) if preserve_zero else np.ones(len(values), bool)
    n = int(numbered.sum())
    if n >= 2**32:
        raise OverflowError(f"{n} distinct ids do not fit the uint32 output")
    new = np.zeros(len(values), np.uint32)
    sel = np.flatnonzero(numbered)
    new[sel[np.argsort(keys[sel], kind="stable")]] = np.arange(1, n + 1, dtype=np.uint32)
    return new, n
