"""Every URL read gives up in bounded time with one line naming the URL and the cause.

Loopback only: a refused port (bound, then released), a server that accepts and never answers
(``SilentServer``), a file server whose chunk requests stall (``LoopbackServer.stall``), and a
name that cannot resolve (``.invalid``). Each command runs in a fresh process (TensorStore reads
its libcurl time-outs once per process) under a fast policy, 1 s time-out and 1 retry; it must
exit non-zero within the policy's worst case plus start-up, the first line of stderr naming the
URL and the cause. One slow test checks the default policy stays under 30 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorstore as ts

from neurons_jax import net
from neurons_jax.download.http import DownloadError, fetch, fetch_text
from neurons_jax.download.testserver import LoopbackServer, SilentServer, refused_url

FAST = {"NEURONS_JAX_NET_TIMEOUT": "1", "NEURONS_JAX_NET_RETRIES": "1", "NEURONS_JAX_NET_BACKOFF": "0.1"}
FAST_POLICY = net.from_env(FAST)
STARTUP = 10.0  # interpreter start, imports and a loaded machine
BIN = Path(sys.executable).parent
CAUSES = {  # what the first line must say, per failure (downloader and TensorStore wordings)
    "refused": ("connection refused",),
    "silent": ("timed out",),
    "dns": ("cannot resolve host", "dns failure"),
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    net.forget_failures()


@pytest.fixture(scope="module")
def silent():
    with SilentServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def stalled(workspace):
    """The sample MICrONS layers over HTTP: ``info`` files answer, chunk requests never do."""
    with LoopbackServer(Path(workspace["microns"])) as srv:
        srv.stall = ["*/*/*"]  # em/<scale>/<chunk>; em/info is served
        yield srv


def _url(kind: str, silent: SilentServer) -> str:
    return {"refused": refused_url(), "silent": silent.url, "dns": "http://no-such-host.invalid/"}[kind]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TENSORSTORE_CURL_", "NEURONS_JAX_NET_"))}
    env.update(FAST, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost", **extra)
    return env


def _run(argv: list[str], env: dict[str, str] | None = None, limit: float | None = None):
    """(exit status, seconds, first stderr line) of a command in a fresh process."""
    limit = limit or FAST_POLICY.worst_case() + STARTUP
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env or _env(), capture_output=True, text=True, timeout=limit + 60)
    took = time.monotonic() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "\r" not in ln]
    return proc.returncode, took, (lines[0] if lines else ""), proc.stderr


def _check(argv, url, kind, *, rc=2, names=None, env=None, limit=None) -> str:
    limit = limit or FAST_POLICY.worst_case() + STARTUP
    code, took, first, err = _run(argv, env, limit)
    assert code == rc, err
    assert took < limit, f"{argv[:3]} took {took:.1f} s (bound {limit:.1f} s)"
    assert (names or url) in first, first
    assert any(c in first.lower() for c in CAUSES[kind]), first
    return first


_PY_API = """
import sys, neurons_jax as nj
try:
    {call}
except Exception as e:
    print(f"{{type(e).__name__}}: {{e}}", file=sys.stderr)
    sys.exit(3)
