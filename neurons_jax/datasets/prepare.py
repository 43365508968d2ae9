"""Ingest: native dataset files -> zarr3 stores + ``metadata.json`` (a *prepared root*).

``prepare(kind, input, output_dir, **reader_kwargs)`` reads every volume of the dataset (all
splits; the test volumes are skipped with a note when the input has none) through the same
reader code as ``nj.datasets.<kind>``, and writes per volume ``volumes/<name>/image.zarr`` and
``label.zarr`` (zarr3, zstd, chunks (32, 128, 128) clipped to the shape, voxel size in the
dimension units). ``metadata.json`` records the reader, label rule, voxel sizes, shapes,
dtypes, the volumes' roles and the splits they give at ``valid_fraction``, the source files
and a fingerprint of them (paths, sizes, mtimes; a digest for in-memory arrays).

Everything is written into a temporary directory next to ``output_dir`` (named after the
process, so a later run removes what a killed one left) and renamed into place at the end, so
an interrupted run leaves nothing half-written; the output is locked meanwhile (a second
prepare into it is refused, naming the first). Running it again with the same sources returns
at once; a different source needs ``overwrite=True``, which replaces only a prepared root
holding nothing but what prepare wrote (never a folder with other files); the old root stays in
place until the new one is complete (and is put back by the next run if this one is killed).
Volumes are copied box by box, each box whole chunks of at most ``volumes.COPY_BYTES`` (64 MiB)
bounded in z, y and x, so memory does not grow with the section size. A missing chunk of a
store input is an error unless ``allow_missing=True`` (a sparse store). Image values are
checked to be finite while they are copied. For ``generic``, ``input`` is the image (any form
``generic`` accepts) and ``label=``, ``voxel_size=``, ``rule=`` are keyword arguments.

Example:
    >>> import neurons_jax as nj
    >>> root = nj.datasets.prepare("snemi3d", "data/snemi3d", "prepared/snemi3d")   # doctest: +SKIP
    >>> nj.datasets.snemi3d(root, split="test").image                               # doctest: +SKIP
    Volume(zarr3 store .../volumes/AC3/image.zarr/, shape=(100, 1024, 1024), ...)
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import safeio
from ..rules import get_rule
from ..volumes import (
    ArraySource,
    Volume,
    missing_chunks_allowed,
    replace_path,
    write_json,
    write_zarr3,
)
from ._common import FORMAT, METADATA, Entry, check_fraction, read_metadata, select
from ._sources import CheckedSource
from .registry import DatasetKind, get_kind, kind_names


def __getattr__(name: str) -> Any:
    if name == "READERS":  # the kinds prepare can ingest (derived from the registry)
        return kind_names("prepare")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare(
    kind: str,
    input_dir: Any,
    output_dir: str | os.PathLike,
    *,
    valid_fraction: float = 0.2,
    overwrite: bool = False,
    progress: bool = True,
    allow_missing: bool | None = None,
    **reader_kwargs: Any,
) -> Path:
    """Ingest dataset ``kind`` from ``input_dir`` into ``output_dir``; returns ``output_dir``.

    ``allow_missing``: read missing chunks of store inputs as their fill value (sparse stores);
    by default a missing chunk is an error naming the store and the chunk.
    """
    spec = get_kind(kind, "prepare")
    vf = check_fraction(valid_fraction)
    opts = spec.record_options(**reader_kwargs)
    data_kind = opts.get("rule") or spec.rule  # generic: the label rule is an option
    entry_kwargs = {k: v for k, v in reader_kwargs.items() if k != "rule"}
    if input_dir is None and not spec.root_optional:
        raise ValueError(f"prepare {kind}: input_dir is required ({spec.root_help})")
    output = Path(output_dir).expanduser()
    _check_loops(kind, input_dir, reader_kwargs)
    if output.is_symlink():
        raise FileExistsError(f"{output}: is a symlink{' loop' if safeio.symlink_loop(output) else ''}; "
                              "prepare writes a real directory; give the real path")

    with missing_chunks_allowed(allow_missing):
        entries = list(spec.native_entries(input_dir, roles=(spec.main_role,), **entry_kwargs))
        if not entries:
            raise ValueError(f"prepare {kind}: {input_dir} holds no {spec.main_role!r} volumes ({spec.root_help})")
        notes = []
        for role in spec.roles[1:]:
            try:
                entries += spec.native_entries(input_dir, roles=(role,), **entry_kwargs)
            except (FileNotFoundError, KeyError, ValueError) as e:
                notes.append(f"no {role} volumes: {str(e).splitlines()[0]}")
    fingerprint = _fingerprint(kind, opts, entries)

    output.parent.mkdir(parents=True, exist_ok=True)
    with safeio.sigterm_as_interrupt(), safeio.OutputLock(output, f"prepare {kind}"):
        for note in safeio.clean_stale(output):
            print(f"prepare {kind}: note: {note}", file=sys.stderr)
        if output.exists():
            state = _existing(output)
            if state == "prepared":
                meta = read_metadata(output)
                if meta.get("fingerprint") == fingerprint and meta.get(COMPLETE_KEY):
                    return output
                if meta.get("fingerprint") == fingerprint:  # ours, written before chunks were complete
                    notes.append(f"{output} was prepared by an older version that did not store "
                                 "empty chunks; writing it again")
                elif not overwrite:
                    raise FileExistsError(
                        f"{output}: holds a prepared root of other sources ({meta.get('reader')} from "
                        f"{meta.get('input')}); pass overwrite=True (--overwrite) or another output directory"
                    )
                safeio.check_replaceable(output, "prepared", "prepare")
            elif state == "other":
                raise FileExistsError(f"{output}: exists and is not a prepared root; refusing to overwrite it")

        tmp = safeio.make_temp_dir(output)
        try:
            volumes = _write_volumes(tmp, entries, kind, progress)
            meta = _metadata(spec, data_kind, input_dir, opts, vf, entries, volumes, fingerprint, notes)
            write_json(tmp / METADATA, meta)
            replace_path(tmp, output)
        except BaseException:
            safeio.remove_tree(tmp)
            raise
    for note in notes:
        print(f"prepare {kind}: note: {note}", file=sys.stderr)
    return output


COMPLETE_KEY = "all_chunks_stored"  # metadata: every chunk is stored, so a missing one is an error


def _check_loops(kind: str, input_dir: Any, reader_kwargs: dict) -> None:
    """A path argument that is a symlink loop says so (readers would say "does not exist")."""
    for name, value in (("input", input_dir), *reader_kwargs.items()):
        if not isinstance(value, (str, os.PathLike)):
            continue
        text = os.fspath(value)
        for cand in {text, text.rsplit(":", 1)[0]} if "://" not in text else ():
            if cand and safeio.symlink_loop(cand):
                raise FileNotFoundError(f"{cand}: symlink loop (a link that leads back to itself); "
                                        f"prepare {kind} cannot read its {name}")


def _existing(path: Path) -> str:
    if not path.is_dir():
        return "other"
    if (path / METADATA).is_file():
        try:
            read_metadata(path)
            return "prepared"
        except ValueError:
            return "other"
    return "empty" if not any(path.iterdir()) else "other"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name)


def _write_volumes(tmp: Path, entries: list[Entry], kind: str, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    total = sum(e.pair.image.shape[0] * (1 + (e.pair.label is not None)) for e in entries)
    out = []
    with tqdm(total=total, desc=f"prepare {kind}", unit="z", disable=not progress, leave=False) as bar:
        for e in entries:
            rel = Path("volumes") / _safe(e.pair.name)
            (tmp / rel).mkdir(parents=True, exist_ok=True)
            img = e.pair.image
            checked = Volume(CheckedSource(img.source, "image"), img.voxel_size, origin=img.origin,
                             shape=img.shape, name=img.name)
            write_zarr3(tmp / rel / "image.zarr", checked, progress=bar.update)
            rec = {
                "name": e.pair.name, "role": e.role, "group": e.group,
                "image": str(rel / "image.zarr"), "label": None,
                "shape": list(img.shape), "voxel_size": list(img.voxel_size),
                "image_dtype": img.dtype.name, "label_dtype": None, "sources": e.sources,
            }
            if e.pair.label is not None:
                write_zarr3(tmp / rel / "label.zarr", e.pair.label, progress=bar.update)
                rec.update(label=str(rel / "label.zarr"), label_dtype=e.pair.label.dtype.name)
            out.append(rec)
    return out


def _metadata(spec: DatasetKind, data_kind, input_dir, opts, vf, entries, volumes, fingerprint, notes) -> dict:
    rule = get_rule(data_kind)
    split_entries = spec.assign_roles(entries, vf) if spec.assign_roles else entries
    splits = {}
    for split in ("train", "valid", "test"):
        pairs, zr = select(split_entries, split, vf)
        if pairs:
            splits[split] = [{"volume": p.name, "z": list(zr[p.name])} for p in pairs]
    return {
        "format": FORMAT,
        "version": 1,
        "reader": spec.name,
        "kind": data_kind,
        "label_rule": {**dataclasses.asdict(rule), "ranges": [list(r) for r in rule.ranges]},
        "voxel_size": list(entries[0].pair.image.voxel_size),
        "valid_fraction": vf,
        "reader_kwargs": opts,
        "input": _describe_input(input_dir),
        "volumes": volumes,
        "groups": sorted({e.group for e in entries}),
        "splits": splits,
        "source_files": sorted({s for e in entries for s in e.sources}),
        "fingerprint": fingerprint,
        COMPLETE_KEY: True,
        "notes": notes,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _describe_input(x: Any) -> str:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    if isinstance(x, np.ndarray):
        return f"array{x.shape} {x.dtype}"
    return type(x).__name__ if x is not None else "public"


def _fingerprint(kind: str, opts: dict, entries: list[Entry]) -> str:
    h = hashlib.sha256(json.dumps([kind, opts], sort_keys=True, default=str).encode())
    for e in entries:
        h.update(f"{e.pair.name}|{e.role}|{e.pair.image.shape}".encode())
        for vol in (e.pair.image, e.pair.label):
            if vol is None:
                continue
            if isinstance(vol.source, ArraySource):
                h.update(hashlib.blake2b(memoryview(vol.source.array).cast("B"), digest_size=16).digest())
        for s in e.sources:
            h.update(s.encode())
            try:
                st = os.stat(s)
                h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                pass  # a URL or a layer description
    return h.hexdigest()
