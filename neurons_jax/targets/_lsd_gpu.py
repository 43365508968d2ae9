"""The GPU window sums of ``lsd.local_shape_descriptors`` (``kernels/targets_lsd.cu``).

Every label of every sample is one segment; its bounding box, grown by the window radius, is a
run of items in two flat float32 buffers, so each pass is one launch over all (label, box voxel)
pairs of the batch: no loop over labels. The host reads only the segment boxes (one small copy)
to size the buffers. Per channel: z pass from the ids, y pass, x pass into the sums at the
label's own voxels; the arithmetic is the CPU kernel's (``_lsd_numba``), so both give the same
float32 sums.

Example (GPU only):
    >>> sums = window_sums(cupy_ids4, lsd._plan(sigma, vs, False))  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from ..ops import _kernels


def _segments(ids4):
    """(seg int32 (B*Z*Y*X,), per-segment foreground flags and samples (NumPy), nseg)."""
    import cupy

    B = len(ids4)
    flat = _kernels.unsigned_view(cupy.ascontiguousarray(ids4)).reshape(B, -1)
    seg = cupy.empty(flat.shape, cupy.int32)
    fg, sample, base = [], [], 0
    for b in range(B):  # samples, not labels
        keys, inv = cupy.unique(flat[b], return_inverse=True)
        seg[b] = inv.reshape(-1).astype(cupy.int32) + base
        fg.append((keys != 0).get())
        sample.append(np.full(len(fg[-1]), b, np.int64))
        base += len(fg[-1])
    return seg.reshape(-1), np.concatenate(fg), np.concatenate(sample), base


def window_sums(ids4, plan):
    """(B, Z, Y, X, 10) float32 window sums of a CuPy ``(B, Z, Y, X)`` id array."""
    import cupy

    B, Z, Y, X = ids4.shape
    total = ids4.size
    sums = cupy.zeros((B, Z, Y, X, 10), cupy.float32)
    if total == 0:
        return sums
    seg, fg, sample, nseg = _segments(ids4)
    lo = cupy.full(nseg * 3, np.iinfo(np.int32).max, cupy.int32)
    hi = cupy.full(nseg * 3, -1, cupy.int32)
    f_boxes = _kernels.get_function("targets_lsd.cu", "lsd_boxes")
    _kernels.launch(f_boxes, total, (seg, lo, hi, np.int64(Z), np.int64(Y), np.int64(X),
                                     np.int64(total)))
    lo, hi = lo.get().reshape(nseg, 3).astype(np.int64), hi.get().reshape(nseg, 3).astype(np.int64)
    zyx = np.array([Z, Y, X])
    r = np.array(plan.radius)
    keep = fg & (hi[:, 0] >= 0)
    boxes = np.zeros((nseg, 7), np.int64)
    boxes[:, 0] = sample
    boxes[:, 1::2] = np.maximum(lo - r, 0)
    boxes[:, 2::2] = np.minimum(hi + r + 1, zyx)
    boxes[~keep, 1:] = 0
    vol = np.prod(boxes[:, 2::2] - boxes[:, 1::2], axis=1)
    starts = np.concatenate([[0], np.cumsum(vol)]).astype(np.int64)
    items = int(starts[-1])
    d_boxes, d_starts = cupy.asarray(boxes.reshape(-1)), cupy.asarray(starts)
    cz, cy, cx = (cupy.asarray(_coords(n, v)) for n, v in zip((Z, Y, X), plan.vs))
    wz, wy, wx = (cupy.asarray(w.astype(np.float64)) for w in plan.weights)
    rz, ry, rx = (np.int32(v) for v in plan.radius)
    a = cupy.empty(items, cupy.float32)
    b = cupy.empty(items, cupy.float32)
    f_z = _kernels.get_function("targets_lsd.cu", "lsd_pass_z")
    f_p = _kernels.get_function("targets_lsd.cu", "lsd_pass")
    dims = (np.int64(Z), np.int64(Y), np.int64(X), np.int64(items))
    ns = np.int64(nseg)
    for c in range(10):  # channels, not labels
        _kernels.launch(f_z, items, (seg, d_boxes, d_starts, ns, cz, cy, cx, wz, rz, np.int32(c),
                                     a, *dims))
        _kernels.launch(f_p, items, (a, d_boxes, d_starts, ns, wy, ry, np.int32(1), np.int32(0),
                                     seg, np.int32(c), b, *dims))
        _kernels.launch(f_p, items, (b, d_boxes, d_starts, ns, wx, rx, np.int32(2), np.int32(1),
                                     seg, np.int32(c), sums, *dims))
    return sums


def _coords(n: int, size: float) -> np.ndarray:
    from .lsd import coordinates

    return coordinates(n, size)
