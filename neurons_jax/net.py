"""The network policy of every URL read: time-outs, bounded retries, one-line errors naming the URL.

The downloader (``neurons_jax.download.http``, urllib) and TensorStore's remote key-value
stores (``http``/``gcs``/``s3``: the MICrONS precomputed layers, any ``https://`` Volume) follow
one :class:`Policy`:

* ``timeout`` (seconds): the connect time-out, and the longest wait for the next byte once
  connected (a server that accepts and never answers). urllib: the socket time-out (plus a
  bounded host name lookup); TensorStore: libcurl's connect time-out and low-speed abort (under
  1 byte/s for ``timeout`` s), set through ``TENSORSTORE_CURL_*`` before its first request.
* ``retries``: retries of transient failures (time-outs, dropped connections, HTTP 5xx/429),
  so ``retries + 1`` attempts; TensorStore: ``http_request_retries.max_retries`` (and the gcs/s3
  equivalents) in the context of each remote spec (:func:`remote_spec`).
* ``backoff`` (seconds): the first retry delay, doubled after each retry, at most ``MAX_BACKOFF``.

Defaults (7 s, 2 retries, 1 s) make a read that cannot succeed fail within
:meth:`Policy.worst_case` = 24 s; ``NEURONS_JAX_NET_TIMEOUT``, ``NEURONS_JAX_NET_RETRIES`` and
``NEURONS_JAX_NET_BACKOFF`` change them (``neurons-jax download --timeout/--retries/--backoff``
too). TensorStore futures are also waited with a deadline (:func:`wait`), a backstop past the
policy's worst case, and their errors become :class:`NetworkError` with the URL and the cause
(connection refused, timed out, name not resolved, TLS, HTTP status).

Example:
    >>> from neurons_jax import net
    >>> p = net.Policy(timeout=8, retries=2, backoff=1)
    >>> p.attempts, p.delays(), p.worst_case()
    (3, (1.0, 2.0), 27.0)
    >>> net.Policy().worst_case()  # the defaults: 7 s, 2 retries, 1 s
    24.0
    >>> net.from_env({"NEURONS_JAX_NET_TIMEOUT": "2", "NEURONS_JAX_NET_RETRIES": "0"}).worst_case()
    2.0
    >>> net.explain("ABORTED: All 2 retry attempts failed: CURL error Could not resolve host: "
    ...             "x.invalid [curl_code='6']", "http://x.invalid/em/")
    "http://x.invalid/em/: cannot resolve host 'x.invalid' (DNS failure: name not resolved; gave up after 3 attempt(s))"
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

ENV_TIMEOUT = "NEURONS_JAX_NET_TIMEOUT"
ENV_RETRIES = "NEURONS_JAX_NET_RETRIES"
ENV_BACKOFF = "NEURONS_JAX_NET_BACKOFF"
MAX_BACKOFF = 60.0
DEADLINE_SLACK = 5.0  # a TensorStore future may run this long past the policy's worst case
FAILURE_MEMORY = 60.0  # s: a URL that just failed fails again at once (no second full wait)
MIN_RATE = 64 << 10  # bytes/s: the slowest data read the deadline of :func:`wait` tolerates
REMOTE_SCHEMES = ("http", "https", "gs", "s3")
REMOTE_DRIVERS = ("http", "gcs", "s3")
_CURL_VARS = ("TENSORSTORE_CURL_CONNECT_TIMEOUT_SECONDS", "TENSORSTORE_CURL_LOW_SPEED_TIME_SECONDS",
              "TENSORSTORE_CURL_LOW_SPEED_LIMIT_BYTES")
_CURL_MARK = "NEURONS_JAX_NET_CURL"  # "policy": the TENSORSTORE_CURL_* values came from a Policy
# the user's own TENSORSTORE_CURL_* win; those a parent process set from its policy do not
_USER_CURL = frozenset() if os.environ.get(_CURL_MARK) == "policy" else frozenset(
    v for v in _CURL_VARS if v in os.environ)


class NetworkError(OSError):
    """A URL that cannot be read: ``str(e)`` is one line naming the URL and the cause."""

    def __init__(self, message: str, url: str | None = None):
        super().__init__(message)
        self.url = url

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Policy:
    """Per-attempt time-out (s), retries of transient failures, first retry delay (s)."""

    timeout: float = 7.0
    retries: int = 2
    backoff: float = 1.0

    def __post_init__(self) -> None:
        for name, value, ok, want in (
            ("timeout", self.timeout, lambda v: v > 0, "seconds > 0"),
            ("retries", self.retries, lambda v: v >= 0 and float(v).is_integer(), "an integer >= 0"),
            ("backoff", self.backoff, lambda v: v >= 0, "seconds >= 0"),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
                raise ValueError(f"network {name}: expected {want}; got {value!r}")
        object.__setattr__(self, "retries", int(self.retries))

    @property
    def attempts(self) -> int:
        return self.retries + 1

    @property
    def curl_seconds(self) -> int:
        """The time-out as libcurl takes it (whole seconds, at least 1)."""
        return max(1, math.ceil(self.timeout))

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 = the first retry)."""
        return min(MAX_BACKOFF, self.backoff * 2.0**retry)

    def delays(self) -> tuple[float, ...]:
        return tuple(self.delay(i) for i in range(self.retries))

    def worst_case(self) -> float:
        """Seconds after which a request that gets no answer at all has failed."""
        return self.attempts * float(self.curl_seconds) + sum(self.delays())

    def deadline(self, nbytes: int = 0) -> float:
        """The backstop wait (s) of a TensorStore future reading about ``nbytes``."""
        return self.worst_case() + DEADLINE_SLACK + nbytes / MIN_RATE

    def describe(self) -> str:
        return f"time-out {self.timeout:g} s, {self.retries} retr{'y' if self.retries == 1 else 'ies'}"


