"""Reused shared-memory blocks for the Loader's batches: assembled once, never copied by Grain.

Grain's ``mp_prefetch`` copies every array of a worker's batch into a fresh shared-memory block
(an 80 MiB batch of 32x256x256 samples took 125 ms there, most of it faulting in new pages), and
the Loader then copied it out again. Here ``stack_batch`` (the Grain ``batch_fn``, in the worker)
writes every array of a batch straight into one block of this process's ``BatchPool`` and hands
Grain a tiny ``BlockRef`` instead of arrays (Grain pickles it as it is). The consumer
(``Loader.__next__``) maps the block once per name (``open_batch``: views, no copy), hands the
views to the device stage (which copies them to the devices), then ``release`` marks the block
free for its worker to reuse: pages stay mapped and faulted in on both sides.

The protocol is one state byte at the start of each block: the producer takes a block whose byte
is 0 (free), sets it to 1 and sends the ref; the consumer sets it back to 0 when done. Only the
producer creates blocks (at most ``MAX_BLOCKS`` per process; past that a batch falls back to
plain arrays, which Grain copies as before: slower, never blocked). The consumer unlinks every
block it has seen when the Loader closes (``close_all``); blocks are created by this module
only, so nothing else is ever unlinked.

Example:
    >>> import numpy as np
    >>> pool = BatchPool(token="doc1")
    >>> ref = pool.put({"a": np.arange(6).reshape(2, 3), "k": [1, 2]})
    >>> reader = Reader(token="doc1")
    >>> batch = reader.open_batch(ref)
    >>> batch["a"].tolist(), batch["k"]
    ([[0, 1, 2], [3, 4, 5]], [1, 2])
    >>> reader.release(ref); pool.blocks[0].buf[0]
    0
    >>> reader.close_all(); pool.close()    # unlinked; unmapped with the last view
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

HEADER = 64  # state byte + padding; arrays start 64-byte aligned
ALIGN = 64
MAX_BLOCKS = int(os.environ.get("NEURONS_JAX_BATCH_BLOCKS", 16))
FREE, BUSY = 0, 1


@dataclass(frozen=True)
class ArraySlot:
    """Where one array of a batch sits in a block."""

    offset: int
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class BlockRef:
    """A batch in a shared-memory block: the block's name, the arrays' slots, other values."""

    name: str
    slots: dict
    other: dict


def _layout(arrays: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[dict[str, ArraySlot], int]:
    slots, off = {}, HEADER
    for k, (shape, dtype) in arrays.items():
        slots[k] = ArraySlot(off, tuple(int(s) for s in shape), np.dtype(dtype).str)
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        off += (n + ALIGN - 1) // ALIGN * ALIGN
    return slots, off


def rounded(nbytes: int) -> int:
    """Block sizes on a coarse scale (1/8 steps of each power of two), so blocks get reused by
    batches whose boxes differ a little."""
    n = max(int(nbytes), 4096)
    step = 1 << max(12, n.bit_length() - 4)
    return (n + step - 1) // step * step


def view(buf, slot: ArraySlot) -> np.ndarray:
    return np.ndarray(slot.shape, np.dtype(slot.dtype), buffer=buf, offset=slot.offset)


class BatchPool:
    """The producer side (one per process): blocks this process created, reused when free."""

    def __init__(self, max_blocks: int = MAX_BLOCKS, token: str = ""):
        self.blocks: list[shared_memory.SharedMemory] = []
        self.max_blocks = int(max_blocks)
        self.token = token or secrets.token_hex(4)
        self.closed = False
        self._lock = threading.Lock()

    def acquire(self, nbytes: int) -> shared_memory.SharedMemory | None:
        """A free block of at least ``nbytes`` marked busy, a new one, or None past the cap."""
        with self._lock:
            if self.closed:
                return None
            free = [b for b in self.blocks if b.buf[0] == FREE and b.size >= nbytes]
            if free:
                blk = min(free, key=lambda b: b.size)
            elif len(self.blocks) < self.max_blocks:
                name = f"{block_prefix(self.token)}{os.getpid()}_{len(self.blocks)}"
                blk = Block(name=name, create=True, size=rounded(nbytes))
                self.blocks.append(blk)
            else:
                return None
            blk.buf[0] = BUSY
            return blk

    def allocate(self, arrays: dict[str, tuple[tuple[int, ...], Any]], other: dict):
        """``(ref, views)``: a block holding ``arrays`` (name -> (shape, dtype)) to be filled by
        the caller, or ``(None, fresh arrays)`` past the block cap."""
        slots, nbytes = _layout(arrays)
        blk = self.acquire(nbytes)
        if blk is None:
            return None, {k: np.empty(s, d) for k, (s, d) in arrays.items()}
        return BlockRef(blk.name, slots, other), {k: view(blk.buf, s) for k, s in slots.items()}

    def put(self, batch: dict) -> BlockRef | dict:
        """Copy ``batch``'s arrays into a block (the other values travel in the ref)."""
        arrays = {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and not v.dtype.hasobject}
        other = {k: v for k, v in batch.items() if k not in arrays}
        ref, views = self.allocate({k: (v.shape, v.dtype) for k, v in arrays.items()}, other)
        for k, v in arrays.items():
            views[k][...] = v
        return {**views, **other} if ref is None else ref

    def close(self, unlink: bool = True) -> None:
        """Stop making blocks and (by default) unlink the ones this process made: the consumer
        unlinks those it saw; a block made after that is ours to remove. The mappings go with
        their last view (a producer thread may still be writing one: see ``Block``)."""
        with self._lock:
            self.closed = True
            blocks, self.blocks = self.blocks, []
        if unlink:
            for b in blocks:
                _unlink(b)


