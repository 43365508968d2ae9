"""``explore(data, out_dir)``: figures, pictures and an HTML report of datasets, split by split.

``data`` is a dataset (``nj.datasets.snemi3d(...)``, any ``Dataset``), a ``"KIND=ROOT"`` spec
(as ``--dataset`` takes; a weight is ignored), a prepared root (its kind is in
``metadata.json``), a native root with ``kind=``, or a list / ``{name: ...}`` mapping of those.
A root is opened for each split in ``splits`` through its kind's registered reader; a split
that does not open is recorded with its error (``nj.explore`` raises only when none opens).
Every volume is streamed in z slabs of at most ``max_bytes`` of working memory
(``neurons_jax.exploration.streaming``), so a 1024³ volume needs no more than a slab.

With ``out_dir`` it writes ``stats.json`` (the returned dict), ``report.html`` (offline: inline
CSS and SVG, PNGs beside it) and per volume ``*_xy.png`` (z sections: image, classes, instances)
and ``*_side.png`` (XZ/YZ at physical aspect). Files are written to temporary names and renamed.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> img = np.zeros((6, 16, 16), np.uint8); lab = np.zeros((6, 16, 16), np.uint32); lab[:, :8] = 7
    >>> ds = nj.datasets.generic(img, "train", label=lab, voxel_size=(40, 4, 4), valid_fraction=0)
    >>> s = nj.explore(ds, quiet=True)
    >>> v = s["datasets"]["generic"]["splits"]["train"]["volumes"][0]
    >>> v["instances"]["count"], v["classes"]["neuron"]["share"], v["extent_um"]
    (1, 0.5, [0.24, 0.064, 0.064])
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..datasets.base import SPLITS, Dataset
from . import pictures, report
from .stats import group_rows, summary
from .streaming import MAX_BYTES, tally_pair

ENV_BYTES = "NEURONS_JAX_EXPLORE_BYTES"


def default_max_bytes() -> int:
    """``$NEURONS_JAX_EXPLORE_BYTES`` (bytes, or with a K/M/G suffix), else 512 MiB."""
    text = os.environ.get(ENV_BYTES, "").strip()
    return parse_bytes(text, ENV_BYTES) if text else MAX_BYTES


def parse_bytes(text: str, what: str = "--max-memory") -> int:
    """``"512M"`` -> 536870912 (K, M, G, T: powers of 1024; a plain number is bytes).

    >>> parse_bytes("64M"), parse_bytes("1000")
    (67108864, 1000)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"{what}: expected bytes such as 512M, 2G or 1000000; got {text!r}")
    n = int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))
    if n < 1:
        raise ValueError(f"{what}: must be at least 1 byte; got {text!r}")
    return n


# ----------------------------------------------------------------------------- inputs
def _open_root(kind: str | None, root: Any, splits: Sequence[str], **reader_kwargs) -> tuple[str, dict]:
    from ..datasets._common import is_prepared, read_metadata
    from ..datasets.registry import get_kind, kind_names

    if root is not None and is_prepared(root):
        meta_kind = read_metadata(root)["reader"]
        if kind is not None and kind != meta_kind:
            raise ValueError(f"{root}: a prepared {meta_kind!r} root, not {kind!r}")
        kind = meta_kind
    if kind is None:
        raise ValueError(f"{root}: not a prepared root; give its kind (KIND=ROOT, or kind= one of "
                         f"{', '.join(kind_names())})")
    k = get_kind(kind)
    if k.root_optional and root == "public":
        root = None
    out: dict = {}
    for split in splits:
        try:
            out[split] = k.reader(root, split, **reader_kwargs)
        except (FileNotFoundError, KeyError, ValueError, OSError) as e:
            out[split] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if all(isinstance(v, str) for v in out.values()):
        why = "; ".join(f"{s}: {e}" for s, e in out.items())
        raise ValueError(f"{root}: no readable {kind} split ({why})")
    return kind, out


def resolve(data: Any, kind: str | None = None, splits: Sequence[str] = SPLITS,
            **reader_kwargs) -> dict[str, tuple[str, str, dict]]:
    """``{name: (kind, root text, {split: Dataset or error text})}`` of ``data`` (see the module)."""
    from ..datasets.registry import kind_names
    from ..datasets.specs import parse_dataset_spec

    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"splits: each must be one of {', '.join(SPLITS)}; got {s!r}")
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, (list, tuple)):
        items = [(None, d) for d in data]
    else:
        items = [(None, data)]
    out: dict[str, tuple[str, str, dict]] = {}
    for name, d in items:
        if isinstance(d, Dataset):
            entry = (d.kind, d.root or "(in memory)", {d.split: d})
        elif isinstance(d, (str, os.PathLike)):
            text = os.fspath(d)
            head, sep, _ = text.partition("=")
            if sep and head in kind_names():
                k, root, _ = parse_dataset_spec(text)
            else:
                k, root = kind, text
            k, by_split = _open_root(k, root, splits, **reader_kwargs)
            entry = (k, root, by_split)
        else:
            raise TypeError(f"explore: expected a Dataset, a KIND=ROOT spec or a root path (or a list / "
                            f"dict of them); got {type(d).__name__}")
        base = name or entry[0]
        key, n = base, 1
        while key in out:
            n += 1
            key = f"{base}_{n}"
        out[key] = entry
    if not out:
        raise ValueError("explore: nothing to explore (no dataset given)")
    return out


