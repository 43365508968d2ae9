"""The life of one blockwise job: open, plan, resume or refuse, run the phases, finish.

``run_job`` does what every blockwise operation shares: it opens the source (never for
writing), resolves the destination (``state.resolve_target``), returns at once when an
identical job already finished there, refuses an output that exists without its records,
creates the zarr3 output (chunks dividing the block shape, the source's voxel size when it has
one; with ``out_dtype=None`` the phases create it with ``Job.create_output`` once they know the
dtype), runs the operation's phases through a ``Runner``, then declares the output complete and
moves it into place. Each phase is a function ``phases(runner, job) -> dict`` (the job's
summary). ``Job.write_provisional``/``read_provisional`` keep block-local labels between phases
in ``DEST.blockwise/provisional`` (zarr3, zstd level 1, uint16 for blocks of fewer than 2**16
components; removed with the other records).

Inputs get the checks of ``neurons-relabel`` in memory (``ops._checks``): integer or bool dtype
when the job starts, no negative ids in each block read (``Job.read_block``, whose errors name
the block), and a missing chunk is an error unless ``allow_missing=True`` (a sparse store). A
local output is locked while the job runs (``safeio.OutputLock``): a second job writing it is
refused, naming the first.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.ops.blockwise.job import Job, run_job
    >>> def copy(runner, job):
    ...     runner.map("copy", _copy_block, [(job, b) for b in range(job.grid.n_blocks)])
    ...     return {}
    >>> def _copy_block(job, bid):
    ...     job.write_block(bid, job.source.read(job.grid.box(bid)).astype(np.uint32))
    >>> src = nj.Volume.from_array(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), (1, 1, 1))
    >>> vol, info = run_job("copy", src, "memory://doc-job/out", (1, 3, 4), np.uint32, copy,
    ...                     client="synchronous", progress=False)
    >>> int(vol.read()[1, 2, 3])
    23
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from ... import safeio
from ...volumes import Volume, box_text, shared_context, wait, zarr3_spec
from .._checks import check_label_dtype, check_label_values
from .plan import BlockGrid
from .runner import Runner
from .state import State, Target, resolve_target

CHUNK_TARGET = (32, 128, 128)
_STORES: dict[tuple[int, str], ts.TensorStore] = {}


@dataclass
class Job:
    """What a task needs (picklable): the source, the grid, the records, the output spec."""

    source: Volume
    grid: BlockGrid
    state: State
    output: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    create: dict[str, Any] | None = None  # the output's zarr3 spec, when made once its dtype is known

    def read_block(self, bid: int) -> np.ndarray:
        """The input of block ``bid``; errors name the block, negative ids are refused."""
        box = self.grid.box(bid)
        try:
            block = self.source.read(box)
        except Exception as e:  # noqa: BLE001 - re-raised as its own type, the block named
            raise in_block(e, bid, self.grid.n_blocks) from None
        check_label_values(block, f"{self.source.name}: block {bid} ({box_text(box)})")
        return block

    def write_block(self, bid: int, data: np.ndarray) -> None:
        """Write one block of the output (each block covers whole chunks: no write races)."""
        wait(_store(self.output)[self.grid.box(bid)].write(np.ascontiguousarray(data)))

    def create_output(self, dtype: Any) -> None:
        """Create the output (kept by a rerun: the same job gives the same dtype) as ``dtype``."""
        spec = dict(self.create or {})
        spec["metadata"] = dict(spec["metadata"], data_type=np.dtype(dtype).name)
        wait(ts.open(spec, create=True, open=True, context=shared_context()))

    def provisional(self, dtype: Any) -> dict[str, Any]:
        """Spec of the block-local labels kept between the label and write phases: zarr3, zstd
        level 1, one chunk per output chunk, in ``DEST.blockwise/provisional/uint16`` (blocks
        with fewer than 2**16 components: half the bytes to compress) or ``.../uint32``."""
        name = np.dtype(dtype).name
        kv = dict(self.state.spec, path=self.state.spec["path"] + f"provisional/{name}/")
        return {"driver": "zarr3", "kvstore": kv, "store_data_equal_to_fill_value": True}

    def create_provisional(self) -> None:
        for dtype in PROVISIONAL:
            meta = dict(self.create["metadata"], data_type=np.dtype(dtype).name)
            meta.pop("dimension_names", None)
            meta["codecs"] = [{"name": "bytes", "configuration": {"endian": "little"}},
                              {"name": "zstd", "configuration": {"level": 1}}]  # fmt: skip
            spec = dict(self.provisional(dtype), metadata=meta)
            wait(ts.open(spec, create=True, open=True, context=shared_context()))

    def write_provisional(self, bid: int, ids: np.ndarray, n: int) -> None:
        """Keep block ``bid``'s local ids (not fsynced: they are checked when read back, and
        recomputed from the input if a crash of the machine lost them)."""
        dtype = provisional_dtype(n)
        store = _store(self.provisional(dtype), sync=False)
        wait(store[self.grid.box(bid)].write(np.ascontiguousarray(ids, dtype)))

    def read_provisional(self, bid: int, n: int) -> np.ndarray | None:
        """Block ``bid``'s local ids, or None when they cannot be read back."""
        try:
            return np.asarray(wait(_store(self.provisional(provisional_dtype(n)), sync=False)[self.grid.box(bid)].read()))
        except Exception:  # noqa: BLE001 - the caller recomputes the block
            return None


