"""What a dataset root holds: volumes, shapes, voxel sizes, label classes present.

``summarize(root, kind=None)`` opens every split through the registered reader of ``kind``
(read from ``metadata.json`` for a prepared root) and returns plain dicts; ``describe`` formats them for
``neurons-jax info``. Classes come from the unique ids of the label (all of it up to
``max_voxels``, else evenly spaced z sections) mapped through the dataset's label rule with
``searchsorted`` over its id ranges, never a loop over labels.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> lab = nj.Volume.from_array(np.array([[[0, 5, 1_000_003]]], np.uint64), (40, 4, 4))
    >>> classes_present(lab, "cremi3d")
    (('background', 'neuron', 'cleft'), 2)
"""

from __future__ import annotations

import os
from typing import Any

import fastremap
import numpy as np

from ..rules import UNION_CLASSES, LabelRule, get_rule
from ..volumes import Volume
from ._common import is_prepared, read_metadata
from .base import SPLITS
from .registry import get_kind, kind_names


def unique_ids(label: Volume, max_voxels: int = 1 << 24) -> np.ndarray:
    """Sorted unique ids of ``label`` (whole, or evenly spaced z sections past ``max_voxels``)."""
    nz, ny, nx = label.shape
    if label.size <= max_voxels:
        return np.asarray(fastremap.unique(label.read()))
    k = max(1, min(nz, max_voxels // max(1, ny * nx)))
    zs = np.unique(np.linspace(0, nz - 1, k).astype(int))
    parts = [fastremap.unique(label.read((slice(z, z + 1), slice(0, ny), slice(0, nx)))) for z in zs]
    return np.unique(np.concatenate(parts))


def classes_present(label: Volume, rule: str | LabelRule, max_voxels: int = 1 << 24) -> tuple[tuple[str, ...], int]:
    """(union classes present, number of non-background ids) in ``label`` under ``rule``."""
    rule = get_rule(rule)
    ids = unique_ids(label, max_voxels).astype(np.uint64)
    lo = np.array([r[0] for r in rule.ranges], np.uint64)
    hi = np.array([r[1] for r in rule.ranges], np.uint64)
    counts = np.searchsorted(ids, hi, side="right") - np.searchsorted(ids, lo, side="left")
    present = {rule.ranges[i][2] for i in np.flatnonzero(counts)}
    n_fg = int(counts.sum())
    if n_fg < ids.size:
        present.add(0)  # ids outside every range are background
    return tuple(UNION_CLASSES[c] for c in sorted(present)), n_fg


def summarize(root: Any, kind: str | None = None, splits=SPLITS, max_voxels: int = 1 << 24,
              **reader_kwargs) -> dict:
    """``{"kind", "root", "prepared", "splits": {split: [volume dicts] or error}}``."""
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
                classes, n = classes_present(p.label, ds.kind, max_voxels)
                rec.update(label_dtype=p.label.dtype.name, classes=classes, n_ids=n)
            vols.append(rec)
        out["splits"][split] = vols
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
                line += f"  labels {v['label_dtype']}: {', '.join(v['classes'])} ({v['n_ids']} ids)"
            lines.append(line)
    return "\n".join(lines)
