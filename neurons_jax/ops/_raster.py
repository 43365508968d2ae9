"""C-raster numbering of ids that were numbered in another order (Fortran-ordered labelling).

cc3d labels a Fortran-ordered array in its memory order, without a copy, and so numbers the
components by their first voxel in F order. ``c_raster_renumber`` renumbers such ids in place to
the C-raster order of each id's first voxel, the numbering of a C-ordered call, without a
transposing copy: the first voxel of an id in C order has, along each axis, a predecessor of
another id (or none), so it is among the "corners" that one pass over the memory finds (changes
along the two fastest axes, plane by plane in cache, then one look-up into the previous plane
for those few). The smallest C index per id over the corners ranks the ids; one in-place remap
(fastremap) applies the ranks. Large arrays are split over up to ``MAX_THREADS`` threads (NumPy
and fastremap release the GIL).

Example:
    >>> import cc3d, numpy as np
    >>> from neurons_jax.ops._raster import c_raster_renumber
    >>> labels = np.asfortranarray(np.array([[0, 5, 5], [7, 0, 5]], np.uint8))
    >>> ids = cc3d.connected_components(labels, connectivity=4, out_dtype=np.uint32)
    >>> ids.tolist()  # numbered in memory (F) order: the 7 comes first
    [[0, 2, 2], [1, 0, 2]]
    >>> c_raster_renumber(ids, 2).tolist(), ids.flags.f_contiguous
    ([[0, 1, 1], [2, 0, 1]], True)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 1 << 20  # voxels per step of the corner scan (whole planes, a few MB: in cache)
MAX_THREADS = 4
MIN_PARALLEL = 1 << 22  # voxels below which one thread does everything


def c_raster_renumber(ids: np.ndarray, n: int) -> np.ndarray:
    """Renumber Fortran-ordered ``ids`` (2D or 3D, values 0..n, 0 = background) in place so that
    ids 1..n follow the C-raster order of each id's first voxel; returns ``ids``."""
    if not ids.flags.f_contiguous or ids.dtype != np.uint32 or ids.ndim not in (2, 3):
        raise ValueError(
            f"c_raster_renumber: expected a Fortran-ordered 2D or 3D uint32 array; got shape "
            f"{ids.shape}, dtype {ids.dtype}, F-contiguous {ids.flags.f_contiguous}"
        )
    if n <= 1:
        return ids
    vol = ids[:, :, None] if ids.ndim == 2 else ids  # (Y, X) is (Y, X, 1): same C order
    flat = vol.T.reshape(-1)  # memory order: axis 0 fastest (a view)
    X, Y, Z = vol.T.shape  # in the memory's (slowest ... fastest) terms
    workers = _workers(flat.size)
    bounds = np.linspace(0, X, workers + 1).astype(int)
    ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    rank = _ranks(flat, n, ranges, (X, Y, Z), workers)
    if rank is None:  # already in C-raster order
        return ids
    import fastremap

    parts = np.array_split(flat, workers)
    _run(workers, lambda p: fastremap.remap_from_array(p, rank, in_place=True), parts)
    return ids


def _workers(size: int) -> int:
    if size < MIN_PARALLEL:
        return 1
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


def _run(workers: int, fn, items: list) -> list:
    if workers == 1 or len(items) == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _ranks(flat, n: int, ranges, shape, workers: int) -> np.ndarray | None:
    """The uint32 table old id -> C-raster id (None when it is the identity)."""
    X, Y, Z = shape
    corners = np.concatenate(_run(workers, lambda r: _corners(flat, *r, Y, Z), ranges))
    values = flat[corners]
    x, rest = np.divmod(corners, Y * Z)
    y, z = np.divmod(rest, Z)
    key = (z * Y + y) * X + x  # the C-order flat index of each corner
    first = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, values, key)
    order = np.argsort(first[1:], kind="stable")
    if np.array_equal(order, np.arange(n)):
        return None
    rank = np.zeros(n + 1, np.uint32)
    rank[order + 1] = np.arange(1, n + 1, dtype=np.uint32)
    return rank


def _corners(flat: np.ndarray, x0: int, x1: int, Y: int, Z: int) -> np.ndarray:
    """Flat (memory-order) indices of the non-zero voxels of planes x0..x1-1 whose predecessor
    along each of the three axes holds another id or lies outside the array."""
    YZ = Y * Z
    k = max(1, CHUNK // YZ)  # whole planes per step
    most = min(k, x1 - x0) * YZ
    mask = np.zeros(-(-most // 8) * 8, bool)  # whole 8-byte words, to skip empty ones fast
    row = np.empty(most, bool)
    busy = np.empty(mask.size // 8, bool)
    out = [np.zeros(0, np.int64)]
    for a in range(x0, x1, k):
        s0 = a * YZ
        c = flat[s0 : min(x1, a + k) * YZ]
        m = mask[: c.size]
        np.not_equal(c[1:], c[:-1], out=m[1:])
        m[::Z] = True  # the first voxel of every row along the fastest axis
        if c.size > Z:  # the voxel one row back (the first row of a plane has none)
            r = row[: c.size - Z]
            np.not_equal(c[Z:], c[:-Z], out=r)
            if c.size > YZ:  # several planes per step: their first rows stay candidates
                r[YZ - Z :].reshape(-1, YZ)[:, :Z] = True
            m[Z:] &= r
        n8 = -(-c.size // 8)
        mask[c.size : 8 * n8] = False
        words = mask[: 8 * n8].view(np.uint64)
        w = np.flatnonzero(np.not_equal(words, 0, out=busy[:n8]))  # few words hold candidates
        bits = np.flatnonzero(words[w].view(bool))
        local = (w[bits >> 3] << 3) | (bits & 7)
        v = c[local]
        g = local + s0
        keep = (v != 0) & ((g < YZ) | (flat[g - YZ] != v))  # previous plane; none for plane 0
        out.append(g[keep])
    return np.concatenate(out)
