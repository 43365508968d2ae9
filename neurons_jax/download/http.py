"""Resumable, verified HTTP download of one file (stdlib only: urllib + http.client).

``fetch(url, dest)`` streams into ``dest.part`` and resumes it with an HTTP ``Range`` request,
retries transient failures (HTTP 5xx/408/429, connection reset or dropped, time-outs) with
exponential back-off, fails at once on what retrying cannot fix (404 and other 4xx, DNS
failure, connection refused, TLS errors, disk full), checks the size and any published
checksum, and only then renames the file to its final name and records its sha256 in the
directory's manifest. A file that is already complete is skipped.

Time-out, retries and back-off default to the network policy (:mod:`neurons_jax.net`:
``NEURONS_JAX_NET_TIMEOUT`` / ``_RETRIES`` / ``_BACKOFF``, 7 s, 2, 1 s): the time-out bounds the
connection, each wait for data, and the host name lookup, so a URL that cannot be reached
fails within ``Policy.worst_case()`` seconds with one line naming it and the cause.

Example:
    >>> from neurons_jax.download.http import fetch
    >>> fetch("https://cremi.org/static/data/sample_A_20160501.hdf",
    ...       "data/cremi3d/sample_A_20160501.hdf")            # doctest: +SKIP
    PosixPath('data/cremi3d/sample_A_20160501.hdf')
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .. import net
from .manifest import Manifest, hash_file

USER_AGENT = "neurons-jax-download/0.1 (+python-urllib)"
CHUNK = 1 << 20
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(OSError):
    """A download that cannot succeed as asked; ``str(e)`` is a one-line reason."""


class _Transient(Exception):
    """A failure worth retrying (the partial file stays for the next attempt)."""


@dataclass
class Expected:
    """What the source says a file must be: size in bytes and checksums (hex), when known."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    def checks(self) -> dict[str, str]:
        return {a: v.lower() for a, v in (("sha256", self.sha256), ("md5", self.md5)) if v}


@dataclass
class _State:
    hashers: dict[str, hashlib._Hash] = field(default_factory=dict)
    hashed: int = 0  # bytes of the .part file the hashers have seen
    total: int | None = None
    bar: object | None = None


def part_path(dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    expected: Expected | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
    progress: bool = True,
    verify_tls: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); returns ``dest``.

    Raises :class:`DownloadError` with a one-line reason when it cannot succeed; the final
    name only ever holds a complete, verified file. ``verify_tls=False`` skips certificate
    checks (for hosts with an expired certificate; sizes and checksums are still checked).
    ``retries``/``backoff``/``timeout`` left None follow :func:`neurons_jax.net.policy`.
    """
    policy = _policy(retries, backoff, timeout)
    expected = expected or Expected()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(dest.parent)
    if dest.exists():
        _check_existing(dest, url, expected, manifest)
        return dest
    part = part_path(dest)
    algorithms = ("sha256", *(a for a in expected.checks() if a != "sha256"))
    state = _State(hashers={a: hashlib.new(a) for a in algorithms}, total=expected.size)
    attempt = 0
    try:
        while True:
            try:
                _transfer(url, part, expected, state, timeout=policy.timeout, progress=progress,
                          verify_tls=verify_tls)
                break
            except _Transient as e:
                if attempt >= policy.retries:
                    kept = f"; rerun to resume from {part.name}" if part.exists() else ""
                    raise DownloadError(
                        f"{url}: {e} (gave up after {attempt + 1} attempt(s){kept}{_hint(e)})"
                    ) from None
                delay = policy.delay(attempt)
                if progress:
                    msg = f"{dest.name}: {e}; retrying in {delay:.2f} s"
                    if state.bar is not None:
                        state.bar.write(msg, file=sys.stderr)
                    else:
                        print(msg, file=sys.stderr)
                time.sleep(delay)
                attempt += 1
    finally:
        if state.bar is not None:
            state.bar.close()
    _finish(url, part, dest, expected, state, manifest)
    return dest


def fetch_text(
    url: str, *, retries: int | None = None, backoff: float | None = None,
    timeout: float | None = None, verify_tls: bool = True,
) -> str:
    """A small document (checksum list, record JSON) from ``url``, or a local file path."""
    if not re.match(r"^https?://", url):
        path = Path(url[len("file://"):] if url.startswith("file://") else url).expanduser()
        if not path.is_file():
            raise DownloadError(f"{path}: checksum document not found (expected a URL or a file)")
        return path.read_text()
    policy = _policy(retries, backoff, timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/plain, */*"}
    for attempt in range(policy.attempts):
        try:
            try:
                req = urllib.request.Request(url, headers=headers)
                with _open(req, policy.timeout, verify_tls) as resp:
                    return resp.read().decode("utf-8")
            except urllib.error.HTTPError as e:
                e.close()
                raise _http_failure(url, e) from None
            except urllib.error.URLError as e:
                raise _classify(url, e.reason, policy.timeout) from None
            except (OSError, http.client.HTTPException) as e:
                if isinstance(e, DownloadError):
                    raise
                raise _classify(url, e, policy.timeout) from None
        except _Transient as e:
            if attempt >= policy.retries:
                raise DownloadError(f"{url}: {e} (gave up after {attempt + 1} attempt(s){_hint(e)})") from None
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")


def _hint(e: Exception) -> str:
    return f"; --timeout or {net.ENV_TIMEOUT} sets the limit" if str(e).startswith("timed out") else ""


def _policy(retries: int | None, backoff: float | None, timeout: float | None) -> net.Policy:
    """The process's network policy with the values given here in place of its own."""
    given = {k: v for k, v in (("retries", retries), ("backoff", backoff), ("timeout", timeout))
             if v is not None}
    return dataclasses.replace(net.policy(), **given)