def from_env(env: Mapping[str, str] | None = None, base: Policy | None = None) -> Policy:
    """The policy of ``NEURONS_JAX_NET_TIMEOUT`` / ``_RETRIES`` / ``_BACKOFF`` over ``base``."""
    env = os.environ if env is None else env
    base = base or Policy()
    values: dict[str, Any] = {}
    for var, field, parse, want in (
        (ENV_TIMEOUT, "timeout", float, "seconds > 0"),
        (ENV_RETRIES, "retries", int, "an integer >= 0"),
        (ENV_BACKOFF, "backoff", float, "seconds >= 0"),
    ):
        text = env.get(var)
        if text is None or not text.strip():
            continue
        try:
            values[field] = parse(text.strip())
            replace(base, **{field: values[field]})
        except ValueError:
            raise ValueError(f"{var}: expected {want}; got {text!r}") from None
    return replace(base, **values)


_policy: Policy | None = None
_lock = threading.Lock()


def policy() -> Policy:
    """The process's policy: the one :func:`set_policy` gave, else the environment's."""
    return _policy if _policy is not None else from_env()


def set_policy(p: Policy | None) -> None:
    """Use ``p`` for the rest of the process (None: the environment's again).

    TensorStore reads its libcurl time-outs once, at its first HTTP request: set the policy
    before any remote read.
    """
    global _policy
    _policy = p
    _curl_env(policy(), force=True)


_curl_set = False


def _curl_env(p: Policy, force: bool = False) -> None:
    """Export the policy as ``TENSORSTORE_CURL_*`` (once, or again with ``force``)."""
    global _curl_set
    values = dict(zip(_CURL_VARS, (str(p.curl_seconds), str(p.curl_seconds), "1")))
    with _lock:
        if _curl_set and not force:
            return
        for var, value in values.items():
            if var not in _USER_CURL:
                os.environ[var] = value  # putenv: TensorStore's getenv sees it
        os.environ[_CURL_MARK] = "policy"
        _curl_set = True


