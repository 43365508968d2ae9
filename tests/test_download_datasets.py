"""Each ``neurons-jax download`` command against a loopback server laid out like its source.

The sample workspace's native files are served over real HTTP on 127.0.0.1 (SNEMI3D HDF5,
CREMI HDF5 + a SHA256SUMS, MitoEM2 zips in the Dataset00N layout + a Zenodo-like record
with md5 and sizes, the MICrONS precomputed layers); each command downloads (and extracts),
then ``nj.datasets.prepare`` ingests the result, whose volumes must equal the reader's
volumes on the original workspace files. ``--link`` and ``microns --cache`` are checked too.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts

import neurons_jax as nj
from neurons_jax.cli import main
from neurons_jax.download import mitoem2 as dl_mitoem2
from neurons_jax.download.manifest import MANIFEST_NAME
from neurons_jax.download.testserver import LoopbackServer

RECORD = "mitoem2/api/records/14595790"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("MIRROR", "CHECKSUMS"):
        for ds in ("SNEMI3D", "CREMI3D", "MITOEM2", "MICRONS"):
            monkeypatch.delenv(f"NEURONS_JAX_{var}_{ds}", raising=False)


def _zip_subset(folder: Path, dest: Path, top_folder: bool) -> None:
    """Zip an nnU-Net dataset folder, with its name as top folder (Zenodo style) or without."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                rel = f.relative_to(folder.parent if top_folder else folder)
                zf.write(f, rel.as_posix())


def _record(zips: dict[str, bytes], corrupt: str | None = None) -> bytes:
    files = []
    for name, data in zips.items():
        md5 = hashlib.md5(data).hexdigest() if name != corrupt else "0" * 32
        files.append({"key": name, "size": len(data), "checksum": f"md5:{md5}"})
    return json.dumps({"id": 14595790, "files": files}).encode()


@pytest.fixture(scope="module")
def remote(workspace, tmp_path_factory):
    """One loopback server: /snemi3d/, /cremi3d/ (+SHA256SUMS), /mitoem2/files/*.zip + record,
    /microns/ (precomputed layers)."""
    root = tmp_path_factory.mktemp("remote")
    for kind in ("snemi3d", "cremi3d", "microns"):
        (root / kind).symlink_to(Path(workspace[kind]).resolve(), target_is_directory=True)
    sums = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(Path(workspace["cremi3d"]).glob("sample_*.hdf"))
    )
    (root / "sums").mkdir()
    (root / "sums" / "CREMI_SHA256SUMS").write_text(sums)
    files = root / "mitoem2" / "files"
    files.mkdir(parents=True)
    zips = {}
    for i, folder in enumerate(sorted(Path(workspace["mitoem2"]).glob("Dataset00*"))):
        _zip_subset(folder, files / f"{folder.name}.zip", top_folder=(i == 0))
        zips[f"{folder.name}.zip"] = (files / f"{folder.name}.zip").read_bytes()
    with LoopbackServer(root) as srv:
        srv.content[RECORD] = _record(zips)
        srv.zips = zips
        yield srv


def _cli(capsys, *args) -> tuple[int, str]:
    fast = [] if args[0] == "microns" else ["--backoff", "0.01"]
    rc = main(["download", *args, "--quiet", *fast])
    return rc, capsys.readouterr().err


def _same_volumes(a, b) -> None:
    assert len(a.pairs) == len(b.pairs)
    for pa, pb in zip(a.pairs, b.pairs):
        assert pa.image.voxel_size == pb.image.voxel_size
        np.testing.assert_array_equal(pa.image.read(), pb.image.read())
        np.testing.assert_array_equal(pa.label.read(), pb.label.read())


# ----------------------------------------------------------------------------- SNEMI3D
def test_snemi3d_download_then_prepare(remote, workspace, tmp_path, capsys):
    out = tmp_path / "snemi3d"
    rc, err = _cli(capsys, "snemi3d", "--output", str(out), "--mirror", remote.url + "snemi3d/")
    assert rc == 0, err
    for name in ("AC3_inputs.h5", "AC3_labels.h5", "AC4_inputs.h5", "AC4_labels.h5"):
        assert (out / name).read_bytes() == (Path(workspace["snemi3d"]) / name).read_bytes()
    prepared = nj.datasets.prepare("snemi3d", out, tmp_path / "prep", progress=False)
    for split in ("train", "test"):
        _same_volumes(nj.datasets.snemi3d(prepared, split), nj.datasets.snemi3d(workspace["snemi3d"], split))


