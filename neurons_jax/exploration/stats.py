"""Raw tallies -> the plain, JSON-ready figures of ``stats.json`` and the report.

:func:`summary` turns a :class:`~neurons_jax.exploration.streaming.Tally` into one record:
voxels and physical extent, intensity percentiles and histogram, union-class shares, instances
per class (count, sizes in voxels and µm³, a log2 histogram of sizes) and the boundary
fraction. :func:`group_rows` merges the tallies of volumes that share a group (MitoEM2's cell
type, the part of a pair name before ``/``) into one row each.

Example:
    >>> import numpy as np
    >>> size_summary(np.array([1, 2, 4, 100]), (40.0, 4.0, 4.0))["voxels"]["median"]
    3.0
    >>> log_histogram(np.array([1, 2, 3, 4, 900]))["counts"]
    [1, 2, 1, 0, 0, 0, 0, 0, 0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..rules import UNION_CLASSES
from .streaming import Tally

PERCENTILES = (0.1, 1, 5, 25, 50, 75, 95, 99, 99.9)
SIZE_QUANTILES = (("p10", 10), ("median", 50), ("p90", 90))
BOUNDARY_DEFINITION = ("labelled voxels (union class not background) with at least one of their 6 "
                       "neighbours inside the volume holding another native id, over all labelled voxels")


def log_histogram(sizes: np.ndarray) -> dict:
    """Instances per size bin ``[2^k, 2^(k+1))`` voxels, k = 0 .. floor(log2(max))."""
    sizes = np.asarray(sizes, np.int64)
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return {"edges_voxels": [], "counts": []}
    k = np.floor(np.log2(sizes)).astype(np.int64)
    counts = np.bincount(k, minlength=int(k.max()) + 1)
    edges = [int(2**i) for i in range(len(counts) + 1)]
    return {"edges_voxels": edges, "counts": counts.tolist()}


def size_summary(sizes: np.ndarray, voxel_size: Sequence[float]) -> dict:
    """Count, voxels (min, p10, median, mean, p90, max, total), the same in µm³, log histogram."""
    sizes = np.asarray(sizes, np.int64)
    um3 = math.prod(float(v) for v in voxel_size) / 1e9  # nm³ -> µm³ per voxel
    out: dict = {"count": int(sizes.size)}
    if sizes.size == 0:
        return out
    q = np.percentile(sizes, [p for _, p in SIZE_QUANTILES])
    vox = {"min": int(sizes.min()), **{k: float(v) for (k, _), v in zip(SIZE_QUANTILES, q)},
           "mean": float(sizes.mean()), "max": int(sizes.max()), "total": int(sizes.sum())}
    out["voxels"] = vox
    out["um3"] = {k: v * um3 for k, v in vox.items()}
    out["log_histogram"] = log_histogram(sizes)
    return out


def summary(t: Tally, *, shape: Sequence[int] | None, voxel_size: Sequence[float],
            dtypes: dict, n_bins: int = 64) -> dict:
    """The record of one volume (``shape``) or of a merged group (``shape`` None)."""
    vs = tuple(float(v) for v in voxel_size)
    rec: dict = {"voxels": int(t.voxels), "voxel_size_nm": list(vs), "dtype": dtypes}
    if shape is not None:
        rec["shape"] = [int(n) for n in shape]
        rec["extent_um"] = [n * v / 1000 for n, v in zip(shape, vs)]
    rec["volume_um3"] = t.voxels * math.prod(vs) / 1e9
    rec["anisotropy"] = vs[0] / min(vs[1:]) if min(vs[1:]) > 0 else None
    h = t.histogram
    p = h.percentiles(PERCENTILES)
    rec["intensity"] = {
        "min": h.vmin if h.count else None, "max": h.vmax if h.count else None, "mean": h.mean(),
        "percentiles": {f"{q:g}": float(v) for q, v in zip(PERCENTILES, p)},
        "exact": h.exact, "abs_error": h.abs_error, "non_finite": int(h.non_finite),
        "histogram": h.binned(n_bins),
    }
    rec["chunks"] = int(t.chunks)
    if not t.has_label:
        return rec
    total = max(1, int(t.class_counts.sum()))
    rec["classes"] = {c: {"voxels": int(n), "share": int(n) / total}
                      for c, n in zip(UNION_CLASSES, t.class_counts)}
    by_class = {c: size_summary(s, vs) for c, s in t.instance_sizes.items()}
    rec["instances"] = {"count": sum(v["count"] for v in by_class.values()), "method": t.instance_method,
                        "by_class": by_class}
    rec["boundary"] = {"fraction": t.boundary / t.labelled if t.labelled else 0.0,
                       "voxels": int(t.boundary), "labelled_voxels": int(t.labelled),
                       "definition": BOUNDARY_DEFINITION}
    return rec


def group_of(name: str) -> str | None:
    """The group of a pair name: the part before ``/`` (MitoEM2's cell type), else None."""
    head, sep, _ = name.partition("/")
    return head if sep else None


def group_rows(items: Sequence[tuple[str, Tally, Sequence[float], dict]]) -> list[dict]:
    """One merged record per group of ``(pair name, tally, voxel size, dtypes)`` items (only
    when some name has a group)."""
    groups: dict[str, list] = {}
    for name, t, vs, dt in items:
        g = group_of(name)
        if g is not None:
            groups.setdefault(g, []).append((name, t, vs, dt))
    rows = []
    for g, members in groups.items():
        merged = Tally()
        for _, t, _, _ in members:
            merged.merge(t)
        sizes = {tuple(vs) for _, _, vs, _ in members}
        vs = members[0][2]
        rec = summary(merged, shape=None, voxel_size=vs, dtypes=members[0][3])
        rec.update(group=g, volumes=[m[0] for m in members])
        if len(sizes) > 1:  # µm³ per voxel differs between the volumes: report the first's
            rec["note"] = f"volumes have different voxel sizes {sorted(sizes)}; µm³ uses {tuple(vs)}"
        rows.append(rec)
    return rows