# ----------------------------------------------------------------------------- TensorStore
def _retries_json(p: Policy) -> dict[str, Any]:
    return {"max_retries": p.retries, "initial_delay": f"{max(p.backoff, 0.001):g}s",
            "max_delay": f"{max(p.delays(), default=max(p.backoff, 0.001)):g}s"}


def tensorstore_context(p: Policy | None = None) -> dict[str, Any]:
    """Context resources bounding TensorStore's retries of http, gcs and s3 requests.

    Also makes sure libcurl's time-outs are set (``TENSORSTORE_CURL_*``, unless the user set
    them) before TensorStore's first HTTP request.
    """
    p = p or policy()
    _curl_env(p)
    r = _retries_json(p)
    return {"http_request_retries": r, "gcs_request_retries": dict(r), "s3_request_retries": dict(r)}


def is_remote(kvstore: Any) -> bool:
    """Whether a kvstore (URL string or spec dict) is read over the network."""
    if isinstance(kvstore, str):
        return urllib.parse.urlsplit(kvstore).scheme in REMOTE_SCHEMES
    if isinstance(kvstore, Mapping):
        return kvstore.get("driver") in REMOTE_DRIVERS or (
            isinstance(kvstore.get("base"), (str, Mapping)) and is_remote(kvstore["base"]))
    return False


def kvstore_url(kvstore: Any) -> str:
    """A URL for messages: the string itself, or ``base_url``/``bucket`` + ``path`` of a dict."""
    if isinstance(kvstore, str):
        return kvstore
    if isinstance(kvstore, Mapping):
        if kvstore.get("url"):
            return str(kvstore["url"])
        if kvstore.get("base_url"):
            return str(kvstore["base_url"]).rstrip("/") + "/" + str(kvstore.get("path", "")).lstrip("/")
        if kvstore.get("bucket"):
            scheme = {"gcs": "gs", "s3": "s3"}.get(kvstore.get("driver"), kvstore.get("driver"))
            return f"{scheme}://{kvstore['bucket']}/{kvstore.get('path', '')}"
        if "base" in kvstore:
            return kvstore_url(kvstore["base"])
        return str(kvstore.get("path", kvstore))
    return str(kvstore)


def spec_kvstore(spec: Mapping[str, Any]) -> Any:
    """The kvstore of a TensorStore spec, looking through adapters (``downsample``'s ``base``)."""
    while "kvstore" not in spec and isinstance(spec.get("base"), Mapping):
        spec = spec["base"]
    return spec.get("kvstore")


def remote_spec(spec: dict[str, Any], p: Policy | None = None) -> dict[str, Any]:
    """``spec`` with the policy's context when it reads over the network; else ``spec`` itself.

    Resources the spec already names in its ``context`` are kept.
    """
    if not is_remote(spec_kvstore(spec)):
        return spec
    ctx = tensorstore_context(p)
    return {**spec, "context": {**ctx, **dict(spec.get("context") or {})}}


def wait(future: Any, url: str, what: str = "read", *, nbytes: int = 0, p: Policy | None = None) -> Any:
    """``future.result()`` within the policy's deadline; network failures become NetworkError.

    Other errors (a missing key, a bad spec) are raised as TensorStore raised them. A URL that
    failed within the last ``FAILURE_MEMORY`` s fails again at once with the same message, so
    a command that opens one layer for several splits waits for it once.
    """
    p = p or policy()
    limit = p.deadline(nbytes)
    known = _recent_failure(url)
    if known is not None:
        future.cancel()
        raise NetworkError(str(known), url)
    try:
        return future.result(timeout=limit)
    except TimeoutError:
        future.cancel()
        err = NetworkError(
            f"{url}: timed out: no answer to the {what} within {limit:.0f} s "
            f"({p.describe()}; {ENV_TIMEOUT} sets the limit)", url)
    except Exception as e:  # noqa: BLE001 - TensorStore raises ValueError for every status
        msg = explain(e, url, p)
        if msg is None:
            raise
        err = NetworkError(msg, url)
    except BaseException:  # Ctrl-C: nothing keeps running behind the caller's back
        future.cancel()
        raise
    _failures[url] = (time.monotonic(), err)
    raise err


