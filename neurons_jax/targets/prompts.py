"""``point_prompts``: positive/negative click prompts per sample, from host-drawn uniforms.

Per sample (VISTA3D-style interactive training): one instance is chosen among the non-zero ids
present, then ``n_pos`` voxels inside it and ``n_neg`` voxels outside it (background or other
instances). All randomness comes in as ``rng_params``, uniforms in [0, 1) drawn on the host
(``PointPrompts.draw`` with the element's own ``numpy.random.Generator``, like the augmentation
parameters), one row ``(u0, u_1..u_npos, v_1..v_nneg)`` per sample:

* the instance is the ``floor(u0 * m)``-th smallest of the m present ids;
* positive i is the ``floor(u_i * c)``-th voxel, in C-raster order, of the c voxels of it;
* negative j is the ``floor(v_j * n)``-th voxel, in C-raster order, of the n voxels not of it.

Only sorts, prefix sums and binary searches (no loop over labels, no host sync on a GPU), with
integer arithmetic after one float64 product, so the NumPy and the CuPy path give the same points.
A sample without instances gets no valid point (instance 0, class -1).

Returns a dict: ``points`` (B, N, 3) int32 ``(z, y, x)`` (z = 0 for 2D ids), N = n_pos + n_neg,
positives first; ``valid`` (B, N) bool; ``positive`` (B, N) bool; ``instance`` (B,) the chosen id
(ids' dtype); ``semantic`` (B,) int64, the semantic class at the first positive (-1 without
``semantic`` or without an instance).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.array([[0, 3, 3], [5, 5, 0]], np.uint8)
    >>> p = nj.targets.point_prompts(ids, None, 1, 1, np.array([0.9, 0.5, 0.0]))
    >>> int(p["instance"][0]), p["points"][0].tolist(), p["valid"][0].tolist()
    (5, [[0, 1, 1], [0, 0, 0]], [True, True])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import array_module, is_cupy_array, on_device_of
from ..ops import _kernels
from . import spec as _spec
from ._common import as_batch

_FUNC = "point_prompts"


def point_prompts(ids, semantic, n_pos: int, n_neg: int, rng_params) -> dict:
    """Point prompts of ``ids`` (``(Y, X)``, ``(Z, Y, X)`` or ``(B, Z, Y, X)``); see the module."""
    ids, ids4 = as_batch(ids, "ids", _FUNC)
    for name, v in (("n_pos", n_pos), ("n_neg", n_neg)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ValueError(f"{_FUNC}: {name} must be an integer >= 0; got {v!r}")
    B = ids4.shape[0]
    width = 1 + n_pos + n_neg
    u = np.asarray(rng_params.get() if is_cupy_array(rng_params) else rng_params, np.float64)
    if u.ndim == 1 and ids.ndim != 4:
        u = u[None]
    if u.shape != (B, width) or not np.all((u >= 0) & (u < 1)):
        raise ValueError(
            f"{_FUNC}: rng_params must be uniforms in [0, 1) of shape {(B, width)} "
            f"(1 + n_pos + n_neg per sample); got shape {u.shape}"
        )
    sem4 = None
    if semantic is not None:
        if not (is_cupy_array(semantic) or isinstance(semantic, np.ndarray)):
            semantic = np.asarray(semantic)
        if tuple(semantic.shape) != tuple(ids.shape):
            raise ValueError(f"{_FUNC}: semantic must have the shape of ids {tuple(ids.shape)}; "
                             f"got {tuple(semantic.shape)}")
        sem4 = semantic.reshape(ids4.shape)
    xp = array_module(ids, semantic)
    with on_device_of(ids):
        return _prompts(xp, ids4, sem4, n_pos, n_neg, xp.asarray(u))


def _kth(xp, hit, counts, frac):
    """Flat index of the ``floor(frac * count)``-th True of each row of ``hit`` (B, V)."""
    k = xp.floor(frac * counts[:, None].astype(xp.float64)).astype(xp.int64)
    k = xp.minimum(k, xp.maximum(counts[:, None] - 1, 0))
    csum = xp.cumsum(hit, axis=1, dtype=xp.int64)
    out = [xp.searchsorted(csum[b], k[b] + 1) for b in range(len(hit))]  # samples, not labels
    return xp.minimum(xp.stack(out), hit.shape[1] - 1)


def _prompts(xp, ids4, sem4, n_pos: int, n_neg: int, u) -> dict:
    B, Z, Y, X = ids4.shape
    V = Z * Y * X
    flat = _kernels.unsigned_view(xp.ascontiguousarray(ids4)).reshape(B, V)
    s = xp.sort(flat, axis=1)
    first = xp.concatenate([s[:, :1] != 0, (s[:, 1:] != s[:, :-1]) & (s[:, 1:] != 0)], axis=1)
    rank = xp.cumsum(first, axis=1, dtype=xp.int64)  # distinct non-zero ids up to here
    m = rank[:, -1]
    pick = xp.minimum(xp.floor(u[:, 0] * m.astype(xp.float64)).astype(xp.int64), xp.maximum(m - 1, 0))
    at = xp.stack([xp.searchsorted(rank[b], pick[b] + 1) for b in range(B)])
    chosen = xp.where(m > 0, s[xp.arange(B), xp.minimum(at, V - 1)], 0).astype(flat.dtype)
    inside = flat == chosen[:, None]
    c_in = inside.sum(axis=1, dtype=xp.int64)
    pos = _kth(xp, inside, c_in, u[:, 1:1 + n_pos])
    neg = _kth(xp, ~inside, V - c_in, u[:, 1 + n_pos:])
    idx = xp.concatenate([pos, neg], axis=1)
    has = m > 0
    valid = xp.concatenate([xp.broadcast_to(has[:, None], pos.shape),
                            xp.broadcast_to((has & (c_in < V))[:, None], neg.shape)], axis=1)
    idx = xp.where(valid, idx, 0)
    points = xp.stack([idx // (Y * X), (idx // X) % Y, idx % X], axis=-1).astype(xp.int32)
    positive = xp.concatenate([xp.ones(pos.shape, bool), xp.zeros(neg.shape, bool)], axis=1)
    if sem4 is None or n_pos == 0:
        cls = xp.full(B, -1, xp.int64)
    else:
        first_pos = sem4.reshape(B, V)[xp.arange(B), idx[:, 0]].astype(xp.int64)
        cls = xp.where(has, first_pos, -1)
    return {"points": points, "valid": valid, "positive": positive,
            "instance": chosen.view(ids4.dtype) if ids4.dtype != flat.dtype else chosen,
            "semantic": cls}


@dataclass(frozen=True)
class PointPrompts:
    """The ``point_prompts`` target: ``target`` (B, N, 3) int32 points, then ``valid``,
    ``positive``, ``instance`` and ``semantic`` (see ``point_prompts``). ``draw(rng)`` gives one
    sample's uniforms (``(1 + n_pos + n_neg,)``; ``draw(rng, batch)`` a batch's). No margin."""

    n_pos: int = 1
    n_neg: int = 1
    outputs = ("target", "valid", "positive", "instance", "semantic")
    channels = 3

    def __post_init__(self):
        for name in ("n_pos", "n_neg"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"PointPrompts: {name} must be an integer >= 0; got {v!r}")

    def draw(self, rng: np.random.Generator, batch: int | None = None) -> np.ndarray:
        shape = (1 + self.n_pos + self.n_neg,)
        return rng.random(shape if batch is None else (batch, *shape))

    def margin(self, voxel_size=None) -> tuple[int, int, int]:
        return (0, 0, 0)

    def __call__(self, ids, semantic=None, mask=None, voxel_size=None, params=None) -> dict:
        if params is None:
            raise ValueError("PointPrompts: params (the uniforms of draw) are required")
        p = point_prompts(ids, semantic, self.n_pos, self.n_neg, params)
        return {"target": p.pop("points"), **p}


_spec.register("point_prompts", PointPrompts)
