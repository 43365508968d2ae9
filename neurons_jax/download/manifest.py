"""The download manifest: what was fetched into a directory, from where, with which checksum.

Each download directory holds ``.neurons_jax_manifest.json`` mapping a file name to its URL,
size, sha256 (always computed while fetching), the checksum the source published (if any) and
the file's mtime. A file whose size and mtime still match its entry is complete and is skipped
without being read again.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "a.bin").write_bytes(b"abc")
    3
    >>> m = Manifest(d)
    >>> m.record("a.bin", url="http://x/a.bin", sha256=sha256_file(d / "a.bin"))
    >>> Manifest(d).is_current("a.bin")
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

MANIFEST_NAME = ".neurons_jax_manifest.json"
_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike, *, algorithms: tuple[str, ...] = ("sha256",)) -> str:
    """Hex digest of a file (first algorithm of ``algorithms``; see :func:`hash_file`)."""
    return hash_file(path, algorithms)[algorithms[0]]


def hash_file(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file for several algorithms in one read."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            for h in hashers.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashers.items()}


class Manifest:
    """Read/record entries of ``DIR/.neurons_jax_manifest.json`` (written atomically)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.entries = dict(data.get("files", {}))
            except (ValueError, AttributeError):
                self.entries = {}  # a damaged manifest only costs a re-hash

    def get(self, name: str) -> dict[str, Any] | None:
        return self.entries.get(name)

    def is_current(self, name: str) -> bool:
        """True when ``name`` exists with the size and mtime its entry recorded."""
        entry = self.entries.get(name)
        p = self.directory / name
        if entry is None or not p.exists():
            return False
        st = p.stat()
        return entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns

    def record(self, name: str, **fields: Any) -> None:
        """Record (or replace) the entry of ``name``; size and mtime are read from the file."""
        p = self.directory / name
        entry = {k: v for k, v in fields.items() if v is not None}
        if p.exists():
            st = p.stat()
            entry.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        entry["recorded"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.entries[name] = entry
        self.save()

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.save()

    def save(self) -> None:
        from ..volumes import write_json

        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"files": self.entries})