def test_snemi3d_link_and_refusals(workspace, tmp_path, capsys):
    src = Path(workspace["snemi3d"]).resolve()
    out = tmp_path / "linked"
    rc, err = _cli(capsys, "snemi3d", "-o", str(out), "--link", str(src))
    assert rc == 0, err
    for name in ("AC3_inputs.h5", "AC3_labels.h5", "AC4_inputs.h5", "AC4_labels.h5"):
        assert (out / name).is_symlink() and (out / name).resolve() == src / name
    _same_volumes(nj.datasets.snemi3d(out, "test"), nj.datasets.snemi3d(src, "test"))

    rc, err = _cli(capsys, "snemi3d", "-o", str(tmp_path / "x"), "--link", str(tmp_path / "nowhere"))
    assert rc == 2 and "no such directory" in err and err.count("\n") == 1
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "AC4_inputs.h5").symlink_to(src / "AC4_inputs.h5")
    rc, err = _cli(capsys, "snemi3d", "-o", str(tmp_path / "y"), "--link", str(partial))
    assert rc == 2 and "missing" in err and "AC3_labels.h5" in err
    assert not (tmp_path / "y").exists()  # checked before anything is linked


# ----------------------------------------------------------------------------- CREMI
def test_cremi3d_download_then_prepare(remote, workspace, tmp_path, capsys):
    out = tmp_path / "cremi3d"
    rc, err = _cli(capsys, "cremi3d", "-o", str(out), "--samples", "A", "B", "C",
                   "--mirror", remote.url + "cremi3d/", "--checksums", remote.url + "sums/CREMI_SHA256SUMS")
    assert rc == 0, err
    manifest = json.loads((out / MANIFEST_NAME).read_text())["files"]
    for s in "ABC":
        name = f"sample_{s}_20160501.hdf"
        data = (Path(workspace["cremi3d"]) / name).read_bytes()
        assert (out / name).read_bytes() == data
        assert manifest[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest[name]["published"] == "sha256:" + manifest[name]["sha256"]
    prepared = nj.datasets.prepare("cremi3d", out, tmp_path / "prep", progress=False)
    for split in ("train", "test"):
        _same_volumes(nj.datasets.cremi3d(prepared, split), nj.datasets.cremi3d(workspace["cremi3d"], split))


# ----------------------------------------------------------------------------- MitoEM2
def test_mitoem2_download_extract_then_prepare(remote, workspace, tmp_path, capsys):
    out = tmp_path / "mitoem2"
    args = ("mitoem2", "-o", str(out), "--datasets", "Beta", "4",
            "--mirror", remote.url + "mitoem2/files/", "--checksums", remote.url + RECORD)
    rc, err = _cli(capsys, *args)
    assert rc == 0, err
    src = Path(workspace["mitoem2"])
    for name in ("Dataset001_ME2-Beta", "Dataset004_ME2-Mossy"):
        want = sorted(p.relative_to(src / name) for p in (src / name).rglob("*") if p.is_file())
        got = sorted(p.relative_to(out / name) for p in (out / name).rglob("*") if p.is_file())
        assert got == want  # both zip styles (top folder or not) give the nnU-Net layout
        for rel in want:
            assert (out / name / rel).read_bytes() == (src / name / rel).read_bytes()
    assert not list((out / dl_mitoem2.ZIP_DIR).glob("*.zip"))  # deleted after extraction
    prepared = nj.datasets.prepare("mitoem2", out, tmp_path / "prep", progress=False)
    for split in ("train", "valid", "test"):
        _same_volumes(nj.datasets.mitoem2(prepared, split=split), nj.datasets.mitoem2(src, split=split))
    n = len(remote.requests)
    rc, err = _cli(capsys, *args)
    assert rc == 0 and len(remote.requests) == n  # complete: nothing fetched again


def test_mitoem2_checksum_mismatch_leaves_nothing(remote, tmp_path, capsys):
    bad = "Dataset004_ME2-Mossy.zip"
    remote.content["bad-record"] = _record(remote.zips, corrupt=bad)
    out = tmp_path / "mitoem2"
    rc, err = _cli(capsys, "mitoem2", "-o", str(out), "--datasets", "Mossy",
                   "--mirror", remote.url + "mitoem2/files/", "--checksums", remote.url + "bad-record")
    assert rc == 2 and "checksum mismatch: md5" in err and err.count("\n") == 1
    assert not (out / "Dataset004_ME2-Mossy").exists()
    assert not (out / dl_mitoem2.ZIP_DIR / bad).exists()
    assert not list(out.rglob("*.part"))


def test_mitoem2_link_and_refusal(workspace, tmp_path, capsys):
    src = Path(workspace["mitoem2"]).resolve()
    out = tmp_path / "linked"
    rc, err = _cli(capsys, "mitoem2", "-o", str(out), "--link", str(src), "--datasets", "Beta", "Mossy")
    assert rc == 0, err
    assert (out / "Dataset001_ME2-Beta").resolve() == src / "Dataset001_ME2-Beta"
    _same_volumes(nj.datasets.mitoem2(out, split="test"), nj.datasets.mitoem2(src, split="test"))
    rc, err = _cli(capsys, "mitoem2", "-o", str(tmp_path / "x"), "--link", str(src), "--datasets", "Pyra")
    assert rc == 2 and "Dataset006_ME2-Pyra" in err and "missing" in err
    rc, err = _cli(capsys, "mitoem2", "-o", str(tmp_path / "x"), "--datasets", "Kidney")
    assert rc == 2 and "unknown MitoEM2 dataset 'Kidney'" in err


# ----------------------------------------------------------------------------- MICrONS
def _region(layer: Path, scale: int, start, size) -> np.ndarray:
    """The source region read straight from the local precomputed layer (XYZC -> ZYX)."""
    s = ts.open({"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(layer) + "/"},
                 "scale_index": scale}).result()
    x0, y0, z0 = start
    x1, y1, z1 = (a + b for a, b in zip(start, size))
    return np.asarray(s[x0:x1, y0:y1, z0:z1, 0].read().result()).transpose(2, 1, 0)


def test_microns_cache_equals_source_region(remote, workspace, tmp_path, capsys):
    origin, size = (70010, 50020, 20005), (40, 30, 12)  # x, y, z in 8x8x40 nm voxels
    out = tmp_path / "microns"
    rc, err = _cli(capsys, "microns", "-o", str(out), "--cache", "--mirror", remote.url + "microns/",
                   "--origin", *map(str, origin), "--size", *map(str, size), "--seg-version", "1300", "343")
    assert rc == 0, err
    layers = Path(workspace["microns"]).resolve()
    em_info = json.loads((layers / "em" / "info").read_text())
    em_scale = [s["resolution"] for s in em_info["scales"]].index([8, 8, 40])
    image = _region(layers / "em", em_scale, origin, size)
    assert (remote.paths_requested().count("microns/em/info")) >= 1  # it really went over HTTP
    for v, layer in ((1300, "seg_m1300"), (343, "seg_m343")):
        ds = nj.datasets.microns(out / f"v{v}", split="train", valid_fraction=0.0)
        assert ds.voxel_size == (40.0, 8.0, 8.0)
        assert ds.image.name.startswith("zarr3")  # read back from the local cache
        np.testing.assert_array_equal(ds.image.read(), image)
        np.testing.assert_array_equal(ds.label.read(), _region(layers / layer, 0, origin, size))


def test_microns_without_cache_downloads_nothing(tmp_path, capsys):
    rc = main(["download", "microns", "-o", str(tmp_path / "m"), "--seg-version", "all"])
    err = capsys.readouterr().err
    assert rc == 0 and "nothing to download" in err and "seg_m943" in err
    assert not (tmp_path / "m").exists()
    rc, err = _cli(capsys, "microns", "-o", str(tmp_path / "m"), "--seg-version", "999")
    assert rc == 2 and "--seg-version" in err


def test_microns_crop_options_are_x_y_z_and_checked(tmp_path, capsys):
    out = tmp_path / "m"
    for args, message in (
        (["--size", "0", "8", "8"], "--size: expected 3 positive integers X Y Z (segmentation voxels, "
                                    "neuroglancer's order); got 0 8 8"),
        (["--size", "a", "8", "8"], "--size: expected 3 positive integers X Y Z"),
        (["--origin", "-1", "0", "0"], "--origin: expected 3 integers >= 0 X Y Z"),
    ):
        rc, err = _cli(capsys, "microns", "-o", str(out), "--cache", *args)
        assert rc == 2 and err.count("\n") == 1 and message in err, err
    with pytest.raises(SystemExit):  # the count is argparse's: "expected 3 arguments"
        main(["download", "microns", "-o", str(out), "--size", "8", "8"])
    assert "--size: expected 3 arguments" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"^--size: expected 3 positive integers X Y Z .*; got 8 8$"):
        nj.download.download("microns", out, cache=True, size=(8, 8))
    with pytest.raises(SystemExit):
        main(["download", "microns", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--origin X Y Z" in text and "--size X Y Z" in text
    assert "neuroglancer's order (not the Z Y X of --patch/--voxel-size)" in text