"""


def _api(call: str, url: str) -> list[str]:
    return [sys.executable, "-c", _PY_API.format(call=call.replace("URL", repr(url)))]


# ----------------------------------------------------------------------------- each command
@pytest.mark.parametrize("kind", ["refused", "silent", "dns"])
def test_downloader_command(kind, silent, tmp_path):
    url = _url(kind, silent)
    first = _check([str(BIN / "neurons-jax"), "download", "cremi3d", "-o", str(tmp_path), "--samples", "A",
                    "--mirror", url, "-q"], url, kind, names=url + "sample_A_20160501.hdf")
    assert first.startswith("neurons-jax download: error: ")
    assert not list(tmp_path.glob("*.hdf"))


@pytest.mark.parametrize("kind", ["refused", "silent", "dns"])
def test_info_of_a_microns_url(kind, silent):
    url = _url(kind, silent)
    first = _check([str(BIN / "neurons-jax"), "info", url, "--kind", "microns"], url, kind, names=url + "em/info")
    assert first.startswith("neurons-jax info: error: ")


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_prepare_and_download_cache_of_a_microns_url(kind, silent, tmp_path):
    url = _url(kind, silent)
    _check([str(BIN / "neurons-jax"), "prepare", "microns", url, str(tmp_path / "p")], url, kind,
           names=url + "em/info")
    _check([str(BIN / "neurons-jax"), "download", "microns", "-o", str(tmp_path / "m"), "--cache",
            "--mirror", url, "--size", "8", "8", "8", "-q"], url, kind, names=url + "em/info")
    assert not (tmp_path / "p").exists() and not (tmp_path / "m" / "v1300").exists()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_microns_dataset_open(kind, silent):
    url = _url(kind, silent)
    first = _check(_api('nj.datasets.microns(URL, "train")', url), url, kind, rc=3, names=url + "em/info")
    assert first.startswith("NetworkError: ")


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_relabel_and_volume_open_of_an_http_url(kind, silent, tmp_path):
    url = _url(kind, silent) + "seg/"
    code, took, first, err = _run([str(BIN / "neurons-relabel"), "renumber", url, str(tmp_path / "out.zarr3"),
                                   "--device", "cpu", "--no-progress"])
    bound = FAST_POLICY.worst_case() + STARTUP
    assert code == 2 and took < bound, (code, took, err)
    assert first.startswith("neurons-relabel: error: ") and url in first, first
    # TensorStore's own words for the cause (volumes.py words the message): curl's
    assert ("connect" if kind == "refused" else "timeout") in first.lower(), first
    assert not (tmp_path / "out.zarr3").exists()
    code, took, first, err = _run(_api("nj.Volume.open(URL)", url))
    assert code == 3 and took < bound and url in first, (code, took, err)


def test_reads_that_stall_after_the_info(stalled):
    """Opening works (the info answers); the chunk reads time out, for the MICrONS reader and a
    plain Volume alike."""
    url = stalled.url
    first = _check(_api('nj.datasets.microns(URL, "valid").label.read()', url), url, "silent", rc=3,
                   names=url + "seg_m1300/")
    assert first.startswith("NetworkError: ")
    code, took, first, err = _run(_api("nj.Volume.open(URL).read((slice(0, 4),) * 3)", url + "seg_m1300/"))
    assert code == 3 and took < FAST_POLICY.worst_case() + STARTUP, (code, took, err)
    assert url + "seg_m1300/" in first and "timeout" in first.lower(), first


@pytest.mark.slow
def test_default_policy_fails_within_30_s(silent, tmp_path):
    env = {k: v for k, v in _env().items() if k not in FAST}
    assert net.Policy().worst_case() <= 25
    _check([str(BIN / "neurons-jax"), "download", "microns", "-o", str(tmp_path), "--cache",
            "--mirror", silent.url, "-q"], silent.url, "silent", env=env, limit=30.0)


# ----------------------------------------------------------------------------- in process
def test_downloader_timeouts_retry_then_name_the_url(silent, tmp_path):
    before = silent.connections
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"x\.bin: timed out: no answer from 127\.0\.0\.1:\d+ within "
                                            r"0\.5 s \(gave up after 2 attempt\(s\); --timeout"):
        fetch(silent.url + "x.bin", tmp_path / "x.bin", timeout=0.5, retries=1, backoff=0.05, progress=False)
    assert time.monotonic() - t0 < 2 * 0.5 + 0.05 + 2
    time.sleep(0.1)
    assert silent.connections - before == 2  # one connection per attempt
    with pytest.raises(DownloadError, match="timed out"):
        fetch_text(silent.url + "SUMS", timeout=0.3, retries=0)


def test_downloader_bounds_a_hanging_name_lookup(monkeypatch, tmp_path):
    def stuck(*args, **kwargs):
        time.sleep(3)
        raise socket.gaierror(socket.EAI_NONAME, "too late")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"cannot resolve host 'slow\.example' \(DNS failure: no answer "
                                            r"from the resolver within"):
        fetch("http://slow.example/x.bin", tmp_path / "x.bin", timeout=0.3, retries=3, progress=False)
    assert time.monotonic() - t0 < 1.5  # not retried: a resolver that does not answer stays so


def test_downloader_follows_the_environment_policy(monkeypatch, silent, tmp_path):
    monkeypatch.setattr(net, "_policy", None)
    monkeypatch.setenv("NEURONS_JAX_NET_TIMEOUT", "0.4")
    monkeypatch.setenv("NEURONS_JAX_NET_RETRIES", "0")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"within 0\.4 s \(gave up after 1 attempt"):
        fetch(silent.url + "y.bin", tmp_path / "y.bin", progress=False)
    assert time.monotonic() - t0 < 2


def test_wait_has_a_deadline_and_remembers_a_failed_url(monkeypatch):
    monkeypatch.setattr(net, "DEADLINE_SLACK", 0.3)
    p = net.Policy(timeout=1, retries=0, backoff=0)
    promise, future = ts.Promise.new()
    t0 = time.monotonic()
    with pytest.raises(net.NetworkError, match=r"^http://h\.test/a/: timed out: no answer to the open within 1 s"):
        net.wait(future, "http://h.test/a/", "open", p=p)
    assert 1.2 < time.monotonic() - t0 < 3
    _, again = ts.Promise.new()
    t0 = time.monotonic()
    with pytest.raises(net.NetworkError, match="timed out"):
        net.wait(again, "http://h.test/a/", "open", p=p)
    assert time.monotonic() - t0 < 0.2 and again.cancelled()
    net.forget_failures()
    done, ok = ts.Promise.new()
    done.set_result(7)
    assert net.wait(ok, "http://h.test/a/", p=p) == 7


def test_policy_environment_and_validation():
    assert net.Policy().worst_case() <= 25 and net.Policy().attempts == 3
    assert net.from_env({"NEURONS_JAX_NET_TIMEOUT": "2.5", "NEURONS_JAX_NET_RETRIES": "4"}) == net.Policy(2.5, 4, 1.0)
    for var, bad in (("NEURONS_JAX_NET_TIMEOUT", "0"), ("NEURONS_JAX_NET_TIMEOUT", "soon"),
                     ("NEURONS_JAX_NET_RETRIES", "-1"), ("NEURONS_JAX_NET_RETRIES", "1.5"),
                     ("NEURONS_JAX_NET_BACKOFF", "-2")):
        with pytest.raises(ValueError, match=f"^{var}: expected .*; got '{bad}'"):
            net.from_env({var: bad})
    p = net.Policy(timeout=3, retries=2, backoff=0.5)
    ctx = net.tensorstore_context(p)
    assert ctx["http_request_retries"] == {"max_retries": 2, "initial_delay": "0.5s", "max_delay": "1s"}
    ts.Context(ctx)  # TensorStore accepts the resources
    assert os.environ["TENSORSTORE_CURL_LOW_SPEED_LIMIT_BYTES"] == "1"


def test_remote_specs_carry_the_policy(tmp_path):
    from neurons_jax.volumes import spec_from_string

    for url in ("https://h.test/seg", "precomputed://http://h.test/seg/", "gs://bucket/a.zarr"):
        spec = spec_from_string(url)
        assert spec["context"]["http_request_retries"]["max_retries"] == net.policy().retries, url
        assert spec["context"]["gcs_request_retries"]["max_retries"] == net.policy().retries, url
        ts.Spec(spec)  # a valid TensorStore spec
    assert "context" not in spec_from_string("memory://x/")
    local = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path) + "/"}}
    assert net.remote_spec(local) is local
    mine = net.remote_spec({"driver": "zarr3", "kvstore": "https://h/x/",
                            "context": {"http_request_retries": {"max_retries": 9}}})
    assert mine["context"]["http_request_retries"] == {"max_retries": 9}  # the spec's own wins
    down = {"driver": "downsample", "base": {"driver": "neuroglancer_precomputed", "kvstore": "https://h/em/"}}
    assert "context" in net.remote_spec(down)


@pytest.mark.parametrize("text, cause", [
    ("ABORTED: All 2 retry attempts failed: CURL error Could not connect to server: Failed to connect "
     "to 127.0.0.1 port 9 after 0 ms [tensorstore_spec='{}'] [curl_code='7']",
     "cannot connect to 127.0.0.1:9 (connection refused, or the host is unreachable; gave up after 3 attempt(s))"),
    ("DEADLINE_EXCEEDED: CURL error Timeout was reached: Operation too slow [curl_code='28']",
     "timed out: no answer from 127.0.0.1:9 within 2 s (NEURONS_JAX_NET_TIMEOUT sets the limit)"),
    ("ABORTED: All 1 retry attempts failed: CURL error Could not resolve host: h [curl_code='6']",
     "cannot resolve host '127.0.0.1' (DNS failure: name not resolved; gave up after 2 attempt(s))"),
    ("ABORTED: All 2 retry attempts failed: Service Unavailable [HTTP code 503]",
     "HTTP 503 from 127.0.0.1:9 (gave up after 3 attempt(s)): Service Unavailable"),
], ids=["refused", "timeout", "dns", "http-503"])
def test_tensorstore_errors_are_explained(text, cause):
    url = "http://127.0.0.1:9/em/"
    assert net.explain(ValueError(text), url, net.Policy(timeout=2)) == f"{url}: {cause}"
    assert net.explain(ValueError("NOT_FOUND: chunk missing"), url) is None


def test_download_network_flags_are_checked(tmp_path, capsys):
    from neurons_jax.cli import main

    for flag, value in (("--timeout", "0"), ("--retries", "-1"), ("--backoff", "-1"), ("--timeout", "inf")):
        rc = main(["download", "microns", "-o", str(tmp_path), "--cache", flag, value, "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and err.startswith(f"neurons-jax download: error: {flag}: expected")
    assert not any(tmp_path.iterdir())
