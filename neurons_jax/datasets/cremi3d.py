"""CREMI: Drosophila brain ssTEM, 40 x 4 x 4 nm; neurons, synaptic clefts, mitochondria.

Native root: ``sample_{A,B,C}_20160501.hdf`` (also ``sample_A.h5``, ``sample_A.hdf``, ...;
padded variants only when nothing else is there) with ``volumes/raw``,
``volumes/labels/neuron_ids``, ``volumes/labels/clefts`` and optionally a mitochondria dataset
under ``volumes/labels``. The voxel size is the ``resolution`` attribute of ``volumes/raw``.
In a padded file the raw is larger than the labels: the image is cut to the labelled block,
placed by the labels' ``offset`` attribute (nm, z y x, relative to the raw's own ``offset``).

The three label datasets are combined, lazily and per read, into one uint64 volume with the
offset encoding of docs/datasets.md: neuron ids as they are (1..999,999), cleft ids + 1,000,000,
mitochondria ids + 2,000,000; uint64 max ("no data", used by CREMI's clefts) is background.
Where annotations overlap, the later wins: neurons < mitochondria < clefts.

Splits: samples in ``volumes`` (default A, B) give train (z ``[0, n - n_valid)``) and valid
(the last ``valid_fraction`` of z); sample C is test.

Example:
    >>> import neurons_jax as nj
    >>> ds = nj.datasets.cremi3d("data/cremi3d", "train", include_mito=True)   # doctest: +SKIP
    >>> [p.name for p in ds.pairs], ds.label.dtype                           # doctest: +SKIP
    (['A', 'B'], dtype('uint64'))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..rules import CREMI_CLEFT_OFFSET, CREMI_MITO_OFFSET, U64_MAX
from ..volumes import H5Source, Volume
from ._common import (
    Entry,
    check_root,
    check_split,
    h5_attr,
    h5_keys,
    is_prepared,
    make_dataset,
    make_pair,
    prepared_entries,
    read_metadata,
    recorded_option,
)
from .base import Dataset
from .registry import Downloader, option, register_kind

KIND = "cremi3d"
DEFAULT_VOXEL_SIZE = (40.0, 4.0, 4.0)
TEST_VOLUMES = ("C",)
RAW, NEURONS, CLEFTS = "volumes/raw", "volumes/labels/neuron_ids", "volumes/labels/clefts"
MITO_KEYS = ("volumes/labels/mitochondria", "volumes/labels/mito", "volumes/labels/mitochondria_ids")
EXPECTED = "a directory with sample_A_20160501.hdf, sample_B_..., sample_C_... (or a prepared root)"


def cremi3d(
    root: str | os.PathLike,
    split: str = "train",
    *,
    volumes: Sequence[str] = ("A", "B"),
    include_clefts: bool = True,
    include_mito: bool = False,
    valid_fraction: float = 0.2,
) -> Dataset:
    """The CREMI split at ``root``: ``volumes`` feed train/valid, sample C is test."""
    check_split(split)
    volumes = _check_volumes(volumes)
    roles = ("test",) if split == "test" else ("trainval",)
    if is_prepared(root):
        meta = {**read_metadata(root), "_root": str(root)}
        include_clefts = recorded_option(meta, "include_clefts", include_clefts, True)
        include_mito = recorded_option(meta, "include_mito", include_mito, False)
        recorded = tuple(meta.get("reader_kwargs", {}).get("volumes", ("A", "B")))
        volumes = recorded if volumes == ("A", "B") else volumes  # the default: what was prepared
        missing = [v for v in volumes if v not in recorded]
        if missing:
            raise ValueError(
                f"{root}: prepared without sample(s) {missing} (it holds {list(recorded)}); "
                "run prepare again with those volumes"
            )
        entries, _ = prepared_entries(
            root, KIND, roles, keep=lambda v: v["role"] == "test" or v["name"] in volumes
        )
    else:
        entries = native_entries(root, roles, volumes, include_clefts, include_mito)
    info = {"include_clefts": include_clefts, "include_mito": include_mito}
    return make_dataset(KIND, root, split, entries, valid_fraction, info)


def native_entries(root, roles=("trainval", "test"), volumes=("A", "B"), include_clefts=True,
                   include_mito=False) -> list[Entry]:
    root = check_root(root, KIND, EXPECTED)
    names = [(v, "trainval") for v in _check_volumes(volumes)] + [(v, "test") for v in TEST_VOLUMES]
    out = []
    for name, role in names:
        if role not in roles:
            continue
        path = find_sample(root, name)
        keys = h5_keys(path)
        if RAW not in keys:
            raise KeyError(f"{path}: HDF5 key {RAW!r} (the image) not found; keys present: {keys}")
        res = h5_attr(path, RAW, "resolution")
        vs = tuple(float(r) for r in res) if res is not None and len(res) == 3 else DEFAULT_VOXEL_SIZE
        image = Volume(H5Source(path, RAW), vs, name=f"{path}:{RAW}")
        mito_key = find_mito_key(path, keys) if include_mito else None
        label = Volume(CremiLabels(path, NEURONS, CLEFTS if include_clefts else None, mito_key), vs)
        if image.shape != label.shape:  # a padded file
            image = labelled_region(path, image, label.shape, vs)
        out.append(Entry(make_pair(name, image, label), role, name, [str(path)]))
    return out


def labelled_region(path: Path, raw: Volume, shape: tuple[int, ...], vs) -> Volume:
    """The window of a padded raw volume that the labels cover (their ``offset``, in nm)."""
    offset = h5_attr(path, NEURONS, "offset")
    if offset is None or len(offset) != 3:
        raise ValueError(
            f"{path}: {RAW} shape {raw.shape} differs from {NEURONS} shape {shape}, and {NEURONS} "
            f"has no 'offset' attribute (z, y, x nm) placing it in the raw; found {offset!r}"
        )
    raw_offset = h5_attr(path, RAW, "offset")
    rel = np.asarray(offset, float) - (np.asarray(raw_offset, float) if raw_offset is not None else 0.0)
    voxels = rel / np.asarray(vs, float)
    if not np.allclose(voxels, np.round(voxels)):
        raise ValueError(
            f"{path}: {NEURONS} offset {tuple(rel.tolist())} nm is not a whole number of {vs} nm voxels"
        )
    origin = tuple(int(v) for v in np.round(voxels))
    try:
        return raw.window(origin, shape)
    except ValueError:
        raise ValueError(
            f"{path}: {NEURONS} (shape {shape}) at voxel offset {origin} does not fit inside "
            f"{RAW} of shape {raw.shape}"
        ) from None


def find_sample(root: Path, name: str) -> Path:
    """The file of CREMI sample ``name``: exact names first, then dated, then padded variants."""
    ext = (".hdf", ".h5", ".hdf5")
    stems = (f"sample_{name}_20160501", f"sample_{name}")
    found = [root / f"{s}{e}" for s in stems for e in ext]
    dated = sorted(p for p in root.glob(f"sample_{name}_*") if p.suffix in ext and "+" not in p.name)
    found += [p for p in dated if "padded" not in p.name] + [p for p in dated if "padded" in p.name]
    for path in found:
        if path.is_file():
            return path
    present = sorted(p.name for p in root.iterdir())[:20]
    raise FileNotFoundError(
        f"{root}: no CREMI sample {name} found (expected sample_{name}_20160501.hdf, "
        f"sample_{name}.h5 or sample_{name}_*.hdf); found {present or 'nothing'}"
    )


def find_mito_key(path: Path, keys: Sequence[str]) -> str:
    for k in MITO_KEYS:
        if k in keys:
            return k
    hits = [k for k in keys if k.startswith("volumes/labels/") and "mito" in k.lower()]
    if hits:
        return hits[0]
    raise KeyError(
        f"{path}: include_mito=True but no mitochondria dataset under volumes/labels "
        f"(expected one of {', '.join(MITO_KEYS)}); keys present: {list(keys)}"
    )


def _check_volumes(volumes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(volumes, str):
        volumes = (volumes,)
    volumes = tuple(str(v).upper() for v in volumes)
    if not volumes:
        raise ValueError("cremi3d: volumes must name at least one sample (e.g. ('A', 'B'))")
    clash = [v for v in volumes if v in TEST_VOLUMES]
    if clash:
        raise ValueError(f"cremi3d: sample(s) {clash} are the test split; volumes= takes train samples such as A, B")
    return volumes


def options(volumes=("A", "B"), include_clefts=True, include_mito=False) -> dict:
    return {"volumes": list(_check_volumes(volumes)), "include_clefts": bool(include_clefts),
            "include_mito": bool(include_mito)}


class CremiLabels:
    """CREMI neuron ids, clefts and mitochondria combined into one offset-encoded uint64 label.

    A picklable ``Source``: it keeps three lazy HDF5 sources and combines what it reads.
    """

    def __init__(self, path: str | os.PathLike, neurons: str, clefts: str | None = None,
                 mito: str | None = None):
        self.path = str(path)
        self.parts = [("neurons", H5Source(path, neurons), 0)]
        if clefts:
            self.parts.append(("clefts", H5Source(path, clefts), CREMI_CLEFT_OFFSET))
        if mito:
            self.parts.insert(1, ("mitochondria", H5Source(path, mito), CREMI_MITO_OFFSET))
        self.shape = tuple(self.parts[0][1].shape)
        self.dtype = np.dtype(np.uint64)
        for what, src, _ in self.parts:
            if tuple(src.shape) != self.shape:
                raise ValueError(
                    f"{self.path}: {src.key} shape {tuple(src.shape)} does not match the neuron ids "
                    f"shape {self.shape}"
                )
            if src.dtype.kind not in "ui":
                raise TypeError(f"{self.path}: {src.key} has dtype {src.dtype}; expected integer ids ({what})")

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        out = None
        for what, src, offset in self.parts:
            ids = src.read(slices).astype(np.uint64, copy=False)
            ids = np.where(ids == U64_MAX, np.uint64(0), ids)
            limit = CREMI_CLEFT_OFFSET if what != "mitochondria" else U64_MAX - 1 - CREMI_MITO_OFFSET
            if ids.size and ids.max() >= limit:
                raise ValueError(
                    f"{self.path}: {what} id {int(ids.max())} in {src.key} does not fit the offset "
                    f"encoding (expected ids below {limit:,})"
                )
            if out is None:
                out = np.array(ids, dtype=np.uint64, copy=True)
            else:
                np.copyto(out, ids + np.uint64(offset), where=ids > 0)
        return out

    def describe(self) -> str:
        keys = "+".join(src.key.rsplit("/", 1)[-1] for _, src, _ in self.parts)
        return f"{self.path}:volumes/labels/{{{keys}}}"

    def files(self) -> list[str]:
        return [self.path]


register_kind(
    KIND,
    cremi3d,
    rule=KIND,
    help="CREMI: Drosophila ssTEM; neurons, synaptic clefts, mitochondria (offset-encoded ids)",
    root_help="directory with sample_A_20160501.hdf, sample_B_..., sample_C_... (or a prepared root)",
    native_entries=native_entries,
    options=options,
    prepare_options=(
        option("--volumes", dest="volumes", nargs="+", metavar="S", help="train/valid samples (default A B)"),
        option("--no-clefts", dest="include_clefts", action="store_const", const=False,
               help="leave synaptic clefts out of the labels"),
        option("--mito", dest="include_mito", action="store_const", const=True,
               help="add mitochondria (ids + 2,000,000)"),
    ),
    downloader=Downloader(
        "neurons_jax.download.cremi3d:download",
        help="CREMI samples A/B/C (HDF5) from cremi.org",
        options=(
            option("--samples", dest="samples", nargs="+", metavar="S",
                   help="samples to fetch among A B C (default: all)"),
            option("--padded", dest="padded", action="store_true", help="fetch the padded variants"),
        ),
    ),
    sample="neurons_jax.sample:_cremi3d",
)
