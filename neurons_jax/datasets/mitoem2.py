"""MitoEM2: mitochondria in eight cell types; nnU-Net layout; labels 0/1/2.

Native root: a directory holding ``Dataset00N_ME2-<Type>/`` folders (or one such folder),
each with ``imagesTr/<case>_0000.nii.gz`` <-> ``labelsTr/<case>.nii.gz``, ``imagesTs``/``labelsTs``
and ``dataset.json``. NIfTI axes (i, j, k) = (x, y, z) become ZYX; the voxel size is the header's
``pixdim`` (in nm; micron/mm units are converted), or when the header holds none (all 1),
the ``spacing`` entry of ``dataset.json`` read in NIfTI (x, y, z) order.

Labels: 0 background, 1 mitochondria interior, 2 boundary between touching mitochondria.

Splits are by file, per subset: the last ``max(1, round(n * valid_fraction))`` of a subset's
``imagesTr`` cases (sorted by name) are valid, the rest train, when it has at least two; a
subset with a single training case is split by z instead (last ``valid_fraction`` of z).
Test = ``imagesTs``/``labelsTs``. Pair names are ``<Type>/<case>``.

Example:
    >>> import neurons_jax as nj
    >>> ds = nj.datasets.mitoem2("data/mitoem2", "valid", subsets=["Beta"])   # doctest: +SKIP
    >>> [p.name for p in ds.pairs]                                                 # doctest: +SKIP
    ['Beta/beta_003']
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ._common import (
    Entry,
    check_fraction,
    check_root,
    check_split,
    file_split,
    is_prepared,
    make_dataset,
    make_pair,
    open_file,
    prepared_entries,
)
from ._sources import NiftiSource, source_files
from .base import Dataset
from .registry import Downloader, option, register_kind

KIND = "mitoem2"
SUFFIXES = (".nii.gz", ".nii")
EXPECTED = "a directory of Dataset00N_ME2-*/ nnU-Net folders (imagesTr, labelsTr, ...) or a prepared root"


def mitoem2(
    root: str | os.PathLike,
    split: str = "train",
    *,
    subsets: Sequence[str | int] | None = None,
    valid_fraction: float = 0.2,
) -> Dataset:
    """The MitoEM2 split at ``root`` for ``subsets`` (names, cell types or numbers; None = all)."""
    check_split(split)
    vf = check_fraction(valid_fraction)
    roles = ("test",) if split == "test" else ("tr",)
    if is_prepared(root):
        entries, meta = prepared_entries(root, KIND, roles)
        available = sorted({e.group for e in entries} | set(meta.get("groups", [])))
        wanted = set(resolve_subsets(available, subsets, root))
        entries = [e for e in entries if e.group in wanted]
    else:
        entries = native_entries(root, roles, subsets)
    return make_dataset(KIND, root, split, assign_roles(entries, vf), vf)


def find_subsets(root: str | os.PathLike) -> dict[str, Path]:
    """Short name (``Beta``) -> folder of every nnU-Net dataset under ``root``."""
    root = check_root(root, KIND, EXPECTED)
    dirs = [root] if (root / "imagesTr").is_dir() else sorted(
        p for p in root.iterdir() if p.is_dir() and (p / "imagesTr").is_dir()
    )
    if not dirs:
        present = sorted(p.name for p in root.iterdir())[:20]
        raise FileNotFoundError(f"{root}: no nnU-Net dataset folders (expected {EXPECTED}); found {present}")
    return {short_name(p.name): p for p in dirs}


def short_name(folder: str) -> str:
    m = re.match(r"^Dataset\d+_(?:ME2-)?(.+)$", folder)
    return m.group(1) if m else folder


def resolve_subsets(available: Sequence[str], subsets, root) -> list[str]:
    if subsets is None:
        return list(available)
    if isinstance(subsets, (str, int)):
        subsets = [subsets]
    out = []
    for s in subsets:
        key = str(s).strip().lower()
        key = re.sub(r"^dataset\d+_", "", key)
        key = key[4:] if key.startswith("me2-") else key
        hits = [a for a in available if a.lower() == key]
        if not hits and key.isdigit():
            hits = [a for a in available if _number(a) == int(key)]
        if not hits:
            raise ValueError(f"mitoem2 ({root}): unknown subset {s!r}; available: {list(available)}")
        out += hits
    return out


_NUMBERS = {"beta": 1, "jurkat": 2, "macro": 3, "mossy": 4, "podo": 5, "pyra": 6, "sperm": 7, "stem": 8}


def _number(short: str) -> int:
    return _NUMBERS.get(short.lower(), -1)


def native_entries(root, roles=("tr", "test"), subsets=None) -> list[Entry]:
    found = find_subsets(root)
    out = []
    for short in resolve_subsets(sorted(found), subsets, root):
        folder = found[short]
        spacing = _json_spacing(folder)
        for role, img_dir, lab_dir in (("tr", "imagesTr", "labelsTr"), ("test", "imagesTs", "labelsTs")):
            if role not in roles:
                continue
            cases = _cases(folder / img_dir)
            if not cases:
                raise FileNotFoundError(f"{folder / img_dir}: no *_0000.nii.gz images ({role} of {short})")
            for case, img_path in cases:
                lab_path = _label_path(folder / lab_dir, case)
                image = open_file(img_path, _voxel_size(img_path, spacing), "image")
                label = open_file(lab_path, image.voxel_size, "label")
                pair = make_pair(f"{short}/{case}", image, label)
                out.append(Entry(pair, role, short, source_files(image.source) + source_files(label.source)))
    return out


def assign_roles(entries: list[Entry], valid_fraction: float) -> list[Entry]:
    """Training files of a subset -> train/valid by file (>= 2 files) or trainval (z split)."""
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        if e.role == "tr":
            groups.setdefault(e.group, []).append(e)
    out = [e for e in entries if e.role != "tr"]
    for members in groups.values():
        if len(members) < 2:
            out += [Entry(e.pair, "trainval", e.group, e.sources) for e in members]
            continue
        train, valid = file_split([e.pair.name for e in members], valid_fraction)
        role = {**dict.fromkeys(train, "train"), **dict.fromkeys(valid, "valid")}
        out += [Entry(e.pair, role[e.pair.name], e.group, e.sources) for e in members]
    return sorted(out, key=lambda e: e.pair.name)


def _cases(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing folder (expected the nnU-Net {folder.name}/ layout)")
    out = []
    for p in sorted(folder.iterdir()):
        for suf in SUFFIXES:
            if p.name.endswith("_0000" + suf):
                out.append((p.name[: -len("_0000" + suf)], p))
    return out


def _label_path(folder: Path, case: str) -> Path:
    for suf in SUFFIXES:
        if (folder / f"{case}{suf}").is_file():
            return folder / f"{case}{suf}"
    raise FileNotFoundError(f"{folder}: no label {case}.nii.gz for image {case}_0000.nii.gz")


def _json_spacing(folder: Path) -> tuple[float, float, float] | None:
    path = folder / "dataset.json"
    if not path.is_file():
        return None
    try:
        spacing = json.loads(path.read_text()).get("spacing")
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if spacing is None:
        return None
    if len(spacing) != 3 or not all(float(s) > 0 for s in spacing):
        raise ValueError(f"{path}: 'spacing' must be 3 positive numbers (x, y, z nm); got {spacing!r}")
    return tuple(float(s) for s in spacing[::-1])  # type: ignore[return-value]


def _voxel_size(path: Path, spacing) -> tuple[float, float, float]:
    zooms = NiftiSource(path).zooms_zyx
    if all(abs(z - 1.0) < 1e-9 for z in zooms) or not all(z > 0 for z in zooms):
        if spacing is None:
            raise ValueError(
                f"{path}: the header holds no voxel size (pixdim {zooms}) and dataset.json has no "
                "'spacing'; expected one of them in nm"
            )
        return spacing
    return zooms


def options(subsets=None) -> dict:
    if isinstance(subsets, (str, int)):
        subsets = [subsets]
    return {"subsets": None if subsets is None else [str(s) for s in subsets]}


register_kind(
    KIND,
    mitoem2,
    rule=KIND,
    help="MitoEM2: mitochondria in eight cell types (nnU-Net NIfTI; labels 0/1/2)",
    root_help="directory of Dataset00N_ME2-*/ nnU-Net folders (or one of them), or a prepared root",
    native_entries=native_entries,
    options=options,
    roles=("tr", "test"),  # imagesTr: split by file (assign_roles), imagesTs: test
    assign_roles=assign_roles,
    prepare_options=(
        option("--subsets", dest="subsets", nargs="+", metavar="NAME", help="e.g. Beta Mossy or 1 4 (default all)"),
    ),
    downloader=Downloader(
        "neurons_jax.download.mitoem2:download",
        help="the eight Dataset00N_ME2-* zips from Zenodo, extracted (nnU-Net layout)",
        options=(
            option("--link", dest="link", metavar="DIR", type=Path,
                   help="symlink an existing copy in DIR instead of downloading"),
            option("--datasets", dest="datasets", nargs="+", metavar="NAME",
                   help="sub-datasets (full name, cell type or number; default: all 8)"),
            option("--keep-zips", dest="keep_zips", action="store_true", help="keep the zips after extraction"),
        ),
    ),
    sample="neurons_jax.sample:_mitoem2",
)
