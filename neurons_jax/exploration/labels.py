"""Label tallies fed one z slab at a time: instance sizes, components across slabs, boundaries.

* :class:`IdSizes`: voxel counts per native id. Each slab's ``fastremap.unique`` counts are
  merged into one sorted table (``np.unique`` + ``bincount``), so memory follows the number of
  ids, never the number of voxels.
* :class:`SlabComponents`: 6-connected components of a mask (MitoEM2's interior class) over a
  volume seen slab by slab. Each slab is labelled alone (``nj.ops.connected_components``);
  components touching across a slab face (same y, x in the last plane of one slab and the first
  of the next) are joined by one ``scipy.sparse.csgraph.connected_components`` at the end, and
  the sizes are summed per joined component with ``bincount``.
* :func:`boundary_voxels`: how many labelled voxels of a slab have a 6-neighbour of another
  native id (the slab is read with one plane of halo above and below; the volume's own border
  is not a neighbour).

Example:
    >>> import numpy as np
    >>> mask = np.zeros((4, 3, 3), bool); mask[:, 1, 1] = True; mask[0, 0, 0] = True
    >>> comp = SlabComponents()
    >>> for z in range(0, 4, 2):
    ...     comp.add(mask[z:z + 2])
    >>> sorted(comp.sizes().tolist())
    [1, 4]
    >>> sizes = IdSizes()
    >>> sizes.add(np.array([0, 5, 5])); sizes.add(np.array([5, 7]))
    >>> sizes.ids.tolist(), sizes.counts.tolist()
    ([0, 5, 7], [1, 3, 1])
    >>> lab = np.array([[[1, 1, 2], [0, 0, 2]]])
    >>> int(boundary_voxels(lab, lab > 0, 0, 1))   # every labelled voxel touches another id
    4
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import fastremap
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ..ops import connected_components


def slab_ranges(shape: Sequence[int], voxels: int) -> list[tuple[int, int]]:
    """``[(z0, z1), ...]`` z slabs of whole planes, each at most ``voxels`` voxels (at least one
    plane).

    >>> slab_ranges((10, 4, 4), 40)
    [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    """
    z = int(shape[0])
    plane = max(1, math.prod(int(n) for n in shape[1:]))
    step = max(1, int(voxels) // plane)
    return [(z0, min(z, z0 + step)) for z0 in range(0, z, step)]


class IdSizes:
    """Voxels per id over many chunks: ``ids`` (sorted, unique) and ``counts``."""

    MERGE_AT = 1 << 20  # pending (id, count) rows merged into the table past this many

    def __init__(self):
        self._ids = np.zeros(0, np.uint64)
        self._counts = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._n_pending = 0

    def add(self, labels: np.ndarray) -> None:
        u, c = fastremap.unique(np.ascontiguousarray(labels), return_counts=True)
        self._pending.append((np.asarray(u).astype(np.uint64), np.asarray(c, np.int64)))
        self._n_pending += len(u)
        if self._n_pending > self.MERGE_AT:
            self._merge()

    @property
    def ids(self) -> np.ndarray:
        self._merge()
        return self._ids

    @property
    def counts(self) -> np.ndarray:
        self._merge()
        return self._counts

    def _merge(self) -> None:
        if not self._pending:
            return
        ids = np.concatenate([self._ids, *(u for u, _ in self._pending)])
        counts = np.concatenate([self._counts, *(c for _, c in self._pending)])
        self._pending, self._n_pending = [], 0
        self._ids, inv = np.unique(ids, return_inverse=True)
        self._counts = np.bincount(inv.reshape(-1), weights=counts, minlength=self._ids.size).astype(np.int64)


class SlabComponents:
    """6-connected components of a boolean mask given as consecutive z slabs."""

    def __init__(self):
        self.n = 0  # provisional components so far (ids 1..n across slabs)
        self._sizes: list[np.ndarray] = []
        self._pairs: list[np.ndarray] = []
        self._last: np.ndarray | None = None  # provisional ids of the previous slab's last plane

    def add(self, mask: np.ndarray) -> None:
        """Label the next slab (Z, Y, X) of the mask."""
        mask = np.ascontiguousarray(mask, dtype=bool)
        ids, n = connected_components(mask.view(np.uint8), connectivity=6)
        sizes = np.bincount(ids.reshape(-1), minlength=n + 1)[1:]
        first = ids[0].astype(np.int64)
        first[first > 0] += self.n
        if self._last is not None:
            both = (self._last > 0) & (first > 0)
            if both.any():
                pairs = np.stack([self._last[both], first[both]], axis=1)
                self._pairs.append(np.unique(pairs, axis=0))
        last = ids[-1].astype(np.int64)
        last[last > 0] += self.n
        self._last = last
        self._sizes.append(sizes.astype(np.int64))
        self.n += int(n)

    def sizes(self) -> np.ndarray:
        """Voxels per component of the whole mask (joined across slab faces), in no set order."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        sizes = np.concatenate(self._sizes)
        if not self._pairs:
            return sizes
        pairs = np.concatenate(self._pairs) - 1  # provisional id k -> row k - 1
        graph = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                                  shape=(self.n, self.n))
        n, root = csgraph.connected_components(graph, directed=False)
        return np.bincount(root, weights=sizes, minlength=n).astype(np.int64)


def boundary_voxels(labels: np.ndarray, labelled: np.ndarray, core_start: int, core_stop: int) -> int:
    """Voxels of planes ``[core_start, core_stop)`` of ``labels`` (a slab with halo planes) that
    are ``labelled`` and have a 6-neighbour (inside the slab) of another id."""
    other = np.zeros(labels.shape, bool)
    for ax in range(labels.ndim):
        n = labels.shape[ax]
        if n < 2:
            continue
        a = [slice(None)] * labels.ndim
        b = [slice(None)] * labels.ndim
        a[ax], b[ax] = slice(1, n), slice(0, n - 1)
        diff = labels[tuple(a)] != labels[tuple(b)]
        other[tuple(a)] |= diff
        other[tuple(b)] |= diff
    core = (slice(core_start, core_stop),)
    return int(np.count_nonzero(other[core] & labelled[core]))
