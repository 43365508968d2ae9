"""``union_pack``: native label ids -> packed ``(instance << 3) | union class`` in one pass (CPU).

What ``transforms.HostLabels`` does per sample, fused: the class of every id through the
rule's step table (``ops.remap.step_table``, the table ``union_semantic`` applies), the id kept
as the instance source where the class is not background, and both packed as
``stage.pack_labels`` packs them, one read of the labels and one write of the result instead of
four passes (remap, where, astype, shift/or). The largest kept id comes back too, so a caller
can renumber when ids do not fit beside the class bits. Equal, bit for bit, to
``pack_labels(union_semantic(l), where(union_semantic(l) != 0, l, 0))`` for ids that fit.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.remap import step_table
    >>> from neurons_jax.rules import get_rule
    >>> lab = np.array([[0, 7, 9]], np.uint32)
    >>> edges, cls = step_table(get_rule("snemi3d"), lab.dtype)
    >>> out, top = union_pack(lab, edges, cls)
    >>> out.tolist(), int(top)
    ([[0, 57, 73]], 9)
"""

from __future__ import annotations

import numba
import numpy as np

SEM_BITS = 3


@numba.njit(cache=True, nogil=True)
def _union_pack(flat, edges, cls, keep, out):  # pragma: no cover - compiled
    n_edges = edges.shape[0]
    top = np.uint64(0)  # unsigned throughout: a signed/unsigned mix would go through float64
    mask29 = np.uint64(0x1FFFFFFF)
    shift = np.uint64(SEM_BITS)
    keep_ids = np.uint64(1 if keep else 0)
    for i in range(flat.shape[0]):
        v = flat[i]
        k = 0  # number of edges <= v: branch-free for the short tables of the rules
        for j in range(n_edges):
            k += edges[j] <= v
        c = np.uint64(cls[k])
        labelled = np.uint64(c != 0)
        u = np.uint64(v) * labelled * keep_ids
        top = max(top, u)
        out[i] = np.uint32(((u & mask29) << shift) | c)
    return top


@numba.njit(cache=True, nogil=True)
def _union_pack_1(flat, e0, c0, c1, keep, out):  # pragma: no cover - compiled
    """The one-edge table of most rules (ids >= e0 -> c1, else c0): a loop LLVM vectorises."""
    top = np.uint64(0)
    mask29 = np.uint64(0x1FFFFFFF)
    shift = np.uint64(SEM_BITS)
    keep_ids = np.uint64(1 if keep else 0)
    lo, hi = np.uint64(c0), np.uint64(c1)
    for i in range(flat.shape[0]):
        v = flat[i]
        up = v >= e0
        c = hi if up else lo
        u = np.uint64(v) * np.uint64(c != 0) * keep_ids
        top = max(top, u)
        out[i] = np.uint32(((u & mask29) << shift) | c)
    return top


def union_pack(labels: np.ndarray, edges: np.ndarray, cls: np.ndarray,
               keep_ids: bool = True) -> tuple[np.ndarray, int]:
    """``(packed uint32, largest kept id)`` of integer ``labels`` (any shape) and a step table.

    A kept id above ``2**29 - 1`` is packed modulo ``2**29``: the caller renumbers then.
    ``keep_ids=False`` packs the class alone (instance 0: instances are made after the warp)."""
    flat = np.ascontiguousarray(labels).reshape(-1)
    if flat.dtype == np.bool_:
        flat = flat.view(np.uint8)
    out = np.empty(flat.size, np.uint32)
    if len(edges) == 0:
        out[:] = 0
        return out.reshape(np.shape(labels)), 0
    edges = edges.astype(flat.dtype)
    if len(edges) == 1:
        top = _union_pack_1(flat, edges[0], cls[0], cls[1], bool(keep_ids), out)
    else:
        top = _union_pack(flat, edges, cls, bool(keep_ids), out)
    return out.reshape(np.shape(labels)), int(top)