PROVISIONAL = (np.uint16, np.uint32)


def provisional_dtype(n: int) -> type:
    """Where a block of ``n`` components keeps its provisional labels."""
    return np.uint16 if n < 2**16 else np.uint32


_NOSYNC: dict[int, ts.Context] = {}


def _store(spec: dict[str, Any], sync: bool = True) -> ts.TensorStore:
    """The open TensorStore of ``spec`` in this process (opened once per process); ``sync=False``
    writes local files without fsync."""
    key = (os.getpid(), repr(spec), sync)
    store = _STORES.get(key)
    if store is None:
        context = shared_context()
        if not sync:
            context = _NOSYNC.setdefault(os.getpid(), ts.Context({"file_io_sync": False}, parent=context))
        store = ts.open(spec, open=True, context=context).result()
        _STORES[key] = store
    return store


def in_block(e: BaseException, bid: int, n_blocks: int) -> BaseException:
    """``e`` again (same type where it can be rebuilt from a message) naming block ``bid``."""
    msg = f"{e} (block {bid} of {n_blocks})"
    try:
        out = type(e)(msg)
    except Exception:  # noqa: BLE001 - a type that takes other arguments
        out = RuntimeError(f"{type(e).__name__}: {msg}")
    return out


def open_source(
    source: Any, voxel_size: Sequence[float] | None = None, allow_missing: bool | None = None
) -> Volume:
    """A Volume from a Volume, a path, a URL, a TensorStore spec (opened for reading only) or a
    generated source's spec (``{"driver": "nj_generated", ...}``, ``generated.py``);
    ``voxel_size`` replaces the one it records (label ops need none: it may stay None).
    ``allow_missing`` applies to what is opened here (a Volume keeps its own policy)."""
    if isinstance(source, Volume):
        return source if voxel_size is None else source.with_voxel_size(voxel_size)
    if isinstance(source, dict) and source.get("driver") == "nj_generated":
        from .generated import open_generated  # computed from coordinates (tests, benchmarks)

        return Volume(open_generated(source), voxel_size)
    return Volume.open(source, voxel_size=voxel_size, allow_missing=allow_missing)


def _plan(op: str, src: Volume, grid: BlockGrid, chunks, out_dtype, extra: dict) -> dict:
    return {
        "op": op,
        "source": src.name,
        "source_origin": list(src.origin),
        "shape": list(src.shape),
        "dtype": src.dtype.name,
        "voxel_size": None if src.voxel_size is None else list(src.voxel_size),
        "block_shape": list(grid.block_shape),
        "chunks": list(chunks),
        "out_dtype": "auto" if out_dtype is None else np.dtype(out_dtype).name,
        **extra,
    }


