"""``affinities``: the affinity graph of instance ids for any offsets, with its mask.

Gunpowder's definition (``AddAffinities`` / ``seg_to_affgraph``): for an offset ``o`` the
affinity *at* voxel ``v`` is 1 iff ``ids[v] == ids[v + o]`` and both are non-zero (0 is
background). The value sits at the voxel the offset starts from, so with gunpowder's usual
negative offsets ``(-1, 0, 0)`` the affinity of ``v`` links it to the voxel before it. The mask
is 1 where the pair is usable for a loss: ``v + o`` lies inside the array (inside its sample for a
batch) and both voxels are known (``mask != 0`` at both; gunpowder's ``affinities_mask`` built from
``labels_mask``). Outside the array gunpowder writes affinity 0 and mask 0, and so do we. Output
channels are last: ``(..., C)`` uint8 for ``(..., )`` ids (gunpowder puts them first).

Offsets are ``(dz, dy, dx)`` for 3D ids and batches, ``(dy, dx)`` for 2D ids; long-range ones
such as ``LONG_RANGE`` are fine. A NumPy input runs on the CPU (one slice comparison per
channel), a CuPy input on its GPU (``kernels/targets_affinities.cu``, one launch for all channels).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.array([[1, 1, 2], [1, 0, 2]], np.uint32)
    >>> aff, m = nj.targets.affinities(ids, [(0, -1), (-1, 0)])
    >>> aff[..., 0].tolist(), m[..., 0].tolist()
    ([[0, 1, 0], [0, 0, 0]], [[0, 1, 1], [0, 1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..backend import array_module, is_cupy_array, on_device_of
from ..ops import _kernels
from . import spec as _spec
from ._common import as_batch, check_mask, offsets3

_FUNC = "affinities"
NEAREST = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
"""The nearest-neighbour offsets (gunpowder's default neighbourhood)."""
LONG_RANGE = (
    (-1, 0, 0), (0, -1, 0), (0, 0, -1), (-2, 0, 0), (0, -9, 0), (0, 0, -9), (0, -27, 0), (0, 0, -27),
)
"""A common long-range neighbourhood for anisotropic EM (Lee et al. 2017 style)."""


def affinities(ids, offsets: Sequence[Sequence[int]] = NEAREST, mask=None):
    """Affinities and their mask.

    Args:
        ids: instance ids, integer or bool, ``(Y, X)``, ``(Z, Y, X)`` or ``(B, Z, Y, X)``, NumPy
            or CuPy.
        offsets: C offsets, ``(dz, dy, dx)`` each (``(dy, dx)`` for 2D ids).
        mask: optional array of ids' shape, non-zero where the labels are known.

    Returns:
        ``(aff, aff_mask)``: uint8 arrays of shape ``ids.shape + (C,)`` on ids' backend.
    """
    ids, ids4 = as_batch(ids, "ids", _FUNC)
    offs = offsets3(offsets, ids.ndim, _FUNC)
    mask = check_mask(mask, ids.shape, "mask", _FUNC)
    array_module(ids, mask)  # refuses a NumPy/CuPy mix
    m4 = None if mask is None else mask.reshape(ids4.shape)
    if is_cupy_array(ids):
        with on_device_of(ids):
            aff, am = _affinities_gpu(ids4, offs, m4)
    else:
        aff, am = _affinities_cpu(ids4, offs, m4)
    shape = (*ids.shape, len(offs))
    return aff.reshape(shape), am.reshape(shape)


def _pair_slices(shape: tuple[int, ...], o: np.ndarray):
    """Slices (here, there) over (Z, Y, X) of the voxels v with v + o inside, and of v + o."""
    here, there = [], []
    for n, d in zip(shape, o):
        d = int(d)
        here.append(slice(max(0, -d), max(0, min(n, n - d))))
        there.append(slice(max(0, d), max(0, min(n, n + d))))
    return (slice(None), *here), (slice(None), *there)


def _affinities_cpu(ids4: np.ndarray, offs: np.ndarray, m4):
    C = len(offs)
    aff = np.zeros((*ids4.shape, C), np.uint8)
    am = np.zeros((*ids4.shape, C), np.uint8)
    for c, o in enumerate(offs):  # channels, not labels
        here, there = _pair_slices(ids4.shape[1:], o)
        a, b = ids4[here], ids4[there]
        aff[(*here, c)] = (a == b) & (a != 0)
        am[(*here, c)] = 1 if m4 is None else m4[here] & m4[there]
    return aff, am


def _affinities_gpu(ids4, offs: np.ndarray, m4):
    import cupy

    B, Z, Y, X = ids4.shape
    C = len(offs)
    total = ids4.size
    aff = cupy.empty((*ids4.shape, C), cupy.uint8)
    am = cupy.empty((*ids4.shape, C), cupy.uint8)
    if total == 0:
        return aff, am
    lab = _kernels.unsigned_view(cupy.ascontiguousarray(ids4)).reshape(-1)
    has_mask = m4 is not None
    mask = cupy.ascontiguousarray(m4).reshape(-1) if has_mask else cupy.zeros(1, cupy.uint8)
    dev_offs = cupy.asarray(offs.astype(np.int32).reshape(-1))
    f = _kernels.get_function("targets_affinities.cu",
                              f"target_affinities<{_kernels.ctype(lab.dtype)}>")
    _kernels.launch(f, total, (lab, mask, np.int32(has_mask), dev_offs, np.int32(C), aff, am,
                               np.int64(Z), np.int64(Y), np.int64(X), np.int64(total)))
    return aff, am


@dataclass(frozen=True)
class Affinities(_spec.Deterministic):
    """The ``affinities`` target: ``target`` (..., C) uint8 and ``mask`` (..., C) uint8.

    ``offsets`` are ``(dz, dy, dx)``; the margin is the largest |offset| along each axis.
    """

    offsets: tuple[tuple[int, int, int], ...] = NEAREST
    outputs = ("target", "mask")

    def __post_init__(self):
        offs = offsets3(self.offsets, 3, "Affinities")
        object.__setattr__(self, "offsets", tuple(tuple(int(v) for v in o) for o in offs))

    @property
    def channels(self) -> int:
        return len(self.offsets)

    def margin(self, voxel_size=None) -> tuple[int, int, int]:
        m = np.abs(np.array(self.offsets)).max(0)
        return int(m[0]), int(m[1]), int(m[2])

    def __call__(self, ids, semantic=None, mask=None, voxel_size=None, params=None) -> dict:
        offs = self.offsets if ids.ndim != 2 else [o[1:] for o in self.offsets]
        aff, am = affinities(ids, offs, mask)
        return {"target": aff, "mask": am}


_spec.register("affinities", Affinities)
