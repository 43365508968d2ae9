"""Last phases: every block rewritten through its slice of one lookup table into the output.

Each task recomputes what it needs from the input (the block's labels are deterministic, so
nothing block-sized is stored between phases), writes whole output chunks, then leaves a
``write/<block>`` marker; a rerun skips marked blocks. Rewriting a block is harmless, so a task
that dies between its write and its marker is simply done again.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.write import apply_table
    >>> apply_table(np.array([[0, 2], [1, 2]], np.uint32), np.array([0, 7, 5], np.uint32)).tolist()
    [[0, 5], [7, 5]]
"""

from __future__ import annotations

import numpy as np

from .job import Job
from .label import label_array


def apply_table(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[ids]``; in place (fastremap) when both are contiguous uint32 arrays."""
    if ids.dtype == np.uint32 and table.dtype == np.uint32 and ids.flags.c_contiguous:
        import fastremap

        return fastremap.remap_from_array(ids.reshape(-1), table, in_place=True).reshape(ids.shape)
    return table[ids]


def write_components(job: Job, bid: int, table: np.ndarray) -> None:
    """Relabel block ``bid`` and write ``table[local ids]`` (``table[0] == 0``)."""
    if job.state.has(f"write/{bid}"):
        return
    block = job.read_block(bid)
    ids, n = label_array(block, job.options["connectivity"], job.options.get("device", "auto"))
    if n != len(table) - 1:
        raise RuntimeError(
            f"block {bid}: labelled into {n} components now but {len(table) - 1} in phase 1 "
            "(was the input changed while the job ran?)"
        )
    job.write_block(bid, apply_table(ids, table))
    job.state.put(f"write/{bid}", b"")


def write_union(job: Job, bid: int) -> None:
    """Map block ``bid`` to union classes with ``nj.ops.union_semantic`` and write it."""
    if job.state.has(f"write/{bid}"):
        return
    from neurons_jax.ops import union_semantic

    block = job.read_block(bid)
    out = union_semantic(block, job.options["kind"], ignore_classes=tuple(job.options["ignore_classes"]))
    job.write_block(bid, np.asarray(out, np.uint8))
    job.state.put(f"write/{bid}", b"")


def write_renumbered(job: Job, bid: int, uniques: np.ndarray, table: np.ndarray) -> None:
    """Write block ``bid`` with each value ``uniques[i]`` (sorted) replaced by ``table[i]``."""
    if job.state.has(f"write/{bid}"):
        return
    block = job.read_block(bid)
    pos = np.searchsorted(uniques, block)
    job.write_block(bid, apply_table(pos, table))
    job.state.put(f"write/{bid}", b"")
