"""The resumable downloader against a real HTTP server on loopback (no internet needed).

Checks byte-identical resume after a dropped connection, retries on 5xx, restart when the
server ignores Range, fail-fast on 404 / connection refused / DNS failure, checksum mismatch
leaving no final file, the manifest, skipping complete files, and the one-line CLI errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest

from neurons_jax.cli import main
from neurons_jax.download import sources
from neurons_jax.download.http import DownloadError, Expected, fetch, part_path
from neurons_jax.download.manifest import MANIFEST_NAME, Manifest
from neurons_jax.download.testserver import LoopbackServer

SIZE = 3 * (1 << 20) + 12345  # not a multiple of the 1 MiB read size


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("MIRROR", "CHECKSUMS"):
        for ds in ("SNEMI3D", "CREMI3D", "MITOEM2", "MICRONS"):
            monkeypatch.delenv(f"NEURONS_JAX_{var}_{ds}", raising=False)


@pytest.fixture
def served(tmp_path):
    """A server over a directory holding the three CREMI file names filled with random bytes."""
    root = tmp_path / "remote"
    root.mkdir()
    rng = np.random.default_rng(7)
    blobs = {}
    for s in "ABC":
        name = f"sample_{s}_20160501.hdf"
        blobs[name] = rng.integers(0, 256, SIZE + ord(s), dtype=np.uint8).tobytes()
        (root / name).write_bytes(blobs[name])
    sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in blobs.items())
    (root / "SHA256SUMS").write_text(sums)
    with LoopbackServer(root) as srv:
        srv.blobs = blobs
        yield srv


def _cli(capsys, *args) -> tuple[int, str]:
    rc = main(["download", *args])
    err = capsys.readouterr().err
    return rc, err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- fetch()
def test_resume_after_drop_is_byte_identical(served, tmp_path):
    name = "sample_A_20160501.hdf"
    dest = tmp_path / "out" / name
    served.drop_at[name] = [SIZE // 2]
    with pytest.raises(DownloadError, match="connection closed after .* rerun to resume"):
        fetch(served.url + name, dest, retries=0, progress=False)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == SIZE // 2
    fetch(served.url + name, dest, retries=0, progress=False)
    assert dest.read_bytes() == served.blobs[name]
    assert not part_path(dest).exists()
    gets = [r for r in served.requests if r[1] == name]
    assert gets[-1][2] == f"bytes={SIZE // 2}-"  # the second run asked only for the rest
    entry = Manifest(dest.parent).get(name)
    assert entry["sha256"] == hashlib.sha256(served.blobs[name]).hexdigest()
    assert entry["size"] == len(served.blobs[name])


def test_drops_and_5xx_are_retried_within_one_run(served, tmp_path):
    name = "sample_B_20160501.hdf"
    served.drop_at[name] = [SIZE // 3, 2 * SIZE // 3]
    served.fail[name] = [503]
    dest = fetch(served.url + name, tmp_path / name, retries=3, backoff=0.01, progress=False)
    assert dest.read_bytes() == served.blobs[name]
    ranges = [r[2] for r in served.requests if r[1] == name]
    assert ranges == [None, None, f"bytes={SIZE // 3}-", f"bytes={2 * SIZE // 3}-"]


def test_server_without_range_support_restarts_cleanly(served, tmp_path):
    name = "sample_C_20160501.hdf"
    served.drop_at[name] = [SIZE // 2]
    served.range_support = False
    sha = hashlib.sha256(served.blobs[name]).hexdigest()
    dest = fetch(served.url + name, tmp_path / name, expected=Expected(sha256=sha),
                 retries=2, backoff=0.01, progress=False)
    assert dest.read_bytes() == served.blobs[name]


def test_complete_file_is_skipped_and_a_contradicting_one_refused(served, tmp_path):
    name = "sample_A_20160501.hdf"
    dest = fetch(served.url + name, tmp_path / name, progress=False)
    n = len(served.requests)
    assert fetch(served.url + name, dest, progress=False) == dest
    assert len(served.requests) == n  # no network for a complete file
    with pytest.raises(DownloadError, match="exists with .* remove it"):
        fetch(served.url + name, dest, expected=Expected(size=5), progress=False)
    assert dest.read_bytes() == served.blobs[name]  # never deleted


def test_checksum_mismatch_leaves_no_file(served, tmp_path):
    name = "sample_A_20160501.hdf"
    dest = tmp_path / name
    with pytest.raises(DownloadError, match="checksum mismatch: md5 expected 0+, got [0-9a-f]{32}"):
        fetch(served.url + name, dest, expected=Expected(md5="0" * 32), progress=False)
    assert not dest.exists() and not part_path(dest).exists()


def test_size_announced_differently_fails_fast(served, tmp_path):
    name = "sample_A_20160501.hdf"
    with pytest.raises(DownloadError, match="announces .* bytes, the source lists 10"):
        fetch(served.url + name, tmp_path / name, expected=Expected(size=10), progress=False)
    assert len(served.requests) == 1


@pytest.mark.parametrize(
    "url, message",
    [
        ("{srv}missing.hdf", "HTTP 404"),
        ("http://127.0.0.1:{port}/x.hdf", "connection refused"),
        ("http://no-such-host.invalid/x.hdf", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_permanent_errors_fail_fast_without_retry(served, tmp_path, url, message, monkeypatch):
    from neurons_jax.download import http

    sleeps = []
    monkeypatch.setattr(http.time, "sleep", sleeps.append)
    url = url.format(srv=served.url, port=_free_port())
    with pytest.raises(DownloadError, match=message):
        fetch(url, tmp_path / "x.hdf", retries=5, backoff=5.0, progress=False)
    assert sleeps == []  # no back-off: failed on the first attempt
    assert not (tmp_path / "x.hdf").exists()


def test_disk_full_is_refused_before_fetching(served, tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    name = "sample_A_20160501.hdf"
    with pytest.raises(DownloadError, match="disk full: .* free in"):
        fetch(served.url + name, tmp_path / name, progress=False)
    assert not (tmp_path / name).exists()


def test_tls_certificate_is_checked_unless_insecure(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found (needed to make a self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    (tmp_path / "f.bin").write_bytes(b"x" * 5000)
    with LoopbackServer(tmp_path, tls=(str(cert), str(key))) as srv:
        with pytest.raises(DownloadError, match="TLS error: .*--insecure"):
            fetch(srv.url + "f.bin", tmp_path / "out" / "f.bin", progress=False)
        assert not (tmp_path / "out" / "f.bin").exists()
        got = fetch(srv.url + "f.bin", tmp_path / "out" / "f.bin", progress=False, verify_tls=False)
    assert got.read_bytes() == b"x" * 5000


# ----------------------------------------------------------------------------- the CLI
def test_cli_resume_with_mirror_and_published_checksums(served, tmp_path, capsys):
    out = tmp_path / "cremi"
    name = "sample_B_20160501.hdf"
    served.drop_at[name] = [SIZE // 2]
    args = ["cremi3d", "--output", str(out), "--samples", "A", "B", "--mirror", served.url,
            "--checksums", served.url + "SHA256SUMS", "--retries", "0", "--quiet"]
    rc, err = _cli(capsys, *args)
    assert rc == 2
    assert err.count("\n") == 1 and "connection closed after" in err
    assert (out / "sample_A_20160501.hdf").read_bytes() == served.blobs["sample_A_20160501.hdf"]
    assert not (out / name).exists() and part_path(out / name).exists()
    rc, err = _cli(capsys, *args)
    assert rc == 0, err
    assert (out / name).read_bytes() == served.blobs[name]
    manifest = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert sorted(manifest) == ["sample_A_20160501.hdf", name]
    assert manifest[name]["published"].startswith("sha256:")


def test_cli_checksum_mismatch_and_env_mirror(served, tmp_path, capsys, monkeypatch):
    (served.root / "BAD").write_text("0" * 64 + "  sample_C_20160501.hdf\n")
    monkeypatch.setenv(sources.env_name("cremi3d"), served.url)
    out = tmp_path / "cremi"
    rc, err = _cli(capsys, "cremi3d", "-o", str(out), "--samples", "c",
                   "--checksums", served.url + "BAD", "-q")
    assert rc == 2 and "checksum mismatch: sha256 expected 000" in err
    assert err.count("\n") == 1
    assert not (out / "sample_C_20160501.hdf").exists()
    assert not part_path(out / "sample_C_20160501.hdf").exists()


def test_cli_table_checksum_applies_to_mirrors(served, tmp_path, capsys):
    # the table's sha256 of the real CREMI sample A cannot match random bytes
    rc, err = _cli(capsys, "cremi3d", "-o", str(tmp_path), "--samples", "A",
                   "--mirror", served.url, "-q")
    assert rc == 2 and "checksum mismatch" in err
    assert not (tmp_path / "sample_A_20160501.hdf").exists()


@pytest.mark.parametrize("kind", ["404", "refused", "dns"])
def test_cli_one_line_reason(served, tmp_path, capsys, kind):
    mirror = {
        "404": served.url + "nowhere/",
        "refused": f"http://127.0.0.1:{_free_port()}/",
        "dns": "http://mirror.invalid/",
    }[kind]
    rc, err = _cli(capsys, "cremi3d", "-o", str(tmp_path), "--samples", "A", "--padded",
                   "--mirror", mirror, "--backoff", "5", "-q")
    assert rc == 2
    assert err.count("\n") == 1
    assert {"404": "HTTP 404", "refused": "connection refused", "dns": "DNS failure"}[kind] in err
    assert "sample_A_padded_20160501.hdf" in err


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    rc, err = _cli(capsys, "cremi3d", "-o", str(tmp_path), "--samples", "D", "-q")
    assert rc == 2 and "--samples" in err and "'D'" in err
    rc, err = _cli(capsys, "cremi3d", "-o", str(tmp_path), "--mirror", "ftp://x/", "-q")
    assert rc == 2 and "http:// or https://" in err
    with pytest.raises(SystemExit):
        main(["download", "nosuchdata", "-o", str(tmp_path)])
    assert not os.listdir(tmp_path)
