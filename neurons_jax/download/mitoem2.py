"""MitoEM2: the eight ``Dataset00N_ME2-*`` zip archives of Zenodo record 14595790.

Each zip is fetched into ``DIR/.zips/`` (resumable, size and md5 checked against the Zenodo
record), extracted into ``DIR/Dataset00N_ME2-*/`` in the nnU-Net layout (``imagesTr``,
``labelsTr``, ``imagesTs``, ``labelsTs``, ``dataset.json``) through a temporary directory, and
deleted unless ``keep_zips``. ``prepare("mitoem2", DIR, OUT)`` reads the result.

Example:
    >>> from neurons_jax.download import mitoem2
    >>> mitoem2.resolve_datasets(["beta", "6", "Dataset008_ME2-Stem"])
    ('Dataset001_ME2-Beta', 'Dataset006_ME2-Pyra', 'Dataset008_ME2-Stem')
    >>> mitoem2.download("data/mitoem2", datasets=["Beta"])         # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .common import Options, check_space, expectations, fetch_files, link_files
from .http import DownloadError
from .manifest import Manifest, sha256_file
from .sources import MITOEM2_DATASETS

ZIP_DIR = ".zips"
_MARKERS = ("imagesTr", "dataset.json")


def resolve_datasets(names: Sequence[str] | None) -> tuple[str, ...]:
    """Full names from full names, cell types (``beta``) or numbers (``1``, ``001``)."""
    if not names:
        return MITOEM2_DATASETS
    out = []
    for name in names:
        key = str(name).strip().lower()
        hits = [
            d for d in MITOEM2_DATASETS
            if key in (d.lower(), d.split("-", 1)[1].lower(), d[7:10], str(int(d[7:10])))
        ]
        if len(hits) != 1:
            raise ValueError(
                f"--datasets: unknown MitoEM2 dataset {name!r}; expected one of "
                f"{', '.join(MITOEM2_DATASETS)} (or a cell type / number such as Beta or 1)"
            )
        out.append(hits[0])
    return tuple(dict.fromkeys(out))


def is_extracted(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in _MARKERS)


def download(
    output: str | os.PathLike, *, datasets: Sequence[str] | None = None,
    link: str | os.PathLike | None = None, keep_zips: bool = False, options: Options | None = None,
) -> list[Path]:
    """Fetch and extract (or with ``link``, symlink) the chosen sub-datasets into ``output``."""
    options = options or Options()
    chosen = resolve_datasets(datasets)
    output = Path(output)
    if link is not None:
        return link_files(link, [(d,) for d in chosen], output, what="dataset directory")
    todo = [d for d in chosen if not is_extracted(output / d)]
    for d in chosen:
        if d not in todo:
            options.say(f"{d}: already extracted, skipping")
    if not todo:
        return [output / d for d in chosen]
    zips = output / ZIP_DIR
    names = [f"{d}.zip" for d in todo]
    expected = expectations("mitoem2", names, options)
    # the zip and its extracted copy coexist while extracting: plan for twice the zip sizes
    check_space(output, [(zips / n, 2 * e.size if e.size else None) for n, e in expected.items()])
    manifest = Manifest(output)
    for d, name in zip(todo, names):
        (zip_path,) = fetch_files("mitoem2", [name], zips, options, expected={name: expected[name]})
        options.say(f"{d}: extracting {zip_path.name}")
        extract(zip_path, output, d)
        fetched = Manifest(zips).get(name) or {}  # fetch recorded the zip's sha256 already
        manifest.record(d, archive=name, archive_sha256=fetched.get("sha256") or sha256_file(zip_path))
        if not keep_zips:
            zip_path.unlink()
            Manifest(zips).forget(name)
    return [output / d for d in chosen]


def extract(zip_path: str | os.PathLike, output: str | os.PathLike, name: str) -> Path:
    """Extract ``zip_path`` to ``output/name`` (nnU-Net layout), via a temporary directory.

    Accepts archives holding the layout at their top or inside one folder; refuses members
    that would land outside the target.
    """
    zip_path, output = Path(zip_path), Path(output)
    dest = output / name
    if dest.exists():
        raise FileExistsError(f"{dest}: already exists; refusing to overwrite with {zip_path.name}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.extract-", dir=output))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for member in zf.infolist():
                    p = PurePosixPath(member.filename)
                    if p.is_absolute() or ".." in p.parts:
                        raise DownloadError(f"{zip_path}: unsafe member path {member.filename!r}")
                zf.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise DownloadError(f"{zip_path}: not a valid zip archive ({e})") from None
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadError(f"disk full while extracting {zip_path} into {output}") from None
            raise
        root = _layout_root(tmp)
        if root is None:
            found = sorted(p.name for p in tmp.iterdir())
            raise DownloadError(
                f"{zip_path}: expected the nnU-Net layout ({', '.join(_MARKERS)}) at the top or in "
                f"one folder; found {found}"
            )
        os.replace(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _layout_root(tmp: Path) -> Path | None:
    if any((tmp / m).exists() for m in _MARKERS):
        return _move_up(tmp)
    entries = [p for p in tmp.iterdir() if p.name != "__MACOSX" and not p.name.startswith(".")]
    if len(entries) == 1 and is_extracted(entries[0]):
        return entries[0]
    return None


def _move_up(tmp: Path) -> Path:
    """The archive had the layout at its top: move it into a sub-folder we can rename."""
    inner = tmp / ".root"
    inner.mkdir()
    for p in list(tmp.iterdir()):
        if p != inner and p.name != "__MACOSX":
            os.replace(p, inner / p.name)
    return inner
