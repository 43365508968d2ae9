"""``footprint``: the part of a sample's context its own warp reads.

``context_shape(cfg, patch, voxel)`` is the worst case over every draw (the largest rotation,
scale, elastic and misalignment the config allows), so that a batch can be read with one fixed
shape. One sample's params usually need much less (a median third of the context for the
default config at 32x256x256). ``footprint(params)`` bounds, per axis, every tap the warp of
``params`` takes (bilinear/trilinear ``floor(s)`` and ``floor(s) + 1``, nearest ``rint(s)``, each
clamped to the context as the warp clamps it) and returns the box ``(origin, shape)`` of the
context that holds them all; reading, union, packing and float conversion then run on that box
only, and ``apply(params, box..., origin=origin)`` gives exactly the output of the whole context.

The bound is analytic, from the params alone (no coordinate arrays): the source coordinate of
axis ``i`` is ``c_i + A[i] . q + d_i + t_i`` (``grid``'s formula) with ``q`` in the patch's centred
box, so the affine term lies within ``+-sum_j |A[i, j]| h_j``; the elastic ``d_i`` is a cubic
B-spline, a convex combination of its control values, so it lies within their min and max; the
misalignment ``t_i`` within its per-section min and max. One voxel more on each side absorbs the
float32 rounding of the coordinates (planar z is exact: integers, no margin).

Example:
    >>> import numpy as np
    >>> from neurons_jax.augment import AugmentConfig, draw
    >>> p = draw(AugmentConfig(), np.random.default_rng(3), (32, 256, 256), (10, 10, 10))
    >>> origin, shape = footprint(p)
    >>> bool(np.all(origin >= 0) and np.all(origin + shape <= p.context_shape))
    True
    >>> int(np.prod(shape)) < int(np.prod(p.context_shape))
    True
"""

from __future__ import annotations

import math

import numpy as np

MARGIN = 1  # voxels of slack for float32 rounding of the coordinates


def source_bounds(params) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` float64 (3,): bounds of every source coordinate of the warp (before taps)."""
    p = np.asarray(params.patch_shape, np.float64)
    c = (np.asarray(params.context_shape, np.float64) - 1) / 2
    h = (p - 1) / 2
    a = np.abs(np.asarray(params.affine, np.float64)) @ h
    lo, hi = c - a, c + a
    if params.elastic is not None:
        g = np.asarray(params.elastic, np.float64).reshape(len(params.elastic), -1)
        lo[: len(g)] += np.minimum(g.min(1), 0.0)
        hi[: len(g)] += np.maximum(g.max(1), 0.0)
    if params.misalign is not None and len(params.misalign):
        t = np.asarray(params.misalign, np.float64)
        lo[1:] += np.minimum(t.min(0), 0.0)
        hi[1:] += np.maximum(t.max(0), 0.0)
    return lo, hi


def footprint(params) -> tuple[np.ndarray, np.ndarray]:
    """``(origin, shape)`` int64 (3,) of the context box that holds every tap of ``params``' warp."""
    ctx = np.asarray(params.context_shape, np.int64)
    lo, hi = source_bounds(params)
    first = np.empty(3, np.int64)
    last = np.empty(3, np.int64)
    for i in range(3):
        exact = i == 0 and params.planar
        m = 0 if exact else MARGIN
        first[i] = math.floor(lo[i]) - m
        last[i] = math.floor(hi[i]) + 1 + m  # the upper bilinear tap (nearest rint(s) <= this)
    first = np.clip(first, 0, ctx - 1)
    last = np.clip(last, 0, ctx - 1)
    if params.planar:  # z taps are the exact section indices c_z + q_z
        last[0] = min(int(ctx[0]) - 1, math.floor(hi[0]))
    return first, last - first + 1


def covers(params, origin, shape) -> bool:
    """Whether the box ``(origin, shape)`` lies inside ``params.context_shape``."""
    o, s = np.asarray(origin), np.asarray(shape)
    return bool(np.all(o >= 0) and np.all(s >= 1) and np.all(o + s <= np.asarray(params.context_shape)))
