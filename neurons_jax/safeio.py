"""Safe outputs: locks, temporary names, replacing an output, leftovers of dead runs, interrupts.

Every writer of neurons-jax (``neurons-relabel``, blockwise jobs, ``prepare``, ``write_zarr3``,
``labelio.write_labels``) goes through this module, so they share one behaviour:

* ``temp_path(path)``: the hidden sibling ``.NAME.njtmp-HOST-PID-TOKEN[.ext]`` a writer fills
  and then renames (same folder, so the rename is atomic). The process id and host in the name
  let a later run tell leftovers of a dead process from those of a live one.
* ``OutputLock(path, what)``: ``.NAME.njlock`` next to the output, held (``flock``) while it is
  written; a second writer gets ``OutputBusyError`` naming the first (what, pid, host, start).
  The kernel drops the lock of a process that died, so its lock file is simply taken over.
  Locks are re-entrant within a process (a command may lock what its library call locks too).
* ``clean_stale(path)``: leftovers of dead processes of this host: temporaries are removed; an
  old output that was moved aside (``.NAME.njold-HOST-PID-TOKEN``) while a replacing run died
  is put back when the output is missing, else removed. Only names this module makes are ever
  touched, never anything else.
* ``replace_path(tmp, path)``: a finished temporary onto ``path``; an existing folder is moved
  aside first and deleted only once the new one is in place (restored on any failure).
* ``check_replaceable(path, kind)``: what ``--overwrite`` may replace: a file for file formats; a
  folder only when it holds nothing but a store's own files (zarr3, zarr, N5, precomputed), a
  prepared root's or a blockwise job's records; never a folder with other content.
* ``deferred_interrupts()`` / ``checkpoint()``: Ctrl-C (and SIGTERM) inside is remembered and
  raised at the next checkpoint, so a signal that lands inside a library (h5py swallows it) still
  stops the writer, between two slabs, with its temporary removed.
* ``pause_point(name)``: a test hook (``NEURONS_JAX_TEST_PAUSE=NAME:FLAGFILE``) that holds a
  writer at a known point; unused otherwise.

Example:
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from neurons_jax import safeio
    >>> d = Path(tempfile.mkdtemp())
    >>> tmp = safeio.temp_path(d / "out.npy")
    >>> tmp.name.startswith(".out.npy.njtmp-") and tmp.name.endswith(".npy")
    True
    >>> with safeio.OutputLock(d / "out.npy", "doctest"):
    ...     _ = tmp.write_text("new")
    ...     safeio.replace_path(tmp, d / "out.npy")
    >>> sorted(os.listdir(d)), (d / "out.npy").read_text()
    (['out.npy'], 'new')
    >>> (d / "mine").mkdir(); _ = (d / "mine" / "notes.txt").write_text("keep")
    >>> safeio.check_replaceable(d / "mine", "store")
    Traceback (most recent call last):
    ...
    FileExistsError: .../mine: holds files neurons-jax did not write (notes.txt); --overwrite replaces only a zarr3/zarr/N5/precomputed store; choose another output or move those files
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.nj(?P<tag>tmp|old)-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<ext>.*)$"
)
LOCK_SUFFIX = ".njlock"


class OutputBusyError(FileExistsError):
    """Another run holds the lock of an output; the message names it (what, pid, host, start)."""


# ----------------------------------------------------------------------------- names
def temp_path(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """A hidden sibling of ``path`` named after this process (``tag``: "tmp" or "old"), with the
    same suffix so format writers that look at it see the right one."""
    path = Path(path)
    name = path.name
    low = name.lower()
    ext = ".nii.gz" if low.endswith(".nii.gz") else path.suffix if "." in name[1:] else ""
    return path.parent / f".{name}.nj{tag}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{ext}"


def make_temp_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``temp_path(path)`` with the mode a plain mkdir would give."""
    tmp = temp_path(path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.mkdir()
    return tmp


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a pid we may not signal counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(path: Path, tag: str) -> list[tuple[Path, int]]:
    """Siblings of ``path`` this module named with ``tag`` whose process (on this host) is dead."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    out = []
    for n in names:
        m = _LEFTOVER.match(n)
        if m is None or m["name"] != path.name or m["tag"] != tag or m["host"] != _HOST:
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and not pid_alive(pid):
            out.append((path.parent / n, pid))
    return sorted(out, key=lambda q: _mtime(q[0]), reverse=True)


def _mtime(p: Path) -> float:
    try:
        return os.lstat(p).st_mtime
    except OSError:
        return 0.0


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a file or folder this program wrote (errors ignored; symlinks are not followed)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def clean_stale(path: str | os.PathLike, companions: tuple[str | os.PathLike, ...] = ()) -> list[str]:
    """Undo what dead runs of this host left next to ``path`` (and its ``companions``, e.g. the
    ``OUT.blockwise`` records that are replaced together with ``OUT``); returns notes.

    Temporaries are removed. Old outputs moved aside by a replacing run that died: when ``path``
    is missing the newest is put back (and the companions' with it, the dead run's new records
    removed), otherwise the new output is in place and the old ones are removed. Call it while
    holding the output's lock.
    """
    path = Path(path)
    group = [path, *(Path(c) for c in companions)]
    notes = []
    for p in group:
        for q, pid in _leftovers(p, "tmp"):
            remove_tree(q)
            notes.append(f"removed {q.name}, a temporary left by process {pid}, which is gone")
    asides = _leftovers(path, "old")
    if asides and not os.path.lexists(path):
        old, pid = asides.pop(0)
        with deferred_interrupts():
            os.replace(old, path)
            for c in group[1:]:
                mine = [q for q, p in _leftovers(c, "old") if p == pid]
                if mine:
                    if os.path.lexists(c):
                        remove_tree(c)  # the dead run's new records: it never finished
                    os.replace(mine[0], c)
        notes.append(f"restored {path.name} from {old.name}: process {pid}, which was replacing "
                     "it, died before its new output was in place")
    for p in group:
        for q, pid in _leftovers(p, "old"):
            remove_tree(q)
            notes.append(f"removed {q.name}, an old output that process {pid} had replaced")
    return notes


# ----------------------------------------------------------------------------- replacing
def replace_path(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished ``tmp`` (file or folder) onto ``path``.

    An existing folder at ``path`` is moved aside (``temp_path(path, "old")``) first and deleted
    only once the new one is in place; on any failure it is put back, and if this process dies
    in between, the next ``clean_stale(path)`` puts it back. A file is replaced atomically by the
    rename itself. Interrupts wait until the swap is over.
    """
    tmp, path = Path(tmp), Path(path)
    old = None
    with deferred_interrupts():
        if path.is_dir() and not path.is_symlink():
            old = temp_path(path, "old")
            os.replace(path, old)
        try:
            pause_point("replace")
            os.replace(tmp, path)
        except BaseException:
            if old is not None and not os.path.lexists(path):
                os.replace(old, path)
            raise
    if old is not None:
        remove_tree(old)


# ----------------------------------------------------------------------------- what --overwrite may replace
_ZARR2_CHUNK = re.compile(r"^\d+([./]\d+)*$")
_RECORDS = {"plan.json", "complete.json", "mapping.npz", "label", "keys", "faces", "write",
            "unique", "merge", "output"}
STORES = "a zarr3/zarr/N5/precomputed store"


def _store_foreign(path: Path) -> list[str] | None:
    """Names in folder ``path`` that are not files of the store found there (None: no store)."""
    names = set(os.listdir(path))
    if "zarr.json" in names:
        ok = {n for n in names if n == "zarr.json" or n == "c" or n.startswith("c.")}
    elif ".zarray" in names:
        ok = {n for n in names if n in (".zarray", ".zattrs", ".zgroup", ".zmetadata") or _ZARR2_CHUNK.match(n)}
    elif "attributes.json" in names:
        ok = {n for n in names if n == "attributes.json" or n.isdigit()}
    elif "info" in names:
        ok = {"info", "provenance"}
        try:
            info = json.loads((path / "info").read_text())
            ok |= {str(s.get("key")) for s in info.get("scales", [])}
            ok |= {str(info[k]) for k in ("mesh", "skeletons", "segment_properties") if k in info}
        except (OSError, ValueError, AttributeError, TypeError):
            return None
        ok &= names
    else:
        return None
    return sorted(names - ok)


def _prepared_foreign(path: Path) -> list[str] | None:
    names = set(os.listdir(path))
    if "metadata.json" not in names:
        return None
    bad = sorted(names - {"metadata.json", "volumes"})
    vols = path / "volumes"
    if vols.is_dir():
        for v in sorted(os.listdir(vols)):
            vdir = vols / v
            if not vdir.is_dir():
                bad.append(f"volumes/{v}")
                continue
            for s in sorted(os.listdir(vdir)):
                sp = vdir / s
                inner = _store_foreign(sp) if s in ("image.zarr", "label.zarr") and sp.is_dir() else None
                if inner is None:
                    bad.append(f"volumes/{v}/{s}")
                else:
                    bad += [f"volumes/{v}/{s}/{n}" for n in inner]
    return bad


def check_replaceable(path: str | os.PathLike, kind: str, tool: str = "neurons-jax") -> None:
    """Refuse (FileExistsError naming what is there) unless ``--overwrite`` may replace ``path``.

    ``kind``: "file" (a file of a file format: replaced; a folder is refused), "store" (a folder
    holding only a zarr3/zarr/N5/precomputed store's own files, or empty), "prepared" (a prepared
    root: metadata.json and volumes/NAME/{image,label}.zarr stores only) or "records" (a
    blockwise job's ``OUT.blockwise`` folder). A symlink at ``path`` is refused.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise FileExistsError(f"{path}: is a symlink{' loop' if symlink_loop(path) else ''}; "
                              "--overwrite replaces only what this program wrote; give the real path")
    if kind == "file":
        if path.is_dir():
            raise FileExistsError(f"{path}: is a directory; --overwrite replaces only a file of the "
                                  "output's format; choose another output")
        return
    if not path.is_dir():
        raise FileExistsError(f"{path}: is a file, not {STORES if kind == 'store' else 'a folder this program wrote'}; "
                              "refusing to replace it; choose another output")
    if not any(path.iterdir()):
        return
    if kind == "store":
        bad, expected = _store_foreign(path), STORES
    elif kind == "prepared":
        bad, expected = _prepared_foreign(path), "a prepared root (metadata.json, volumes/)"
    elif kind == "records":
        bad, expected = sorted(set(os.listdir(path)) - _RECORDS), "a blockwise job's records"
    else:
        raise ValueError(f"check_replaceable: kind must be file, store, prepared or records; got {kind!r}")
    if bad is None:
        bad = sorted(os.listdir(path))
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise FileExistsError(f"{path}: holds files {tool} did not write ({shown}); --overwrite "
                              f"replaces only {expected}; choose another output or move those files")


# ----------------------------------------------------------------------------- paths
def symlink_loop(path: str | os.PathLike) -> bool:
    """Whether resolving ``path`` runs into a symlink loop (ELOOP)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def missing_reason(path: str | os.PathLike, what: str = "no such file") -> str:
    """``"symlink loop"`` when that is why ``path`` cannot be opened, else ``what``."""
    return "symlink loop (a link that leads back to itself)" if symlink_loop(path) else what


# ----------------------------------------------------------------------------- locks
_HELD: dict[str, list] = {}  # lock path -> [fd, depth, pid]
_HELD_LOCK = threading.Lock()


def _describe_holder(info: dict) -> str:
    if not info:
        return "holder unknown"
    what = info.get("what") or "a run"
    return f"{what}, pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {info.get('started', '?')}"


def _read_info(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


class OutputLock:
    """A context manager holding ``.NAME.njlock`` next to ``path`` while it is written.

    ``what`` says who writes (``"neurons-relabel components"``); a second writer of the same
    output gets ``OutputBusyError`` naming the first. ``took_over`` is the record of a dead
    holder whose lock this one took, if any.
    """

    def __init__(self, path: str | os.PathLike, what: str = "neurons-jax"):
        self.path = Path(path)
        self.lock_path = self.path.parent / f".{self.path.name}{LOCK_SUFFIX}"
        self.what = what
        self.took_over: dict | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _key(self) -> str:
        return os.path.abspath(self.lock_path)

    def acquire(self) -> None:
        key = self._key()
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is not None and held[2] == os.getpid():
                held[1] += 1
                return
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_info(fd)
                os.close(fd)
                raise OutputBusyError(
                    f"{self.path}: another run is writing it ({_describe_holder(info)}); wait for it "
                    f"to finish or stop it (its lock: {self.lock_path.name})"
                ) from None
            except OSError:  # a filesystem without flock: fall back to the holder's pid
                info = _read_info(fd)
                if info.get("host") == _HOST and pid_alive(int(info.get("pid", 0))) and info.get("pid") != os.getpid():
                    os.close(fd)
                    raise OutputBusyError(f"{self.path}: another run is writing it ({_describe_holder(info)})") from None
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed by its holder between our open and our lock: try again
                os.close(fd)
                continue
            prev = _read_info(fd)
            self.took_over = prev or None
            info = {"what": self.what, "pid": os.getpid(), "host": socket.gethostname(),
                    "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "argv": sys.argv}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode())
            with _HELD_LOCK:
                _HELD[key] = [fd, 1, os.getpid()]
            return
        raise OutputBusyError(f"{self.path}: its lock {self.lock_path.name} keeps changing; another run is starting")

    def release(self) -> None:
        key = self._key()
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is None or held[2] != os.getpid():
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del _HELD[key]
        fd = held[0]
        with contextlib.suppress(OSError):
            if os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino:
                os.unlink(self.lock_path)
        os.close(fd)


# ----------------------------------------------------------------------------- interrupts
_pending: list[int] = []
_depth = [0]


def checkpoint() -> None:
    """Raise the KeyboardInterrupt a deferred Ctrl-C / SIGTERM is waiting to deliver."""
    if _pending:
        _pending.clear()
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM inside are remembered and raised at the next ``checkpoint()`` or on
    leaving; a second Ctrl-C raises at once. No-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth[0] += 1
    if _depth[0] > 1:
        try:
            yield
        finally:
            _depth[0] -= 1
        return

    def handler(signum, frame):
        if _pending:
            raise KeyboardInterrupt
        _pending.append(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    ok = False
    try:
        yield
        ok = True
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _depth[0] -= 1
        if ok:
            checkpoint()
        else:
            _pending.clear()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside (so ``kill PID`` cleans up as Ctrl-C does); no-op
    outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- test hook
_paused: set[str] = set()


def pause_point(name: str) -> None:
    """Test hook: with ``NEURONS_JAX_TEST_PAUSE=NAME:FLAGFILE`` the first call of ``name`` in this
    process writes this pid to FLAGFILE and waits (interruptibly, at most 120 s) until the test
    removes it. Nothing happens without the variable."""
    spec = os.environ.get("NEURONS_JAX_TEST_PAUSE")
    if not spec or name in _paused:
        return
    point, _, flag = spec.partition(":")
    if point != name or not flag:
        return
    _paused.add(name)
    Path(flag).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while os.path.exists(flag) and time.monotonic() < deadline:
        checkpoint()
        time.sleep(0.02)
    checkpoint()
