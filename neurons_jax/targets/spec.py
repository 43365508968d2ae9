"""What a training target is, and the registry of targets (one entry per target).

A target *spec* (``Affinities(offsets=...)``, ``LSD(sigma_nm=...)``, ...) is a small frozen
dataclass that the Loader (and a user) calls on a batch of labels:

* ``margin(voxel_size) -> (mz, my, mx)``: the context in voxels the target needs on every side
  of the patch, so that no value inside the patch depends on labels it cannot see (the Loader
  warps the labels over the patch grown by the largest margin, then crops the target);
* ``__call__(ids, semantic=None, mask=None, voxel_size=None, params=None) -> {name: array}``:
  NumPy in, NumPy out; CuPy in, CuPy out. ``outputs[0]`` is always ``"target"`` with the
  channels last, ``(..., channels)``; further outputs (``"mask"``, ``"valid"``, ...) come after;
  the Loader stores ``target`` under the user's key and each other output ``o`` under
  ``f"{key}_{o}"``;
* ``channels``: the size of the target's last axis;
* ``draw(rng, batch) -> params | None``: the host-side random numbers of a random target (point
  prompts), drawn with the element's own ``numpy.random.Generator`` like the augmentation
  parameters; None for deterministic targets.

A new target is one module (its function with NumPy/CuPy twins and its spec) plus one
``register`` call at its end and one import line in ``neurons_jax/targets/__init__.py``; copy one
of ``tests/test_targets_*.py`` for its tests.

Example:
    >>> import neurons_jax as nj
    >>> sorted(nj.targets.registry_names())
    ['affinities', 'boundaries', 'distance', 'lsd', 'point_prompts']
    >>> spec = nj.targets.make("affinities", offsets=[(-1, 0, 0), (0, -9, 0)])
    >>> spec.channels, spec.margin((40, 8, 8))
    (2, (1, 9, 0))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_REGISTRY: dict[str, type] = {}


def register(name: str, cls: type) -> type:
    """Register the spec class ``cls`` as ``name`` (the name ``make`` and configs use)."""
    for attr in ("margin", "__call__", "outputs"):
        if not hasattr(cls, attr):
            raise TypeError(f"target {name!r}: spec class {cls.__name__} lacks {attr}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"target {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registry_names() -> tuple[str, ...]:
    """Registered target names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> type:
    """The spec class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown target {name!r}; registered: {', '.join(_REGISTRY) or 'none'}"
        ) from None


def make(name: str, **kwargs: Any):
    """``get(name)(**kwargs)``."""
    return get(name)(**kwargs)


class Deterministic:
    """Mixin of the targets without random numbers: ``draw`` gives None."""

    def draw(self, rng, batch: int | None = None) -> None:
        return None


def voxels(nm: float, voxel_size: Sequence[float]) -> tuple[int, int, int]:
    """``ceil(nm / size)`` voxels along each of ``voxel_size``'s three axes."""
    vs = tuple(float(v) for v in voxel_size)
    if len(vs) != 3:
        raise ValueError(f"voxel_size must be (z, y, x) in nm; got {voxel_size!r}")
    return tuple(int(math.ceil(nm / v - 1e-9)) for v in vs)  # type: ignore[return-value]


def with_channel(a):
    """``a`` with a trailing channel axis of 1."""
    return a[..., None]
