"""Label operations; the backend follows the input (NumPy -> CPU, CuPy -> its GPU).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> nj.ops.union_semantic(np.array([0, 3], np.uint32), "snemi3d").tolist()
    [0, 1]
    >>> ids, n = nj.ops.connected_components(np.array([[[1, 0, 1]]], np.uint8))
    >>> ids.tolist(), n
    ([[[1, 0, 2]]], 2)

CuPy is imported only when a CuPy array arrives. Dispatch, the GPU probe, device choice and the
connectivity tables the ops share live in :mod:`neurons_jax.backend`. Label inputs are integer
arrays of any width (uint64 ids above 2**63 included) or bool masks (labelled as uint8).
"""

from __future__ import annotations

from .blockwise import blockwise_connected_components, blockwise_renumber, blockwise_union_semantic
from .components import connected_components
from .instances import boundary_separated_instances
from .relabel import relabel_after_crop
from .remap import union_semantic
from .renumber import renumber

__all__ = [
    "blockwise_connected_components",
    "blockwise_renumber",
    "blockwise_union_semantic",
    "boundary_separated_instances",
    "connected_components",
    "relabel_after_crop",
    "renumber",
    "union_semantic",
]
