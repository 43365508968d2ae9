"""``union_semantic``: native label ids -> uint8 union classes through a dataset's rule table.

Every dataset kind has a sorted table of inclusive id ranges -> union class
(``neurons_jax.rules.get_rule(kind).ranges``); ids outside every range are background. The
table becomes a step function (the ids where the class changes) applied in one pass: on the
CPU a few in-cache comparisons per chunk (a binary search for long tables), on the GPU one
kernel doing a binary search of the table (``kernels/remap.cu``). Comparisons are made in the
labels' own dtype, so uint64 ids above 2**63 and the uint64-max "no data" value of CREMI map
exactly. Classes named in ``ignore_classes`` become background.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.array([0, 5, 1_000_000, 2_000_000, 2**64 - 1], np.uint64)
    >>> nj.ops.union_semantic(ids, "cremi3d").tolist()
    [0, 1, 2, 3, 0]
    >>> nj.ops.union_semantic(np.array([0, 1, 2], np.uint8), "mitoem2", ("mito_boundary",)).tolist()
    [0, 3, 0]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import rules
from ..backend import is_cupy_array, on_device_of
from . import _kernels
from ._checks import check_labels

_FUNC = "union_semantic"
CHUNK = 1 << 16
MAX_CHAIN = 12


def union_semantic(labels, kind: str | rules.LabelRule, ignore_classes: Iterable[str] = ()):
    """Union classes (uint8, same shape and backend) of native ``labels`` of dataset ``kind``.

    Args:
        labels: integer or bool array (uint8…uint64, int8…int64, bool as uint8; negative ids
            are background).
        kind: a registered dataset kind (``nj.rules.known_kinds()``) or a ``LabelRule``.
        ignore_classes: union class names (``nj.UNION_CLASSES``) mapped to background.
    """
    labels = check_labels(labels, "labels", _FUNC)
    rule = rules.get_rule(kind)
    ignore = _ignored(ignore_classes)
    edges, cls = step_table(rule, labels.dtype, ignore)
    if is_cupy_array(labels):
        with on_device_of(labels):
            return _remap_gpu(labels, edges, cls)
    return _remap_cpu(labels, edges, cls)


def _ignored(ignore_classes) -> frozenset[int]:
    if isinstance(ignore_classes, str):
        ignore_classes = (ignore_classes,)
    out = set()
    for name in ignore_classes:
        if not isinstance(name, str):
            raise ValueError(
                f"{_FUNC}: ignore_classes holds class names ({', '.join(rules.UNION_CLASSES)}); "
                f"got {name!r}"
            )
        out.add(rules.class_index(name))
    return frozenset(out)


def step_table(rule: rules.LabelRule, dtype, ignore: frozenset[int] = frozenset()):
    """``(edges, cls)``: ids where the class changes (in ``dtype``) and the len+1 classes.

    An id v has class ``cls[k]`` with k the number of edges <= v.
    """
    info = np.iinfo(dtype)
    points: dict[int, int] = {}
    for lo, hi, c in rule.ranges:  # sorted and disjoint
        points[lo] = 0 if c in ignore else c
        if hi < rules.U64_MAX:
            points.setdefault(hi + 1, 0)
    edges, cls, prev = [], [0], 0
    for e in sorted(points):
        if e > info.max or points[e] == prev:
            continue
        edges.append(e)
        cls.append(points[e])
        prev = points[e]
    return np.array(edges, dtype=dtype), np.array(cls, dtype=np.uint8)


def _remap_cpu(labels: np.ndarray, edges: np.ndarray, cls: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(labels).reshape(-1)
    out = np.zeros(flat.size, np.uint8)
    if len(edges) == 0 or flat.size == 0:
        return out.reshape(labels.shape)
    if len(edges) > MAX_CHAIN:
        for s in range(0, flat.size, CHUNK):
            k = np.searchsorted(edges, flat[s : s + CHUNK], side="right")
            out[s : s + CHUNK] = cls[k]
        return out.reshape(labels.shape)
    # class(v) = sum_j [v >= edges[j]] * (cls[j+1] - cls[j])  (mod 256, telescoping)
    steps = [np.uint8((int(b) - int(a)) & 0xFF) for a, b in zip(cls[:-1], cls[1:])]
    mask = np.empty(min(CHUNK, flat.size), bool)
    mu = mask.view(np.uint8)
    for s in range(0, flat.size, CHUNK):
        a, o = flat[s : s + CHUNK], out[s : s + CHUNK]
        m, u = mask[: len(a)], mu[: len(a)]
        for e, d in zip(edges, steps):
            np.greater_equal(a, e, out=m)
            if d != 1:
                np.multiply(u, d, out=u)
            np.add(o, u, out=o)
    return out.reshape(labels.shape)


def _remap_gpu(labels, edges: np.ndarray, cls: np.ndarray):
    import cupy

    lab = cupy.ascontiguousarray(labels)
    if len(edges) == 0 or lab.size == 0:
        return cupy.zeros(lab.shape, cupy.uint8)
    out = cupy.empty(lab.shape, cupy.uint8)
    kernel = _kernels.get_function("remap.cu", f"union_remap<{_kernels.ctype(lab.dtype)}>")
    args = (lab, out, cupy.asarray(edges), cupy.asarray(cls), np.int32(len(edges)))
    _kernels.launch(kernel, lab.size, (*args, np.int64(lab.size)))
    return out
