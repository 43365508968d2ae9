"""Loopback servers for testing network reads: Range requests, dropped connections, errors, stalls.

``LoopbackServer`` serves a directory on ``127.0.0.1`` (port chosen by the OS) from a background
thread. Switches make it misbehave on purpose: ``drop_at[path]`` lists byte offsets at which the
next responses for ``path`` are cut (the connection closes mid-body), ``fail[path]`` lists HTTP
statuses to answer before serving, ``stall`` lists glob patterns of paths it reads the request
of and never answers (until it is closed), ``range_support=False`` ignores ``Range`` headers,
``content[path]`` serves bytes from memory, ``tls=(cert, key)`` serves https. ``requests`` logs
(method, path, Range header). ``SilentServer`` accepts TCP connections and never sends a byte.

Example:
    >>> import pathlib, tempfile, urllib.request
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "f.bin").write_bytes(b"0123456789")
    >>> with LoopbackServer(d) as srv:
    ...     req = urllib.request.Request(srv.url + "f.bin", headers={"Range": "bytes=4-"})
    ...     urllib.request.urlopen(req).read()
    b'456789'
"""

from __future__ import annotations

import fnmatch
import os
import re
import socket
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LoopbackServer:
    """``with LoopbackServer(root) as srv: srv.url + "name"``; shut down on exit."""

    def __init__(self, root: str | os.PathLike, *, tls: tuple[str, str] | None = None):
        self.root = Path(root)
        self.tls = tls  # (certificate file, key file): serve https
        self.drop_at: dict[str, list[int]] = {}
        self.fail: dict[str, list[int]] = {}
        self.content: dict[str, bytes] = {}
        self.stall: list[str] = []
        self.range_support = True
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()  # set on close: stalled requests end
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}/"

    def start(self) -> LoopbackServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def paths_requested(self, method: str = "GET") -> list[str]:
        with self._lock:
            return [p for m, p, _ in self.requests if m == method]

    def _pop(self, table: dict[str, list[int]], path: str) -> int | None:
        with self._lock:
            queue = table.get(path)
            return queue.pop(0) if queue else None


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (the downloader after a dropped or refused transfer) are normal here."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_state: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        st = self.server_state
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        with st._lock:
            st.requests.append((self.command, path, rng))
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in st.stall):
            st._released.wait()  # never answer while the server runs
            self.close_connection = True
            return
        status = st._pop(st.fail, path)
        if status is not None:
            return self._empty(status)
        data = st.content.get(path)
        if data is None:
            file = st.root / path  # symlinks inside the root are followed, ".." is refused
            if ".." in Path(path).parts or not file.is_file():
                return self._empty(404)
            data = file.read_bytes()
        size, start, end = len(data), 0, len(data)
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "") if st.range_support else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:  # suffix range: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start >= end:
                return self._empty(416, {"Content-Range": f"bytes */{size}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes" if st.range_support else "none")
        drop = st._pop(st.drop_at, path) if body else None
        if drop is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if not body:
            return
        if drop is not None:
            self.wfile.write(data[start:max(start, drop)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:end])

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


class SilentServer:
    """``with SilentServer() as srv: srv.url``: accepts connections on 127.0.0.1, never answers.

    What a host whose service hangs looks like: the connection succeeds, no byte ever comes.
    ``connections`` counts the accepted connections (one per attempt of a client).
    """

    def __init__(self) -> None:
        self.connections = 0
        self._held: list[socket.socket] = []
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._sock is not None, "server not started"
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/"

    def start(self) -> SilentServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)
            self.connections += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def refused_url() -> str:
    """``http://127.0.0.1:PORT/`` with nothing listening (a port bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"
