"""Last phases: each block's provisional labels rewritten through its own table.

``write_components`` builds block b's table (``numbering.block_table``; kept compressed as
``table/<block>.rec`` next to the output), reads the block's provisional labels back (the
block is never read or labelled again), writes ``table[ids]`` as whole output chunks, then leaves
a ``write/<block>`` marker; a rerun skips marked blocks. Rewriting a block is harmless, so a
task that dies between its write and its marker is simply done again.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.write import apply_table
    >>> apply_table(np.array([[0, 2], [1, 2]], np.uint32), np.array([0, 7, 5], np.uint32)).tolist()
    [[0, 5], [7, 5]]
"""

from __future__ import annotations

import numpy as np

from .job import Job


def apply_table(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[ids]``: in place by fastremap for uint32 tables (compiled ahead of time: no JIT
    start-up in each worker), a NumPy take otherwise."""
    if table.dtype == np.uint32:
        import fastremap

        ids = np.ascontiguousarray(ids, np.uint32)  # a copy of uint16 ids: one fast pass
        flat = fastremap.remap_from_array(ids.reshape(-1), np.ascontiguousarray(table), in_place=True)
        return flat.reshape(ids.shape)
    return np.asarray(table)[ids]


def write_components(job: Job, bid: int, offsets: dict[int, int], dtype: str) -> None:
    """Relabel block ``bid``'s provisional labels with its final table and write them."""
    if job.state.has(f"write/{bid}"):
        return
    from .label import provisional_ids
    from .numbering import block_table

    rec = job.state.get_arrays(f"table/{bid}.rec")
    if rec is None:
        table = block_table(job, bid, offsets, np.dtype(dtype))
        job.state.put_arrays(f"table/{bid}.rec", compress=True, table=table)
    else:
        table = rec["table"]
    lab = job.state.get_arrays(f"label/{bid}.rec")
    ids = provisional_ids(job, bid, int(lab["n"]), int(lab["voxels"]))
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
    job.write_block(bid, np.asarray(table)[pos])
    job.state.put(f"write/{bid}", b"")
