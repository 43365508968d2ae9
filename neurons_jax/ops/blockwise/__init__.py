"""Blockwise label ops for volumes larger than one machine, run on Dask.

``blockwise_connected_components`` labels each block once (keeping its provisional labels
beside the output), joins blocks through the equivalences found on their faces by a
hierarchical merge over groups of neighbouring blocks (no volume-wide table anywhere), and
rewrites each block through its own table: ``order="raster"`` equals the in-memory
``connected_components`` (same numbering), ``order="blocks"`` numbers by first block then
raster order inside it (docs/blockwise.md).
``blockwise_union_semantic`` maps blocks to union classes; ``blockwise_renumber`` compacts ids
through a distributed unique. Jobs resume from the records in ``DEST.blockwise/``. Importing
this package does not import Dask (it loads when a job starts).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.ops.blockwise import blockwise_renumber
    >>> src = nj.Volume.from_array(np.array([[[9, 0], [2**40, 9]]], np.uint64), (1, 1, 1))
    >>> vol, old = blockwise_renumber(src, "memory://doc-init/out", (1, 1, 1),
    ...                               client="synchronous", progress=False)
    >>> vol.read().tolist(), old.tolist()
    ([[[1, 0], [2, 1]]], [0, 9, 1099511627776])
"""

from .api import (
    blockwise_connected_components,
    blockwise_renumber,
    blockwise_union_semantic,
    cli_components,
)
from .plan import BlockGrid

__all__ = [
    "BlockGrid",
    "blockwise_connected_components",
    "blockwise_renumber",
    "blockwise_union_semantic",
    "cli_components",
]
