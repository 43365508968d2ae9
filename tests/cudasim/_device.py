"""Devices, streams and the ordering rules of the stand-in (see ``cudasim`` for the model).

Every device has a null stream; ``Stream()`` makes another on the current device. Work that a
stream runs (a kernel launch, a library op, a copy) gets the stream's next sequence number and
leaves its output buffers marked "written by (stream, seq)". Work is complete only once it is
*ordered* for the host: ``Stream.synchronize``, ``Device.synchronize`` or a blocking host read
on that stream. A read of a buffer on another stream, or on the host, before its last write is
ordered raises ``OrderingError`` naming the buffer's device and stream.

Example:
    >>> import cudasim as cp
    >>> with cp.cuda.Device(1):
    ...     a = cp.zeros(3)
    >>> a.device.id
    1
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field

DEVICE_COUNT = int(os.environ.get("NJ_CUDASIM_DEVICES", "2"))


class CUDARuntimeError(RuntimeError):
    """A call the CUDA runtime would refuse (bad device id, ...)."""


class OrderingError(RuntimeError):
    """Data read before the work that wrote it was ordered (a race on real hardware)."""


class DeviceMismatchError(ValueError):
    """An array used on a device that is not current (a foreign pointer on real hardware)."""


@dataclass
class Counters:
    """What the glue asked of the device since the last ``reset``."""

    launches: int = 0  # RawKernel launches
    ops: int = 0  # library operations (elementwise, reductions, sorts, copies on the device)
    syncs: int = 0  # host waits: blocking reads, .get(), bool()/int(), syncing indexing, synchronize()
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    log: list = field(default_factory=list)  # (kind, what) of every sync, for messages

    def reset(self) -> None:
        self.launches = self.ops = self.syncs = self.h2d_bytes = self.d2h_bytes = 0
        self.log.clear()

    def snapshot(self) -> dict:
        return {k: getattr(self, k) for k in ("launches", "ops", "syncs", "h2d_bytes", "d2h_bytes")}


counters = Counters()
_tls = threading.local()


class Stream:
    """A stream of one device. ``with stream:`` makes it the device's current stream."""

    def __init__(self, null: bool = False, non_blocking: bool = False, *, _device: int | None = None):
        self.device_id = current_device_id() if _device is None else _device
        self.seq = 0  # last enqueued work
        self.done = 0  # last work ordered for the host
        self.is_null = bool(null) and _device is not None
        self.non_blocking = non_blocking
        self._prev: list = []
        if not self.is_null:
            _STREAMS.add(self)

    def __repr__(self) -> str:
        return f"<cudasim Stream {'null' if self.is_null else hex(id(self))} of device {self.device_id}>"

    @property
    def ptr(self) -> int:
        return 0 if self.is_null else id(self)

    def enqueue(self) -> int:
        self.seq += 1
        return self.seq

    def synchronize(self) -> None:
        counters.syncs += 1
        counters.log.append(("stream.synchronize", repr(self)))
        self.done = self.seq

    def record(self, event: Event | None = None) -> Event:
        event = event or Event()
        event.stream, event.seq = self, self.seq
        return event

    def wait_event(self, event: Event) -> None:
        """Work queued on this stream after now runs after ``event``'s work."""
        _waits(self).add((id(event.stream), event.seq, event.stream))

    def use(self) -> Stream:
        _current_streams()[self.device_id] = self
        return self

    def __enter__(self) -> Stream:
        if self.device_id != current_device_id():
            raise DeviceMismatchError(
                f"{self!r} entered while device {current_device_id()} is current"
            )
        cur = _current_streams()
        self._prev.append(cur.get(self.device_id))
        cur[self.device_id] = self
        return self

    def __exit__(self, *exc) -> None:
        prev = self._prev.pop()
        cur = _current_streams()
        if prev is None:
            cur.pop(self.device_id, None)
        else:
            cur[self.device_id] = prev


def _waits(stream: Stream) -> set:
    if not hasattr(stream, "_wait_set"):
        stream._wait_set = set()
    return stream._wait_set


class Event:
    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self.stream: Stream | None = None
        self.seq = 0

    def synchronize(self) -> None:
        counters.syncs += 1
        counters.log.append(("event.synchronize", repr(self.stream)))
        if self.stream is not None:
            self.stream.done = max(self.stream.done, self.seq)

    def record(self, stream: Stream | None = None) -> None:
        (stream or get_current_stream()).record(self)


_NULL = [Stream(null=True, _device=i) for i in range(DEVICE_COUNT)]


def ordered(stream_of_write: Stream | None, seq: int, reader: Stream | None) -> bool:
    """Is the write ``(stream_of_write, seq)`` complete before work on ``reader`` (None: the host)?"""
    if stream_of_write is None or seq <= stream_of_write.done:
        return True
    if reader is stream_of_write:
        return True
    if reader is not None:
        for _sid, s, st in _waits(reader):
            if st is stream_of_write and s >= seq:
                return True
    return False


def _current_streams() -> dict:
    if not hasattr(_tls, "streams"):
        _tls.streams = {}
    return _tls.streams


def current_device_id() -> int:
    return getattr(_tls, "device", 0)


def get_current_stream(device_id: int | None = None) -> Stream:
    d = current_device_id() if device_id is None else device_id
    return _current_streams().get(d) or _NULL[d]


class Device:
    """``cupy.cuda.Device``: ``with Device(i):`` makes device i current for this thread."""

    def __init__(self, device: int | None = None):
        if device is None:
            device = current_device_id()
        device = int(device)
        if not 0 <= device < DEVICE_COUNT:
            raise CUDARuntimeError(
                f"cudaErrorInvalidDevice: invalid device ordinal {device} (the stand-in has {DEVICE_COUNT})"
            )
        self.id = device
        self._prev: list[int] = []

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("cudasim.Device", self.id))

    def __int__(self) -> int:
        return self.id

    def __enter__(self) -> Device:
        self._prev.append(current_device_id())
        _tls.device = self.id
        return self

    def __exit__(self, *exc) -> None:
        _tls.device = self._prev.pop()

    def use(self) -> None:
        _tls.device = self.id

    def synchronize(self) -> None:
        counters.syncs += 1
        counters.log.append(("device.synchronize", repr(self)))
        for s in [_NULL[self.id], *_all_streams(self.id)]:
            s.done = s.seq

    @property
    def compute_capability(self) -> str:
        return "90"


_STREAMS: weakref.WeakSet = weakref.WeakSet()  # every live stream, for Device.synchronize


def _all_streams(device_id: int) -> list:
    return [s for s in list(_STREAMS) if s.device_id == device_id]
