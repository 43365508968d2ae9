"""Ingest: the FIB-25 volume through generic + prepare, metadata, idempotence, atomicity,
and the prepare / info commands."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax import cli

D = nj.datasets
BOXES = [
    (slice(0, 1), slice(0, 1), slice(0, 1)),
    (slice(17, 50), slice(3, 130), slice(201, 250)),  # odd, at the x border
    (slice(199, 200), slice(0, 250), slice(7, 8)),  # last train section
    (slice(0, 33), slice(249, 250), slice(0, 250)),
]


@pytest.fixture(scope="module")
def fib25(load_shared):
    d = load_shared("fib25_sample2.npz")
    return d["image"], d["groundtruth"]


def test_fib25_generic_and_prepared(fib25, tmp_path):
    image, gt = fib25
    native = D.generic(image, label=gt, voxel_size=(10, 10, 10))
    out = D.prepare("generic", image, tmp_path / "fib25", label=gt, voxel_size=(10, 10, 10), progress=False)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["kind"] == "generic" and meta["voxel_size"] == [10.0, 10.0, 10.0]
    assert meta["splits"] == {"train": [{"volume": "volume", "z": [0, 200]}],
                              "valid": [{"volume": "volume", "z": [200, 250]}]}
    stored = nj.Volume.open(out / "volumes/volume/label.zarr")
    assert stored.voxel_size == (10.0, 10.0, 10.0) and stored.dtype == np.uint32
    for box in BOXES:
        np.testing.assert_array_equal(stored.read(box), gt[box])
    for split, z in (("train", slice(0, 200)), ("valid", slice(200, 250))):
        for ds in (D.generic(out, split=split), D.generic(image, split, label=gt, voxel_size=(10, 10, 10))):
            assert ds.voxel_size == (10.0, 10.0, 10.0) and ds.kind == "generic"
            for box in BOXES:
                if box[0].stop <= ds.image.shape[0]:
                    np.testing.assert_array_equal(ds.image.read(box), image[z][box])
                    np.testing.assert_array_equal(ds.label.read(box), gt[z][box])
    assert native.label.read(BOXES[1]).dtype == np.uint32


def test_prepared_metadata_and_round_trips(workspace, prepared):
    meta = json.loads((prepared["cremi3d"] / "metadata.json").read_text())
    assert meta["reader"] == meta["kind"] == "cremi3d"
    assert meta["label_rule"]["ranges"][1] == [1_000_000, 1_999_999, 2]
    assert {v["name"]: v["role"] for v in meta["volumes"]} == {"A": "trainval", "B": "trainval", "C": "test"}
    assert meta["splits"]["valid"] == [{"volume": "A", "z": [40, 50]}, {"volume": "B", "z": [40, 50]}]
    assert any(s.endswith("sample_C_20160501.hdf") for s in meta["source_files"])
    a = nj.Volume.open(prepared["cremi3d"] / "volumes/A/label.zarr")
    assert a.dtype == np.uint64 and a.voxel_size == (40.0, 4.0, 4.0)
    spec = a.source.spec
    chunks = json.loads((prepared["cremi3d"] / "volumes/A/label.zarr/zarr.json").read_text())
    assert chunks["chunk_grid"]["configuration"]["chunk_shape"] == [32, 128, 128]
    assert any(c["name"] == "zstd" for c in chunks["codecs"]) and spec["driver"] == "zarr3"
    native = D.cremi3d(workspace["cremi3d"], "train").pairs[0].label
    for box in [(slice(0, 50), slice(0, 192), slice(0, 192)), (slice(31, 50), slice(127, 129), slice(190, 192))]:
        np.testing.assert_array_equal(a.read(box), native.source.read(box))


def test_prepare_is_idempotent_and_atomic(workspace, tmp_path):
    out = tmp_path / "snemi"
    D.prepare("snemi3d", workspace["snemi3d"], out, progress=False)
    stamp = (out / "metadata.json").stat().st_mtime_ns
    umask = os.umask(0o022)
    os.umask(umask)  # the temporaries' private modes do not survive the rename
    for path, mode in ((out, 0o777), (out / "metadata.json", 0o666), (out / "volumes/AC4/label.zarr", 0o777)):
        assert path.stat().st_mode & 0o777 == mode & ~umask, path
    assert D.prepare("snemi3d", workspace["snemi3d"], out, progress=False) == out
    assert (out / "metadata.json").stat().st_mtime_ns == stamp  # nothing rewritten
    with pytest.raises(FileExistsError, match="overwrite=True"):
        D.prepare("generic", np.zeros((4, 4, 4), np.uint8), out, voxel_size=(1, 1, 1), progress=False)
    D.prepare("generic", np.zeros((4, 4, 4), np.uint8), out, voxel_size=(1, 1, 1), overwrite=True, progress=False)
    assert D.generic(out).image.shape == (3, 4, 4)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a prepared root"):
        D.prepare("snemi3d", workspace["snemi3d"], tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "snemi"]  # no temporaries left


def test_non_finite_image_leaves_nothing(tmp_path):
    img = np.ones((40, 8, 8), np.float32)
    img[37, 2, 5] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .* z, y, x = \(37, 2, 5\)"):
        D.prepare("generic", img, tmp_path / "out", voxel_size=(1, 1, 1), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_prepare_without_test_files_notes_it(workspace, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("AC4_inputs.h5", "AC4_labels.h5"):
        (src / name).symlink_to(workspace["snemi3d"] / name)
    out = D.prepare("snemi3d", src, tmp_path / "out", progress=False)
    assert "no test volumes" in capsys.readouterr().err
    assert D.snemi3d(out, "valid").image.shape == (10, 192, 192)
    with pytest.raises(ValueError, match="no volumes for split 'test'"):
        D.snemi3d(out, "test")
    with pytest.raises(FileNotFoundError, match="AC3 inputs.*AC3_inputs.h5"):
        D.snemi3d(src, "test")


def test_cli_prepare_and_info(workspace, prepared, tmp_path, capsys):
    assert cli.main(["prepare", "mitoem2", str(workspace["mitoem2"]), str(tmp_path / "m"),
                     "--subsets", "Beta", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert cli.main(["info", str(tmp_path / "m")]) == 0
    text = capsys.readouterr().out
    assert "Beta/beta_001" in text and "Mossy" not in text
    assert "background, mitochondria, mito_boundary" in text and "16x16x16 nm" in text
    assert cli.main(["info", str(workspace["cremi3d"]), "--kind", "cremi3d", "--splits", "test"]) == 0
    text = capsys.readouterr().out
    assert "C " in text and "neuron, cleft" in text and "train" not in text
    assert cli.main(["info", str(workspace["cremi3d"])]) == 2
    assert "pass the dataset kind" in capsys.readouterr().err
    assert cli.main(["prepare", "snemi3d", str(tmp_path / "none"), str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["info", str(prepared["microns"])]) == 0
    assert "crop_test" in capsys.readouterr().out


def test_missing_chunks_in_inputs_and_prepared_roots_are_errors(tmp_path, capsys):
    """A deleted chunk once read as zeros (39 % zero labels in training): prepare refuses such an
    input unless allow_missing=True, and a prepared root missing a chunk fails when read."""
    from neurons_jax.volumes import MissingChunkError

    img = (np.arange(16 * 16 * 16) % 251).astype(np.uint8).reshape(16, 16, 16) + 1
    src = tmp_path / "img.zarr"
    nj.volumes.write_zarr3(src, img, (4, 4, 4), chunks=(8, 8, 8))
    (src / "c" / "1" / "0" / "1").unlink()
    with pytest.raises(MissingChunkError, match=r"img.zarr/: chunk \{1, 0, 1\} stored at local file .* is missing"):
        D.prepare("generic", str(src), tmp_path / "root", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr"]
    out = D.prepare("generic", str(src), tmp_path / "root", allow_missing=True, progress=False)
    assert D.generic(out).image.read()[8:, :8, 8:].sum() == 0  # a sparse store: zeros, as asked

    lab = D.prepare("generic", img, tmp_path / "lab", label=img, voxel_size=(4, 4, 4), progress=False)
    (lab / "volumes" / "volume" / "label.zarr" / "c" / "0" / "0" / "0").unlink()  # its one chunk
    ds = D.generic(lab)
    with pytest.raises(MissingChunkError, match=r"label.zarr/: chunk \{0, 0, 0\}"):
        ds.label.read()


def test_a_root_written_before_chunks_were_complete_is_written_again(tmp_path, capsys):
    img = np.ones((8, 8, 8), np.uint8)
    out = D.prepare("generic", img, tmp_path / "root", voxel_size=(1, 1, 1), progress=False)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["all_chunks_stored"] is True
    del meta["all_chunks_stored"]
    (out / "metadata.json").write_text(json.dumps(meta))
    assert D.prepare("generic", img, out, voxel_size=(1, 1, 1), progress=False) == out
    assert "prepared by an older version that did not store empty chunks" in capsys.readouterr().err
    assert json.loads((out / "metadata.json").read_text())["all_chunks_stored"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_prepare_reads_boxes_bounded_in_y_and_x(tmp_path, monkeypatch):
    """Slabs used to be whole sections (4.7 GB for a 3000^2 crop): every box prepare reads and
    writes now holds at most volumes.COPY_BYTES (or one chunk), in z, y and x."""
    from neurons_jax import volumes

    monkeypatch.setattr(volumes, "COPY_BYTES", 64 << 10)
    img = (np.arange(8 * 300 * 300) % 200).astype(np.uint8).reshape(8, 300, 300)
    seen = []
    real = volumes.ArraySource.read
    monkeypatch.setattr(volumes.ArraySource, "read", lambda self, sl: seen.append(sl) or real(self, sl))
    out = D.prepare("generic", img, tmp_path / "big", label=img.astype(np.uint32), voxel_size=(1, 1, 1),
                    progress=False)
    sizes = [tuple(s.stop - s.start for s in sl) for sl in seen]
    assert max(y for _, y, _ in sizes) <= 128 and max(x for _, _, x in sizes) <= 256
    assert max(int(np.prod(s)) * 4 for s in sizes) <= 8 * 128 * 128 * 4  # one uint32 chunk at most
    np.testing.assert_array_equal(D.generic(out).label.read(), img[:6].astype(np.uint32))
