"""Phase 2 of blockwise connected components: the equivalences found on block faces.

A component's parts in two blocks are named by *codes*: block id * 2**32 + local id (int64),
unique over the volume. Every pair of touching voxels that lie in different blocks has its
componentwise minimum in some block B, and both voxels inside B grown by one voxel on its upper
sides. So the face task of B looks, for each axis a, at the two planes on either side of B's
upper a-face (grown by one row/column into the upper neighbours along the other axes when the
connectivity reaches across edges and corners) and emits the pairs of codes of touching voxels
with equal input values whose blocks' componentwise minimum is B (each pair once), each with
the level of the block hierarchy (``plan.Hierarchy``) whose
groups first hold both blocks: the merge task of that group joins them (``hierarchy``).

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.merge import code, split
    >>> c = code(np.array([3]), np.array([7]))
    >>> c.tolist(), [a.tolist() for a in split(c)]
    ([12884901895], [[3], [7]])
"""

from __future__ import annotations

import numpy as np

from ...backend import reach
from .job import Job
from .plan import Hierarchy

LOCAL_BITS = 32


def code(bid, local) -> np.ndarray:
    """Codes (int64) of local ids ``local`` of blocks ``bid``."""
    return (np.asarray(bid, np.int64) << LOCAL_BITS) | np.asarray(local, np.int64)


def split(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes -> (block ids, local ids), both int64."""
    codes = np.asarray(codes, np.int64)
    return codes >> LOCAL_BITS, codes & ((1 << LOCAL_BITS) - 1)


def _shift(length: int, d: int) -> tuple[slice, slice]:
    """Slices pairing position u of one plane with u + d of the other."""
    return slice(max(0, -d), length - max(0, d)), slice(max(0, d), length - max(0, -d))


def _record(job: Job, nb: int, records: dict) -> dict:
    rec = records.get(nb)
    if rec is None:
        rec = records[nb] = job.state.get_arrays(f"planes/{nb}.rec")
        if rec is None:
            raise RuntimeError(f"{job.state.describe()}: block {nb} has no planes record (label phase)")
    return rec


def _plane(job: Job, bid: int, a: int, side: int, records: dict, offsets: dict) -> tuple:
    """Compact ids (block offset + local id) and values on plane ``side`` (0: B's last, 1:
    beyond) of B's upper a-face."""
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
            rec = records[nb]
            local = rec[f"last{a}" if side == 0 else f"first{a}"]
            local = local[: 1 if db else None, : 1 if dc else None].astype(np.int64)
            values = np.concatenate([np.zeros(1, rec["values"].dtype), rec["values"]])
            if val is None:
                val = np.zeros(shape, values.dtype)
            rows = slice(ext[b_ax], None) if db else slice(0, ext[b_ax])
            cols = slice(ext[c_ax], None) if dc else slice(0, ext[c_ax])
            gid[rows, cols] = np.where(local > 0, local + offsets[nb], 0)
            val[rows, cols] = values[local]
    return gid, val


def _unit(axis: int) -> tuple[int, int, int]:
    u = [0, 0, 0]
    u[axis] = 1
    return tuple(u)


def face_pairs(job: Job, bid: int) -> np.ndarray:
    """Unique pairs (lo, hi) of codes joined across the upper faces of block ``bid``."""
    grid, conn = job.grid, job.options["connectivity"]
    near = sorted({u for d in np.ndindex(2, 2, 2) if (u := grid.upper(bid, d)) is not None})
    records = {nb: _record(job, nb, {}) for nb in near}
    sizes = [len(records[nb]["values"]) for nb in near]
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    offsets = dict(zip(near, start.tolist()))  # compact ids: 1D uniques instead of row uniques
    top = int(sum(sizes)) + 1
    out = []
    for a in range(3):
        if grid.upper(bid, _unit(a)) is None:
            continue
        g0, v0 = _plane(job, bid, a, 0, records, offsets)
        g1, v1 = _plane(job, bid, a, 1, records, offsets)
        for db in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if 1 + (db != 0) + (dc != 0) > reach(conn):
                    continue
                (r0, r1), (c0, c1) = _shift(g0.shape[0], db), _shift(g0.shape[1], dc)
                x, y = g0[r0, c0], g1[r1, c1]
                m = (x > 0) & (y > 0) & (v0[r0, c0] == v1[r1, c1])
                lo, hi = np.minimum(x[m], y[m]), np.maximum(x[m], y[m])
                out.append(np.unique(lo * top + hi) if top < 2**31 else np.stack([lo, hi], 1))
    if not out or not sum(len(o) for o in out):
        return np.zeros((0, 2), np.int64)
    if top < 2**31:
        joint = np.unique(np.concatenate(out))
        pairs = np.stack([joint // top, joint % top], axis=1)
    else:
        pairs = unique_pairs(np.concatenate(out))
    # compact ids -> codes
    which = np.searchsorted(start, pairs - 1, side="right") - 1  # block k: start[k] + 1 ...
    pairs = code(np.asarray(near, np.int64)[which], pairs - start[which])
    # pairs between two grown rows are the face pairs of another block: keep those whose blocks'
    # componentwise minimum is this block, so each pair is found once, by a block of every
    # group that holds both of its blocks
    ia = np.stack(np.unravel_index(pairs[:, 0] >> LOCAL_BITS, grid.grid), axis=1)
    ib = np.stack(np.unravel_index(pairs[:, 1] >> LOCAL_BITS, grid.grid), axis=1)
    pairs = pairs[np.all(np.minimum(ia, ib) == np.array(grid.index(bid)), axis=1)]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """The distinct rows of an (m, 2) int64 array, sorted: one 1D unique of compact codes (a
    row unique, ``np.unique(axis=0)``, sorts structured rows and is many times slower)."""
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    ends, inv = np.unique(pairs.reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 2).astype(np.int64)
    top = len(ends)
    joint = np.unique(inv[:, 0] * top + inv[:, 1])
    return np.stack([ends[joint // top], ends[joint % top]], axis=1)


def face_block(job: Job, bid: int) -> int:
    """Face task: record the pairs of block ``bid`` with their merge levels -> their number."""
    done = job.state.get_arrays(f"faces/{bid}.rec")
    if done is not None:
        return len(done["pairs"])
    pairs = face_pairs(job, bid)
    hier = Hierarchy(job.grid.grid, job.options["group_shape"])
    level = hier.pair_levels(pairs[:, 0] >> LOCAL_BITS, pairs[:, 1] >> LOCAL_BITS)
    job.state.put_arrays(f"faces/{bid}.rec", pairs=pairs, level=level)
    return len(pairs)
