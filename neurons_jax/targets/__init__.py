"""``nj.targets``: training targets from instance ids, NumPy and CuPy twins chosen by input type.

Functions (pure; ``(Y, X)``, ``(Z, Y, X)`` or batches ``(B, Z, Y, X)``; NumPy in -> CPU, CuPy in ->
its GPU): ``affinities``, ``boundaries``, ``distance``, ``local_shape_descriptors``,
``point_prompts``. Specs for the Loader (``spec`` module: ``margin``, ``__call__``, ``channels``,
``draw``): ``Affinities``, ``Boundaries``, ``Distance``, ``LSD``, ``PointPrompts``; ``make(name,
**kw)`` builds one by its registered name.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.array([[[1, 1, 2]]], np.uint8)
    >>> nj.targets.Affinities(offsets=[(0, 0, -1)])(ids)["target"][..., 0].tolist()
    [[[0, 1, 0]]]
"""

from __future__ import annotations

from . import spec
from .affinities import LONG_RANGE, NEAREST, Affinities, affinities
from .boundaries import Boundaries, boundaries
from .distance import Distance, distance
from .lsd import LSD, local_shape_descriptors
from .prompts import PointPrompts, point_prompts
from .spec import get, make, register, registry_names

__all__ = [
    "LONG_RANGE", "LSD", "NEAREST", "Affinities", "Boundaries", "Distance", "PointPrompts",
    "affinities", "boundaries", "distance", "get", "local_shape_descriptors", "make",
    "point_prompts", "register", "registry_names", "spec",
]
