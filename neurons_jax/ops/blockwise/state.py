"""Where a blockwise job keeps its progress: ``DEST.blockwise/`` next to the output.

Every finished block and phase leaves a small record there (written through a TensorStore
key-value store, so a local disk, a shared filesystem and gs:// or s3:// all work); a rerun
reads the records and skips what is done. ``plan.json`` pins the job (source, shape, dtype,
block shape, operation): a rerun with other settings is refused instead of mixing results.

Local destinations are written to ``DEST.blockwise/output`` and renamed to ``DEST`` at the end.
Object stores cannot rename: the output is written in place and is complete only once
``DEST.blockwise/complete.json`` exists.

Example:
    >>> from neurons_jax.ops.blockwise.state import resolve_target
    >>> t = resolve_target("memory://doc/out")
    >>> t.state.spec["path"], t.local_path is None
    ('doc/out.blockwise/', True)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from ...volumes import shared_context

# the per-block and per-group records of the phases (all removed once a job has finished)
RECORD_PREFIXES = (
    "label/", "planes/", "faces/", "up/", "res/", "down/", "downdone/", "rank/", "table/",
    "write/", "unique/", "merge/", "provisional/",
)  # fmt: skip


MAGIC = b"NJR1"


def pack(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """Arrays -> bytes: magic, flag, header length, a JSON header (name: dtype, shape, start),
    then the raw buffers (zlib level 1 over all of it with ``compress``). Decoding is a few
    ``np.frombuffer`` views: the hot records of a job cost microseconds, not an .npz's
    milliseconds."""
    header, parts, pos = {}, [], 0
    for name, a in arrays.items():
        a = np.asarray(a, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        header[name] = [a.dtype.str, list(a.shape), pos]
        parts.append(a.tobytes())
        pos += a.nbytes
    head = json.dumps(header).encode()
    body = len(head).to_bytes(8, "little") + head + b"".join(parts)
    return MAGIC + (b"z" + zlib.compress(body, 1) if compress else b"r" + body)


def unpack(raw: bytes, where: str = "record") -> dict[str, np.ndarray]:
    if raw[:4] != MAGIC:
        raise ValueError(f"{where}: not a blockwise record (found {raw[:4]!r} where {MAGIC!r} starts one)")
    body = zlib.decompress(raw[5:]) if raw[4:5] == b"z" else memoryview(raw)[5:]
    n = int.from_bytes(body[:8], "little")
    header = json.loads(bytes(body[8 : 8 + n]))
    data = memoryview(body)[8 + n :]
    out = {}
    for name, (dt, shape, start) in header.items():
        dtype = np.dtype(dt)
        count = int(np.prod(shape, dtype=np.int64))
        out[name] = np.frombuffer(data, dtype, count, start).reshape(tuple(shape))
    return out


class State:
    """A key-value store of job records; picklable (the store opens lazily per process)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self._kv: ts.KvStore | None = None

    @property
    def kv(self) -> ts.KvStore:
        if self._kv is None:
            self._kv = ts.KvStore.open(self.spec, context=shared_context()).result()
        return self._kv

    def __getstate__(self):
        return {"spec": self.spec, "_kv": None}

    def describe(self) -> str:
        kv = self.spec
        return kv.get("path", "") if kv.get("driver") == "file" else f"{kv.get('driver')}://{kv.get('path', '')}"

    # -- raw records
    def get(self, key: str) -> bytes | None:
        r = self.kv.read(key).result()
        return bytes(r.value) if r.state == "value" else None

    def put(self, key: str, value: bytes) -> None:
        self.kv.write(key, value).result()

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def delete_prefix(self, prefix: str) -> None:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        self.kv.delete_range(ts.KvStore.KeyRange(prefix, end)).result()

    # -- typed records
    def put_arrays(self, key: str, /, compress: bool = False, **arrays: np.ndarray) -> None:
        """Record ``arrays`` under ``key``: an .npz when the key ends so (records users may
        read), else the leaner ``pack`` format; zlib-compressed with ``compress``."""
        if key.endswith(".npz"):
            buf = io.BytesIO()
            (np.savez_compressed if compress else np.savez)(buf, **arrays)
            self.put(key, buf.getvalue())
        else:
            self.put(key, pack(arrays, compress))

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays recorded under ``key``, or None."""
        raw = self.get(key)
        if raw is None:
            return None
        if not key.endswith(".npz"):
            return unpack(raw, key)
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def put_json(self, key: str, obj: Any) -> None:
        self.put(key, json.dumps(obj, indent=2, sort_keys=True).encode())

    def get_json(self, key: str) -> Any | None:
        raw = self.get(key)
        return None if raw is None else json.loads(raw)

    def check_plan(self, plan: dict[str, Any]) -> None:
        """Record ``plan`` on the first run; refuse a rerun whose plan differs."""
        plan = json.loads(json.dumps(plan))
        old = self.get_json("plan.json")
        if old is None:
            self.put_json("plan.json", plan)
        elif old != plan:
            diff = {k: (old.get(k), plan.get(k)) for k in sorted(set(old) | set(plan)) if old.get(k) != plan.get(k)}
            raise ValueError(
                f"{self.describe()}: an earlier blockwise job with other settings left its records "
                f"here ({', '.join(f'{k}: was {a!r}, now {b!r}' for k, (a, b) in diff.items())}); "
                "remove that folder (and the partial output) to start over"
            )


@dataclass
class Target:
    """The output store of a job: where blocks are written, where records live, what is final."""

    output_kvstore: dict[str, Any]  # where blocks are written while the job runs
    state: State
    local_path: Path | None  # final local path (renamed at the end); None: written in place

    def describe(self) -> str:
        return str(self.local_path) if self.local_path else json.dumps(self.output_kvstore)

    def exists(self) -> bool:
        """Whether the final output already exists (a local path, or a remote zarr.json)."""
        if self.local_path is not None:
            return self.local_path.exists()
        kv = ts.KvStore.open(self.output_kvstore, context=shared_context()).result()
        return kv.read("zarr.json").result().state == "value"

    def final_kvstore(self) -> dict[str, Any]:
        if self.local_path is None:
            return self.output_kvstore
        return {"driver": "file", "path": str(self.local_path) + "/"}

    def finalize(self) -> None:
        """Move a local output into place (no-op for stores written in place)."""
        if self.local_path is None:
            return
        src = Path(self.output_kvstore["path"])
        if self.local_path.exists():
            raise FileExistsError(f"{self.local_path}: appeared while the job ran; refusing to overwrite")
        os.replace(src, self.local_path)

    def cleanup(self) -> None:
        """Drop the per-block records after success (plan, summary and mapping stay)."""
        for prefix in RECORD_PREFIXES:
            self.state.delete_prefix(prefix)
            if self.local_path is not None:
                shutil.rmtree(Path(self.state.spec["path"]) / prefix, ignore_errors=True)
        if self.local_path is not None:
            shutil.rmtree(self.output_kvstore["path"], ignore_errors=True)


def _kvstore_of(dest: str | os.PathLike | dict) -> dict[str, Any]:
    if isinstance(dest, dict):
        if "kvstore" not in dest:
            raise ValueError(f"dest spec needs a 'kvstore' (path or URL of the output); got {dest!r}")
        kv = dest["kvstore"]
    else:
        s = os.fspath(dest)
        if "://" not in s or s.startswith("file://"):
            p = Path(s[len("file://"):] if s.startswith("file://") else s).expanduser().resolve()
            return {"driver": "file", "path": str(p) + "/"}
        kv = s
    return ts.KvStore.Spec(kv).to_json()


def resolve_target(dest: str | os.PathLike | dict) -> Target:
    """Where a job writing ``dest`` (path, URL or TensorStore spec) puts output and records."""
    kv = _kvstore_of(dest)
    path = kv.get("path", "").rstrip("/")
    if not path:
        raise ValueError(f"dest must name a path inside its store; got {kv!r}")
    state = State(dict(kv, path=path + ".blockwise/"))
    if kv.get("driver") == "file":
        return Target(dict(kv, path=path + ".blockwise/output/"), state, Path(path))
    return Target(dict(kv, path=path + "/"), state, None)