class Block(shared_memory.SharedMemory):
    """A shared-memory block that is never unmapped explicitly. NumPy arrays made on a buffer
    keep a reference to the buffer object but not an export of it, so ``SharedMemory.close``
    (also run by its ``__del__``) could unmap a block under a live view and crash the thread
    using it. Here the mapping is freed with its last reference (the views' ``memoryview`` keeps
    the ``mmap`` alive); the file descriptor is closed at once, the name unlinked by ``unlink``."""

    def __init__(self, name: str | None = None, create: bool = False, size: int = 0):
        super().__init__(name=name, create=create, size=size)
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:  # the mapping goes with its last reference, never under a view
        pass

    def __del__(self) -> None:
        pass


def block_prefix(token: str) -> str:
    """Names of the blocks of one Loader (``token``) start with this, in every process."""
    return f"nj{token}_"


class Reader:
    """The consumer side: maps each block once, opens refs as views, releases and unlinks them."""

    def __init__(self, token: str = ""):
        self.token = token
        self._blocks: dict[str, shared_memory.SharedMemory] = {}
        self._lock = threading.Lock()

    def _block(self, name: str) -> shared_memory.SharedMemory:
        with self._lock:
            blk = self._blocks.get(name)
            if blk is None:
                blk = self._blocks[name] = _attach(name)
            return blk

    def open_batch(self, batch: Any) -> Any:
        """The batch as a dict of arrays: views into the block for a ``BlockRef``."""
        if not isinstance(batch, BlockRef):
            return batch
        blk = self._block(batch.name)
        return {**{k: view(blk.buf, s) for k, s in batch.slots.items()}, **batch.other}

    def release(self, batch: Any) -> None:
        """The block of ``batch`` may be reused by its producer (every view of it is done)."""
        if isinstance(batch, BlockRef):
            self._block(batch.name).buf[0] = FREE

    def close_all(self) -> None:
        """Unlink every block of this Loader: those seen, and (Linux) those its workers made but
        never sent (named with the Loader's token; nothing else is touched). Those are removed
        by name, without mapping them: a worker may still be sizing one."""
        with self._lock:
            blocks, self._blocks = self._blocks, {}
        for blk in blocks.values():
            _unlink(blk)
        if self.token and os.path.isdir("/dev/shm"):
            for name in os.listdir("/dev/shm"):
                if name.startswith(block_prefix(self.token)) and name not in blocks:
                    _unlink_name(name)


def _unlink(blk: shared_memory.SharedMemory) -> None:
    try:
        blk.unlink()
    except FileNotFoundError:  # already removed (the other side did)
        pass


def _unlink_name(name: str) -> None:
    """Remove block ``name`` from /dev/shm and from the resource tracker its creator told."""
    from multiprocessing import resource_tracker

    try:
        os.unlink(os.path.join("/dev/shm", name))
    except FileNotFoundError:
        return
    try:
        resource_tracker.unregister("/" + name, "shared_memory")
    except Exception:  # noqa: BLE001 - no tracker in this process: nothing registered here
        pass


def _attach(name: str) -> Block:
    """Map an existing block (the consumer unlinks it at the end, which also unregisters it
    from the resource tracker its creator registered it with)."""
    return Block(name=name)