_failures: dict[str, tuple[float, NetworkError]] = {}


def _recent_failure(url: str) -> NetworkError | None:
    hit = _failures.get(url)
    if hit is None or time.monotonic() - hit[0] > FAILURE_MEMORY:
        _failures.pop(url, None)
        return None
    return hit[1]


def forget_failures() -> None:
    """Let every URL be tried again (e.g. after the network came back)."""
    _failures.clear()


_CURL = re.compile(r"curl_code='?(\d+)")
_HTTP = re.compile(r"HTTP (?:response )?code:? ?\[?(\d{3})|\[HTTP code (\d{3})\]")
_RETRIED = re.compile(r"All (\d+) retry attempts failed")
_NOTES = re.compile(r"\s*\[(?:tensorstore_spec|source locations|curl_code|HTTP code)[^\]]*\]"
                    r"|All \d+ retry attempts failed: ")


def explain(error: BaseException | str, url: str, p: Policy | None = None) -> str | None:
    """One line naming ``url`` and the cause of a TensorStore network error; None if not one."""
    text = str(error)
    parts = urllib.parse.urlsplit(url)
    host, where = parts.hostname or url, parts.netloc or url
    m = _RETRIED.search(text)
    tries = f"gave up after {int(m.group(1)) + 1} attempt(s)" if m else ""

    def why(*notes: str) -> str:
        notes = tuple(n for n in notes if n)
        return f" ({'; '.join(notes)})" if notes else ""

    code = _CURL.search(text)
    if code is not None:
        c = int(code.group(1))
        if c == 6:
            return f"{url}: cannot resolve host {host!r}{why('DNS failure: name not resolved', tries)}"
        if c == 7:
            return f"{url}: cannot connect to {where}{why('connection refused, or the host is unreachable', tries)}"
        if c == 28:
            p = p or policy()
            return (f"{url}: timed out: no answer from {where} within {p.curl_seconds} s"
                    f"{why(tries, f'{ENV_TIMEOUT} sets the limit')}")
        if c in (35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 83, 90, 91):
            return f"{url}: TLS error talking to {where}: {_clean(text)}"
        if c in (16, 18, 52, 55, 56, 92):
            return f"{url}: connection to {where} lost{why(tries)}: {_clean(text)}"
        return f"{url}: network error{why(tries)}: {_clean(text)}"
    http = _HTTP.search(text)
    if http is not None:
        status = http.group(1) or http.group(2)
        return f"{url}: HTTP {status} from {where}{why(tries)}: {_clean(text)}"
    return None


def _clean(text: str) -> str:
    """TensorStore's message without the spec/code annotations, on one line."""
    text = _NOTES.sub("", text.splitlines()[0] if text else text)
    return re.sub(r"^[A-Z_]+: ", "", text).strip()


# ----------------------------------------------------------------------------- urllib
def resolve(url: str, timeout: float) -> None:
    """Look the host of ``url`` up within ``timeout`` s (a lookup cannot be given a time-out).

    Raises ``socket.gaierror`` when the name does not resolve, also (``EAI_AGAIN``) when the
    lookup does not return in time. Skipped when a proxy will resolve the name instead.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host or _proxied(parts.scheme, host):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # a bad port: urllib's own error is clearer
    outcome: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(e)

    t = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    t.start()
    t.join(timeout)
    if not outcome:
        raise socket.gaierror(socket.EAI_AGAIN, f"no answer from the resolver within {timeout:g} s")
    if isinstance(outcome[0], OSError):
        raise outcome[0]


def _proxied(scheme: str, host: str) -> bool:
    proxies = urllib.request.getproxies()
    return scheme in proxies and not urllib.request.proxy_bypass(host)