# ----------------------------------------------------------------------------- the run
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "volume"


def save_png(picture, path: Path) -> None:
    """A PNG through a temporary name (zlib level 1: the encoder is most of a run's time at 6)."""
    from ..safeio import temp_path

    tmp = temp_path(path)
    picture.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    from ..safeio import temp_path

    tmp = temp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def explore(data: Any, out_dir: str | os.PathLike | None = None, *, kind: str | None = None,
            splits: Sequence[str] = SPLITS, max_bytes: int | None = None, sections: int = 4,
            quiet: bool = False, draw: bool = True, **reader_kwargs) -> dict:
    """Explore ``data``; write the report to ``out_dir`` when given; return the stats dict.

    Args:
        data: a Dataset, ``"KIND=ROOT"``, a root (``kind=`` for a native one), or a list /
            mapping of them.
        out_dir: folder for ``report.html``, ``stats.json`` and the PNGs (None: nothing written).
        splits: the splits to open for roots (a Dataset is its own split).
        max_bytes: working memory of one slab (default ``$NEURONS_JAX_EXPLORE_BYTES`` or 512 MiB).
        sections: z sections of the XY montage.
        quiet: no progress bar (tqdm on stderr otherwise).
        draw: write the pictures (with ``out_dir``).
        reader_kwargs: passed to the readers of roots (e.g. ``subsets=["Beta"]`` for MitoEM2).
    """
    from tqdm import tqdm

    max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1; got {max_bytes}")
    resolved = resolve(data, kind, splits, **reader_kwargs)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    total = sum(p.image.size for _, _, by in resolved.values() for ds in by.values()
                if isinstance(ds, Dataset) for p in ds.pairs)
    stats: dict = {"datasets": {}, "settings": {"max_bytes": max_bytes, "sections": sections}}
    bar = tqdm(total=total, unit="vox", unit_scale=True, disable=quiet, file=sys.stderr,
               desc="explore", dynamic_ncols=True)
    try:
        for name, (k, root, by_split) in resolved.items():
            rec = {"kind": k, "root": str(root) if root is not None else "public", "splits": {}}
            stats["datasets"][name] = rec
            for split, ds in by_split.items():
                if isinstance(ds, str):
                    rec["splits"][split] = {"error": ds}
                    continue
                rec["splits"][split] = _split_stats(name, ds, out, max_bytes, sections, draw, bar)
    finally:
        bar.close()
    if out is not None:
        _write_bytes(out / "stats.json", (json.dumps(stats, indent=1) + "\n").encode())
        _write_bytes(out / "report.html", report.page(stats).encode())
    return stats


def _split_stats(name: str, ds: Dataset, out: Path | None, max_bytes: int, sections: int,
                 draw: bool, bar) -> dict:
    vols, items = [], []
    for pair in ds.pairs:
        bar.set_description(f"{name}/{ds.split}/{pair.name}")
        t = tally_pair(pair, ds.kind, max_bytes=max_bytes, progress=bar.update)
        vs = pair.image.voxel_size
        dtypes = {"image": pair.image.dtype.name, "label": None if pair.label is None else pair.label.dtype.name}
        rec = {"name": pair.name, **summary(t, shape=pair.image.shape, voxel_size=vs, dtypes=dtypes)}
        z = ds.info.get("z_ranges", {}).get(pair.name)
        if z:
            rec["z_range"] = [int(z[0]), int(z[1])]
        if out is not None and draw:
            stem = _safe(f"{name}_{ds.split}_{pair.name}")
            files = []
            for suffix, picture in (("xy", pictures.xy_montage(pair, ds.kind, sections)),
                                    ("side", pictures.side_sections(pair, ds.kind))):
                path = out / f"{stem}_{suffix}.png"
                save_png(picture, path)
                files.append(path.name)
            rec["pictures"] = files
        vols.append(rec)
        items.append((pair.name, t, vs, dtypes))
    result: dict = {"volumes": vols}
    groups = group_rows(items)
    if groups:
        result["groups"] = groups
    return result
