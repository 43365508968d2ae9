"""Phases 2 and 3 of blockwise connected components: face equivalences, then one global table.

Block ids are made disjoint by a prefix sum of the block counts (provisional id = block offset
+ local id). Every pair of touching voxels that lie in different blocks has its componentwise
minimum in some block B, and both voxels inside B grown by one voxel on its upper sides. So the
face task of B looks, for each axis a, at the two planes on either side of B's upper a-face
(grown by one row/column into the upper neighbours along the other axes when the connectivity
reaches across edges and corners) and emits the pairs of provisional ids of touching voxels
with equal input values. ``solve`` joins them with ``scipy.sparse.csgraph`` and numbers each
global component by the smallest key (global first-voxel index) of its parts, which is the
C-raster order of first voxels the in-memory call gives.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.merge import solve
    >>> lut, n = solve([np.array([0, 9]), np.array([4])], [np.array([[2, 3]])])
    >>> lut.tolist(), n  # ids 1, 2, 3; 2 and 3 joined; first voxels 0, 9 and 4
    ([0, 1, 2, 2], 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...backend import reach
from .job import Job


def _shift(length: int, d: int) -> tuple[slice, slice]:
    """Slices pairing position u of one plane with u + d of the other."""
    return slice(max(0, -d), length - max(0, d)), slice(max(0, d), length - max(0, -d))


def _plane(job: Job, bid: int, a: int, side: int, offsets: dict, records: dict) -> tuple:
    """Provisional ids and values on plane ``side`` (0: B's last, 1: beyond) of B's upper a-face."""
    grid, conn = job.grid, job.options["connectivity"]
    b_ax, c_ax = (x for x in range(3) if x != a)
    ext = grid.extent(bid)
    grow_b = conn > 6 and grid.upper(bid, _unit(b_ax)) is not None
    grow_c = conn > 6 and grid.upper(bid, _unit(c_ax)) is not None
    shape = (ext[b_ax] + grow_b, ext[c_ax] + grow_c)
    gid = np.zeros(shape, np.int64)
    val = None
    for db in range(1 + grow_b):
        for dc in range(1 + grow_c):
            delta = [0, 0, 0]
            delta[a], delta[b_ax], delta[c_ax] = side, db, dc
            nb = grid.upper(bid, delta)
            rec = records.get(nb)
            if rec is None:
                rec = records[nb] = job.state.get_arrays(f"label/{nb}.npz")
                if rec is None:
                    raise RuntimeError(f"{job.state.describe()}: block {nb} has no label record")
            local = rec[f"last{a}" if side == 0 else f"first{a}"]
            local = local[: 1 if db else None, : 1 if dc else None]
            values = np.concatenate([np.zeros(1, rec["values"].dtype), rec["values"]])
            if val is None:
                val = np.zeros(shape, values.dtype)
            rows = slice(ext[b_ax], None) if db else slice(0, ext[b_ax])
            cols = slice(ext[c_ax], None) if dc else slice(0, ext[c_ax])
            gid[rows, cols] = np.where(local > 0, local.astype(np.int64) + offsets[nb], 0)
            val[rows, cols] = values[local]
    return gid, val


def _unit(axis: int) -> tuple[int, int, int]:
    u = [0, 0, 0]
    u[axis] = 1
    return tuple(u)


def face_pairs(job: Job, bid: int, offsets: dict[int, int]) -> np.ndarray:
    """Unique pairs (lo, hi) of provisional ids joined across the upper faces of block ``bid``."""
    grid, conn = job.grid, job.options["connectivity"]
    records: dict = {}
    out = []
    for a in range(3):
        if grid.upper(bid, _unit(a)) is None:
            continue
        g0, v0 = _plane(job, bid, a, 0, offsets, records)
        g1, v1 = _plane(job, bid, a, 1, offsets, records)
        for db in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if 1 + (db != 0) + (dc != 0) > reach(conn):
                    continue
                (r0, r1), (c0, c1) = _shift(g0.shape[0], db), _shift(g0.shape[1], dc)
                x, y = g0[r0, c0], g1[r1, c1]
                m = (x > 0) & (y > 0) & (v0[r0, c0] == v1[r1, c1])
                out.append(np.stack([x[m], y[m]], axis=1))
    if not out:
        return np.zeros((0, 2), np.int64)
    return _unique_pairs(np.concatenate(out))


def _unique_pairs(pairs: np.ndarray) -> np.ndarray:
    pairs = np.sort(pairs, axis=1)
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    top = int(pairs.max()) + 1
    if top < 2**31:  # one int64 code per pair: a 1D unique is much faster than axis=0
        code = np.unique(pairs[:, 0] * top + pairs[:, 1])
        return np.stack([code // top, code % top], axis=1)
    return np.unique(pairs, axis=0)


def face_block(job: Job, bid: int, offsets: dict[int, int]) -> np.ndarray:
    """Face task: the pairs of block ``bid`` (or its record from an earlier run)."""
    done = job.state.get_arrays(f"faces/{bid}.npz")
    if done is not None:
        return done["pairs"]
    pairs = face_pairs(job, bid, offsets)
    job.state.put_arrays(f"faces/{bid}.npz", pairs=pairs)
    return pairs


def solve(keys: Sequence[np.ndarray], pairs: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Global union-find: -> (lookup table provisional id -> final id (uint32), n).

    ``keys[b]`` are the first-voxel indices of block b's components; ``pairs`` the joined
    provisional ids (1-based, block offsets = prefix sum of block counts).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    key = np.concatenate([np.asarray(k, np.int64) for k in keys]) if len(keys) else np.zeros(0, np.int64)
    total = len(key)
    if total == 0:
        return np.zeros(1, np.uint32), 0
    if total >= 2**31:
        raise OverflowError(
            f"{total} provisional components (summed over blocks) exceed the 2**31 the global "
            "union-find handles; use larger blocks"
        )
    edges = np.concatenate([np.asarray(p, np.int64).reshape(-1, 2) for p in pairs]) if len(pairs) else np.zeros((0, 2), np.int64)
    graph = coo_matrix(
        (np.ones(len(edges), np.int8), (edges[:, 0] - 1, edges[:, 1] - 1)), shape=(total, total)
    )
    n, comp = connected_components(graph, directed=False)
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, comp, key)
    rank = np.empty(n, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, n + 1)
    if n >= 2**32:
        raise OverflowError(f"{n} components do not fit the uint32 output ids")
    lut = np.zeros(total + 1, np.uint32)
    lut[1:] = rank[comp]
    return lut, int(n)