def run_job(
    op: str,
    source: Any,
    dest: Any,
    block_shape: Sequence[int],
    out_dtype: Any,
    phases: Callable[[Runner, Job], dict],
    *,
    extra: dict | None = None,
    options: dict | None = None,
    client: Any = None,
    n_workers: int | None = None,
    progress: bool = True,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    allow_missing: bool | None = None,
) -> tuple[Volume, dict]:
    """Run (or resume, or just return) the blockwise job ``op``; -> (output Volume, summary).

    ``extra`` joins the plan (a rerun must match it); ``options`` reach the tasks only.
    ``allow_missing``: read missing chunks of the source as its fill value (a sparse store).
    """
    src = open_source(source, voxel_size, allow_missing)
    if src.ndim != 3:
        raise ValueError(f"{src.name}: blockwise ops need a 3D (Z, Y, X) volume; found shape {src.shape}")
    check_label_dtype(src.dtype, src.name)
    grid = BlockGrid(src.shape, block_shape)
    chunks = grid.check_chunks(chunks) if chunks is not None else grid.chunks(CHUNK_TARGET)
    target = resolve_target(dest)
    plan = _plan(op, src, grid, chunks, out_dtype, extra or {})
    lock: Any = contextlib.nullcontext()
    if target.local_path is not None:
        lock = safeio.OutputLock(target.local_path, f"blockwise {op}")
    with lock:
        if target.local_path is not None:
            safeio.clean_stale(target.local_path, (Path(target.state.spec["path"].rstrip("/")),))
        return _run_locked(op, src, grid, chunks, target, plan, out_dtype, phases, extra, options,
                           client, n_workers, progress)


def _run_locked(op, src, grid, chunks, target, plan, out_dtype, phases, extra, options, client,
                n_workers, progress) -> tuple[Volume, dict]:
    done = target.state.get_json("complete.json")
    if done is not None and target.state.get_json("plan.json") == _plain(plan):
        return _finish(target), done
    if target.exists() and target.state.get_json("plan.json") is None:
        raise FileExistsError(f"{target.describe()}: the output already exists; refusing to overwrite")
    if target.local_path is not None and target.local_path.exists():
        raise FileExistsError(
            f"{target.local_path}: the output already exists; refusing to overwrite "
            f"(records of another job are in {target.state.describe()})"
        )
    target.state.check_plan(plan)

    spec = zarr3_spec("/unused", out_dtype or np.uint32, src.shape, src.voxel_size, chunks)
    spec["kvstore"] = target.output_kvstore
    # blocks of zeros are stored too: a missing chunk of the output always means lost data
    open_spec = {"driver": "zarr3", "kvstore": target.output_kvstore, "store_data_equal_to_fill_value": True}
    job = Job(src, grid, target.state, open_spec, {**(extra or {}), **(options or {})}, spec)
    if out_dtype is not None:  # else the phases create it once they know the dtype
        job.create_output(out_dtype)
    with Runner(client, n_workers=n_workers, progress=progress) as runner:
        t0 = time.perf_counter()
        summary = dict(phases(runner, job))
        summary["seconds"] = dict(runner.seconds, total=round(time.perf_counter() - t0, 3))
    summary.update(op=op, n_blocks=grid.n_blocks)
    target.state.put_json("complete.json", summary)
    return _finish(target), summary


def _plain(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj))


def _finish(target: Target) -> Volume:
    """Move a finished local output into place (again after a crash mid-way), drop records."""
    if target.local_path is not None and not target.local_path.exists():
        if not os.path.isdir(target.output_kvstore["path"]):
            raise FileNotFoundError(
                f"{target.local_path}: the records in {target.state.describe()} say this job "
                "finished, but the output is gone; remove that folder to compute it again"
            )
        target.finalize()
    target.cleanup()
    return Volume.open({"driver": "zarr3", "kvstore": target.final_kvstore()})