def _http_failure(url: str, e: urllib.error.HTTPError) -> Exception:
    """A retryable ``_Transient`` for 408/429/5xx, a final ``DownloadError`` for other codes."""
    if e.code in _TRANSIENT_HTTP or e.code >= 500:
        return _Transient(f"HTTP {e.code} {e.reason}")
    return DownloadError(f"{url}: HTTP {e.code} {e.reason}")


# ----------------------------------------------------------------------------- one attempt
def _transfer(
    url: str, part: Path, expected: Expected, state: _State, *, timeout: float, progress: bool,
    verify_tls: bool,
) -> None:
    have = part.stat().st_size if part.exists() else 0
    if expected.size is not None and have > expected.size:
        part.unlink()
        have = 0
    if have == expected.size and have > 0:
        return  # the part is already whole: only verification is left
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = _open(urllib.request.Request(url, headers=headers), timeout, verify_tls)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:
            total = _total_from_content_range(e.headers.get("Content-Range"))
            if total == have or (total is None and expected.size == have):
                state.total = have
                return
            part.unlink()
            raise _Transient("server refused to resume the partial file; starting over") from None
        raise _http_failure(url, e) from None
    except urllib.error.URLError as e:
        raise _classify(url, e.reason, timeout) from None
    except (OSError, http.client.HTTPException) as e:
        raise _classify(url, e, timeout) from None

    with resp:
        if resp.status == 206:
            start, total = _parse_content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Transient(f"server resumed at byte {start}, expected {have}; starting over")
            mode = "ab"
        else:  # 200: the server sends the whole file (no Range support, or none asked)
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and expected.size is not None and total != expected.size:
            raise DownloadError(
                f"{url}: the server announces {total} bytes, the source lists {expected.size}; "
                "wrong file or mirror"
            )
        state.total = total if total is not None else expected.size
        if state.total is not None:
            _check_space(part, state.total - have)
        if state.hashed != have:
            _rehash(part, have, state)
        bar = _bar(state, part, have, progress)
        received = 0
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as e:
                        raise _classify(url, e, timeout) from None
                    if not block:
                        break
                    try:
                        f.write(block)
                    except OSError as e:
                        raise _disk_error(part, e) from None
                    for h in state.hashers.values():
                        h.update(block)
                    state.hashed += len(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
        except OSError as e:
            if isinstance(e, DownloadError):
                raise
            raise _disk_error(part, e) from None
        if state.total is not None and have + received < state.total:
            raise _Transient(f"connection closed after {have + received} of {state.total} bytes")


def _finish(url: str, part: Path, dest: Path, expected: Expected, state: _State, manifest: Manifest) -> None:
    size = part.stat().st_size
    if state.hashed != size:
        _rehash(part, size, state)
    if (state.total is not None and size != state.total) or (
        expected.size is not None and size != expected.size
    ):
        part.unlink()
        raise DownloadError(
            f"{dest.name}: size mismatch: got {size} bytes, expected {expected.size or state.total}"
            " (partial file deleted)"
        )
    digests = {a: h.hexdigest() for a, h in state.hashers.items()}
    for algo, want in expected.checks().items():
        if digests[algo] != want:
            part.unlink()
            raise DownloadError(
                f"{dest.name}: checksum mismatch: {algo} expected {want}, got {digests[algo]} "
                f"(from {url}; download deleted)"
            )
    os.replace(part, dest)
    _record(manifest, dest.name, url, expected, digests)


def _check_existing(dest: Path, url: str, expected: Expected, manifest: Manifest) -> None:
    """Skip a complete file; refuse (never delete) one that contradicts the source."""
    size = dest.stat().st_size
    if expected.size is not None and size != expected.size:
        raise DownloadError(
            f"{dest}: exists with {size} bytes, the source lists {expected.size}; "
            "remove it to download again"
        )
    checks = expected.checks()
    entry = manifest.get(dest.name) or {}
    if manifest.is_current(dest.name) and all(entry.get(a) == v for a, v in checks.items()):
        return
    digests = hash_file(dest, ("sha256", *(a for a in checks if a != "sha256")))
    for algo, want in checks.items():
        if digests[algo] != want:
            raise DownloadError(
                f"{dest}: exists but its {algo} is {digests[algo]}, expected {want}; "
                "remove it to download again"
            )
    _record(manifest, dest.name, url, expected, digests)


def _record(manifest: Manifest, name: str, url: str, expected: Expected, digests: dict[str, str]) -> None:
    manifest.record(
        name, url=url, sha256=digests["sha256"], md5=digests.get("md5"),
        published=_published(expected),
    )


# ----------------------------------------------------------------------------- helpers
def _open(req: urllib.request.Request, timeout: float, verify_tls: bool):
    """``urlopen`` whose host name lookup, connection and reads each take at most ``timeout``."""
    net.resolve(req.full_url, timeout)  # socket.gaierror: classified as a DNS failure
    if verify_tls or req.type != "https":
        return urllib.request.urlopen(req, timeout=timeout)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return urllib.request.urlopen(req, timeout=timeout, context=ctx)


def _published(expected: Expected) -> str | None:
    checks = expected.checks()
    if "md5" in checks:
        return f"md5:{checks['md5']}"
    if "sha256" in checks:
        return f"sha256:{checks['sha256']}"
    return None


def _classify(url: str, reason: object, timeout: float | None = None) -> Exception:
    """Turn a network error into a retryable ``_Transient`` or a final ``DownloadError``."""
    host = urllib.parse.urlsplit(url).netloc or url
    if isinstance(reason, socket.gaierror):
        why = f": {reason.strerror}" if reason.strerror else ""
        return DownloadError(f"{url}: cannot resolve host {host.rsplit(':', 1)[0]!r} (DNS failure{why})")
    if isinstance(reason, ConnectionRefusedError):
        return DownloadError(f"{url}: connection refused by {host} (nothing listening, or a firewall)")
    if isinstance(reason, ssl.SSLError):
        why = getattr(reason, "reason", None) or reason
        return DownloadError(f"{url}: TLS error: {why} (--insecure skips certificate checks)")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        limit = f" within {timeout:g} s" if timeout is not None else ""
        return _Transient(f"timed out: no answer from {host}{limit}")
    if isinstance(reason, (ConnectionError, http.client.HTTPException)):
        return _Transient(f"connection to {host} lost ({type(reason).__name__})")
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return DownloadError(f"{url}: host {host} is unreachable ({reason.strerror})")
    if isinstance(reason, OSError):
        return _Transient(f"network error talking to {host}: {reason.strerror or reason}")
    return DownloadError(f"{url}: {reason}")


def _disk_error(part: Path, e: OSError) -> DownloadError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"disk full while writing {part} (free space and rerun to resume)")
    return DownloadError(f"cannot write {part}: {e.strerror or e}")


