"""What a dataset root holds: volumes, shapes, voxel sizes, label classes present.

``summarize(root, kind=None)`` opens every split through the registered reader of ``kind``
(read from ``metadata.json`` for a prepared root) and returns plain dicts; ``describe`` formats them for
``neurons-jax info``. Classes come from the unique ids of the label mapped through the dataset's
label rule with ``searchsorted`` over its id ranges, never a loop over labels. Reads are
bounded: a label of at most ``max_voxels`` is read whole (in slabs of at most ``READ_VOXELS``),
a larger one through at most ``max_voxels`` voxels of evenly spread ``WINDOW`` windows
(:func:`sample_windows`), and the summary says which share it saw. ``summarize`` raises
:class:`NothingReadable` when no split of the root opens.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> lab = nj.Volume.from_array(np.array([[[0, 5, 1_000_003]]], np.uint64), (40, 4, 4))
    >>> classes_present(lab, "cremi3d")
    (('background', 'neuron', 'cleft'), 2)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import fastremap
import numpy as np

from ..rules import UNION_CLASSES, LabelRule, get_rule
from ..volumes import Volume
from ._common import is_prepared, read_metadata
from .base import SPLITS
from .registry import get_kind, kind_names

MAX_VOXELS = 1 << 24  # label voxels read per volume (default of --max-voxels)
READ_VOXELS = 1 << 22  # voxels per read: a whole label is read in z slabs of at most this
WINDOW = (1, 256, 256)  # one sampling window of a label larger than max_voxels


class NothingReadable(ValueError):
    """No split of a dataset root could be opened."""


def sample_windows(shape: Sequence[int], max_voxels: int = MAX_VOXELS,
                   window: Sequence[int] = WINDOW) -> list[tuple[slice, ...]]:
    """Boxes to read of a volume of ``shape``: z slabs covering it when it has at most
    ``max_voxels``, else windows of ``window`` on an even 3D lattice, at most ``max_voxels`` in
    all (each box at most ``max(READ_VOXELS, window)`` voxels).

    >>> sample_windows((4, 8, 8), 1000)
    [(slice(0, 4, None), slice(0, 8, None), slice(0, 8, None))]
    >>> boxes = sample_windows((100, 10_000, 10_000), 1 << 20)
    >>> len(boxes), sum(math.prod(b.stop - b.start for b in box) for box in boxes) <= 1 << 20
    (16, True)
    """
    shape = tuple(int(n) for n in shape)
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be >= 1; got {max_voxels}")
    if math.prod(shape) <= max_voxels:
        plane = max(1, math.prod(shape[1:]))
        step = max(1, READ_VOXELS // plane)
        return [(slice(z, min(shape[0], z + step)), *(slice(0, n) for n in shape[1:]))
                for z in range(0, shape[0], step)]
    win = [max(1, min(int(w), n)) for w, n in zip(window, shape)]
    while math.prod(win) > max_voxels:  # a budget below one window: shrink it, in-plane first
        ax = max(range(len(win)), key=lambda a: win[a])
        win[ax] = max(1, win[ax] // 2)
    slots = [n // w for n, w in zip(shape, win)]  # disjoint window positions per axis
    counts, budget = [1] * len(shape), max_voxels // math.prod(win)
    while True:  # add windows along the axis with the most room per window, within the budget
        ax = max(range(len(shape)), key=lambda a: slots[a] / counts[a])
        if counts[ax] >= slots[ax] or math.prod(counts) // counts[ax] * (counts[ax] + 1) > budget:
            break
        counts[ax] += 1
    starts = [np.unique(np.linspace(0, n - w, k).round().astype(int)) for n, w, k in zip(shape, win, counts)]
    grid = np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(shape))
    return [tuple(slice(int(o), int(o) + w) for o, w in zip(origin, win)) for origin in grid]


def sampled_unique_ids(label: Volume, max_voxels: int = MAX_VOXELS) -> tuple[np.ndarray, float]:
    """(sorted unique ids, share of the voxels read) of ``label`` through :func:`sample_windows`."""
    boxes = sample_windows(label.shape, max_voxels)
    parts = [np.asarray(fastremap.unique(label.read(box))) for box in boxes]
    seen = sum(math.prod(b.stop - b.start for b in box) for box in boxes)
    ids = np.unique(np.concatenate(parts)) if parts else np.zeros(0, label.dtype)
    return ids, seen / max(1, label.size)


def unique_ids(label: Volume, max_voxels: int = MAX_VOXELS) -> np.ndarray:
    """Sorted unique ids of ``label`` (whole, or bounded windows past ``max_voxels``)."""
    return sampled_unique_ids(label, max_voxels)[0]


def classes_present(label: Volume, rule: str | LabelRule, max_voxels: int = MAX_VOXELS,
                    ids: np.ndarray | None = None) -> tuple[tuple[str, ...], int]:
    """(union classes present, number of non-background ids) in ``label`` under ``rule``
    (``ids``: the unique ids when already read)."""
    rule = get_rule(rule)
    ids = (unique_ids(label, max_voxels) if ids is None else np.asarray(ids)).astype(np.uint64)
    lo = np.array([r[0] for r in rule.ranges], np.uint64)
    hi = np.array([r[1] for r in rule.ranges], np.uint64)
    counts = np.searchsorted(ids, hi, side="right") - np.searchsorted(ids, lo, side="left")
    present = {rule.ranges[i][2] for i in np.flatnonzero(counts)}
    n_fg = int(counts.sum())
    if n_fg < ids.size:
        present.add(0)  # ids outside every range are background
    return tuple(UNION_CLASSES[c] for c in sorted(present)), n_fg


def summarize(root: Any, kind: str | None = None, splits=SPLITS, max_voxels: int = MAX_VOXELS,
              **reader_kwargs) -> dict:
    """``{"kind", "root", "prepared", "splits": {split: [volume dicts] or error}}``.

    Each volume dict with a label has ``classes``, ``n_ids`` and ``sampled`` (the share of its
    voxels read). Raises :class:`NothingReadable` when no split in ``splits`` opens.
    """
    prepared = is_prepared(root)
    if prepared:
        meta = read_metadata(root)
        if kind is not None and kind != meta["reader"]:
            raise ValueError(f"{root}: a prepared {meta['reader']!r} root, not {kind!r}")
        kind = meta["reader"]
    if kind is None:
        raise ValueError(f"{root}: not a prepared root; pass the dataset kind (--kind, one of "
                         f"{', '.join(kind_names())})")
    reader = get_kind(kind).reader
    out: dict = {"kind": kind, "root": os.fspath(root) if root is not None else "public",
                 "prepared": prepared, "splits": {}}
    for split in splits:
        try:
            ds = reader(root, split, **reader_kwargs)
        except (FileNotFoundError, KeyError, ValueError, OSError) as e:
            out["splits"][split] = {"error": str(e).splitlines()[0]}
            continue
        vols = []
        for p in ds.pairs:
            rec = {"name": p.name, "shape": p.image.shape, "voxel_size": p.image.voxel_size,
                   "image_dtype": p.image.dtype.name, "z": ds.info["z_ranges"].get(p.name)}
            if p.label is not None:
                ids, share = sampled_unique_ids(p.label, max_voxels)
                classes, n = classes_present(p.label, ds.kind, ids=ids)
                rec.update(label_dtype=p.label.dtype.name, classes=classes, n_ids=n, sampled=share)
            vols.append(rec)
        out["splits"][split] = vols
    if splits and all(isinstance(v, dict) for v in out["splits"].values()):
        by_error: dict[str, list[str]] = {}
        for k, v in out["splits"].items():
            by_error.setdefault(v["error"], []).append(k)
        why = "; ".join(f"{', '.join(ks)}: {e}" for e, ks in by_error.items())
        raise NothingReadable(f"{out['root']}: no readable {kind} split ({why})")
    return out


def describe(root: Any, kind: str | None = None, **kwargs) -> str:
    """A human-readable summary of ``summarize(root, kind)``."""
    s = summarize(root, kind, **kwargs)
    lines = [f"{s['kind']} at {s['root']} ({'prepared' if s['prepared'] else 'native'})"]
    for split, vols in s["splits"].items():
        if isinstance(vols, dict):
            lines.append(f"  {split}: unavailable ({vols['error']})")
            continue
        for v in vols:
            z = f" z {v['z'][0]}:{v['z'][1]}" if v.get("z") else ""
            vs = "x".join(f"{x:g}" for x in v["voxel_size"])
            line = f"  {split:5s} {v['name']:<24s} {str(tuple(v['shape'])):<18s}{z:<12s} {vs} nm  {v['image_dtype']}"
            if "classes" in v:
                seen = "" if v["sampled"] >= 1 else f", sampled {v['sampled']:.2%} of the voxels"
                line += f"  labels {v['label_dtype']}: {', '.join(v['classes'])} ({v['n_ids']} ids{seen})"
            lines.append(line)
    return "\n".join(lines)
