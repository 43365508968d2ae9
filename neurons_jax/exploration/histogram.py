"""``StreamingHistogram``: a mergeable value histogram fed chunk by chunk, and its percentiles.

Values are counted in bins ``[k * width, (k + 1) * width)`` on a grid anchored at 0, kept as a
sparse ``(k, count)`` table merged after each chunk (``np.unique`` + ``bincount``, no loop over
values). Integer images start at ``width = 1``: every distinct value has its own bin, so the
histogram and the percentiles are **exact** (equal to ``np.percentile`` with its default linear
interpolation). When the table would pass ``max_bins`` distinct bins (an int32 image with
millions of distinct values, or any float image), the width doubles and bin ``k`` merges into
``k // 2``: exact merges on the anchored grid, so the memory stays bounded by ``max_bins``.
Float images start at a power-of-two width of about ``(max - min) / max_bins`` of their first
chunk; their percentiles are a **streaming approximation**, within one bin width of the exact
value (``abs_error``). NaN and inf are counted apart (``non_finite``) and left out.

Example:
    >>> import numpy as np
    >>> h = StreamingHistogram(np.uint8)
    >>> for chunk in (np.array([0, 3, 3]), np.array([7, 9])):
    ...     h.add(chunk)
    >>> h.count, h.exact, h.percentiles([0, 50, 100]).tolist()
    (5, True, [0.0, 3.0, 9.0])
    >>> np.percentile([0, 3, 3, 7, 9], [25, 75]).tolist() == h.percentiles([25, 75]).tolist()
    True
    >>> f = StreamingHistogram(np.float32, max_bins=64)
    >>> f.add(np.linspace(0, 1, 1001, dtype=np.float32))
    >>> bool(abs(f.percentiles([50])[0] - 0.5) <= f.abs_error)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MAX_BINS = 1 << 16


class StreamingHistogram:
    """A histogram of the values of a volume, fed with :meth:`add` one chunk at a time."""

    def __init__(self, dtype, max_bins: int = MAX_BINS):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "uifb":
            raise TypeError(f"StreamingHistogram: expected an integer or float dtype; got {self.dtype}")
        if max_bins < 2:
            raise ValueError(f"StreamingHistogram: max_bins must be >= 2; got {max_bins}")
        self.max_bins = int(max_bins)
        self.integer = self.dtype.kind in "uib"
        self.width: float | None = 1.0 if self.integer else None
        self._keys = np.zeros(0, np.int64)  # bin indices k, sorted (sparse table)
        self._counts = np.zeros(0, np.int64)
        bits = 8 * self.dtype.itemsize
        # (u)int8/16 and bool: one dense count per possible value (at most 65536 int64)
        self._dense = None
        if self.integer and bits <= 16 and 2**bits <= self.max_bins:
            self._dense_min = 0 if self.dtype.kind in "ub" else -(2 ** (bits - 1))
            self._dense = np.zeros(2 if self.dtype.kind == "b" else 2**bits, np.int64)
        self.non_finite = 0
        self.vmin = math.inf
        self.vmax = -math.inf

    # ------------------------------------------------------------------ feeding
    def add(self, values: np.ndarray) -> None:
        """Count the values of one chunk (any shape)."""
        v = np.asarray(values).reshape(-1)
        if v.size == 0:
            return
        if not self.integer:
            finite = np.isfinite(v)
            n_bad = int(v.size - np.count_nonzero(finite))
            if n_bad:
                self.non_finite += n_bad
                v = v[finite]
            if v.size == 0:
                return
        lo, hi = v.min(), v.max()
        self.vmin, self.vmax = min(self.vmin, float(lo)), max(self.vmax, float(hi))
        if self.width is None:  # the first float chunk sets a power-of-two width
            span = max(float(hi) - float(lo), abs(float(hi)) * 1e-6, 1e-30)
            self.width = 2.0 ** math.ceil(math.log2(span / self.max_bins))
        if self._dense is not None:  # a bincount over the chunk's range, added in place
            off = int(lo)
            c = np.bincount((v.astype(np.int32) - off).view(np.uint32), minlength=int(hi) - off + 1)
            start = off - self._dense_min
            self._dense[start : start + c.size] += c
            return
        if self.integer and self.width == 1.0:
            keys, counts = np.unique(v.astype(np.int64), return_counts=True)
        else:
            keys, counts = np.unique(np.floor(v.astype(np.float64) / self.width).astype(np.int64),
                                     return_counts=True)
        self._merge(keys, counts.astype(np.int64))
        while self._keys.size > self.max_bins:
            self._coarsen()

    @property
    def keys(self) -> np.ndarray:
        """Bin indices k (sorted) of the bins that hold values."""
        if self._dense is not None:
            return np.flatnonzero(self._dense).astype(np.int64) + self._dense_min
        return self._keys

    @property
    def counts(self) -> np.ndarray:
        """Values counted in each bin of :attr:`keys`."""
        if self._dense is not None:
            return self._dense[self._dense != 0]
        return self._counts

    def merge(self, other: StreamingHistogram) -> None:
        """Add the counts of another histogram (of the same kind) to this one."""
        if self._dense is not None and other._dense is not None and self._dense.size == other._dense.size:
            self._dense += other._dense
            self.vmin, self.vmax = min(self.vmin, other.vmin), max(self.vmax, other.vmax)
            return
        if self._dense is not None:  # mixed kinds: continue as a sparse table
            self._keys, self._counts, self._dense = self.keys, self.counts, None
        if other.count == 0:
            self.non_finite += other.non_finite
            return
        if self.width is None:
            self.width = other.width
        keys, counts = other.keys, other.counts
        ow = other.width
        while ow < self.width:  # bring the finer one onto the coarser grid
            keys, ow = np.floor_divide(keys, 2), ow * 2
        while self.width < ow:
            self._coarsen()
        self._merge(keys, counts)
        self.vmin, self.vmax = min(self.vmin, other.vmin), max(self.vmax, other.vmax)
        self.non_finite += other.non_finite
        while self._keys.size > self.max_bins:
            self._coarsen()

    def _coarsen(self) -> None:
        self.width *= 2.0
        if self._keys.size:
            self._merge(np.floor_divide(self._keys, 2), self._counts, replace=True)

    def _merge(self, keys: np.ndarray, counts: np.ndarray, replace: bool = False) -> None:
        if not replace and self._keys.size and keys.size and keys[0] >= self._keys[0] \
                and keys[-1] <= self._keys[-1]:
            at = np.searchsorted(self._keys, keys)
            if np.array_equal(self._keys[np.minimum(at, self._keys.size - 1)], keys):
                self._counts[at] += counts  # every key already has a bin (the usual case)
                return
        if not replace:
            keys, counts = np.concatenate([self._keys, keys]), np.concatenate([self._counts, counts])
        u, inv = np.unique(keys, return_inverse=True)
        self._keys = u.astype(np.int64)
        self._counts = np.bincount(inv.reshape(-1), weights=counts, minlength=u.size).astype(np.int64)

    # ------------------------------------------------------------------ reading
    @property
    def count(self) -> int:
        """Number of finite values counted."""
        return int(self.counts.sum())

    @property
    def exact(self) -> bool:
        """Whether every distinct value has its own bin (integers at width 1)."""
        return self.integer and self.width == 1.0

    @property
    def abs_error(self) -> float:
        """Largest error of a percentile: 0 when exact, else one bin width."""
        return 0.0 if self.exact else float(self.width or 0.0)

    def mean(self) -> float:
        """Mean of the values (bin centres when not exact)."""
        if self.count == 0:
            return math.nan
        return float(np.dot(self._values(), self.counts) / self.count)

    def _values(self) -> np.ndarray:
        """The value each bin stands for: the value itself (exact) or the bin centre."""
        if self.exact:
            return self.keys.astype(np.float64)
        centres = (self.keys.astype(np.float64) + 0.5) * self.width
        return np.clip(centres, self.vmin, self.vmax)

    def percentiles(self, q: Sequence[float]) -> np.ndarray:
        """``np.percentile(values, q)`` (linear interpolation), exact for integer images."""
        q = np.asarray(q, np.float64)
        n = self.count
        if n == 0:
            return np.full(q.shape, np.nan)
        pos = q / 100.0 * (n - 1)  # the (fractional) rank np.percentile interpolates at
        lo_rank, hi_rank = np.floor(pos).astype(np.int64), np.ceil(pos).astype(np.int64)
        ends = np.cumsum(self.counts)  # ranks [ends - counts, ends) hold bin i's value
        vals = self._values()
        lo_v = vals[np.searchsorted(ends, lo_rank, side="right")]
        hi_v = vals[np.searchsorted(ends, hi_rank, side="right")]
        return lo_v + (hi_v - lo_v) * (pos - lo_rank)

    def binned(self, n_bins: int = 64) -> dict:
        """``{"edges": [...], "counts": [...]}``: the histogram on ``n_bins`` equal bins over
        [min, max] (for pictures and the report)."""
        if self.count == 0:
            return {"edges": [], "counts": []}
        lo, hi = self.vmin, self.vmax
        if hi <= lo:
            return {"edges": [lo, lo + 1.0], "counts": [self.count]}
        if self.exact and hi - lo + 1 <= n_bins:  # few integer values: one bin each
            edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5
        else:
            edges = np.linspace(lo, hi, n_bins + 1)
        counts, _ = np.histogram(self._values(), bins=edges, weights=self.counts)
        return {"edges": edges.tolist(), "counts": counts.astype(np.int64).tolist()}