def _check_space(part: Path, need: int) -> None:
    free = shutil.disk_usage(part.parent).free
    if need > free:
        raise DownloadError(
            f"disk full: {part.name[:-5]} needs {format_bytes(need)} more, {format_bytes(free)} free in {part.parent}"
        )


def _rehash(part: Path, upto: int, state: _State) -> None:
    state.hashers = {a: hashlib.new(a) for a in state.hashers}
    state.hashed = 0
    if not upto:
        return
    with open(part, "rb") as f:
        left = upto
        while left and (block := f.read(min(CHUNK, left))):
            for h in state.hashers.values():
                h.update(block)
            left -= len(block)
            state.hashed += len(block)


def _bar(state: _State, part: Path, have: int, progress: bool):
    if not progress:
        return None
    from tqdm import tqdm

    if state.bar is None:
        state.bar = tqdm(
            total=state.total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[:-5], mininterval=0.5, dynamic_ncols=True,
        )
    else:
        state.bar.reset(total=state.total)
        state.bar.update(have)
    return state.bar


_CR = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    m = _CR.match(value or "")
    if not m:
        raise _Transient(f"bad Content-Range header {value!r} in a 206 response")
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _total_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes\s+\*/(\d+)", value or "")
    return int(m.group(1)) if m else None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"
