"""Bad input: every error names the file or argument, what was expected and what was found."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import neurons_jax as nj

D = nj.datasets


def test_missing_root_and_files(tmp_path, workspace):
    with pytest.raises(FileNotFoundError, match=f"root {tmp_path / 'nope'} does not exist"):
        D.snemi3d(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no AC4 inputs found"):
        D.snemi3d(tmp_path)
    with pytest.raises(FileNotFoundError, match="no CREMI sample A found .* found nothing"):
        D.cremi3d(tmp_path)
    with pytest.raises(FileNotFoundError, match="no nnU-Net dataset folders"):
        D.mitoem2(tmp_path)
    ws = tmp_path / "ws"
    shutil.copytree(workspace["mitoem2"], ws)
    (ws / "Dataset001_ME2-Beta/labelsTr/beta_001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="no label beta_001.nii.gz for image beta_001_0000"):
        D.mitoem2(ws)
    with pytest.raises(ValueError, match="split must be one of train, valid, test; got 'val'"):
        D.snemi3d(workspace["snemi3d"], split="val")


def test_missing_hdf5_keys_list_the_keys_present(tmp_path, workspace):
    src = workspace["cremi3d"] / "sample_A_20160501.hdf"
    with h5py.File(src, "r") as f, h5py.File(tmp_path / "sample_A.h5", "w") as g:
        g["volumes/raw"] = f["volumes/raw"][:]
        g["volumes/labels/neuron_ids"] = f["volumes/labels/neuron_ids"][:]
    with pytest.raises(KeyError, match="volumes/labels/clefts.*keys present.*neuron_ids"):
        D.cremi3d(tmp_path, volumes=("A",))
    with pytest.raises(KeyError, match="include_mito=True but no mitochondria.*keys present"):
        D.cremi3d(tmp_path, volumes=("A",), include_clefts=False, include_mito=True)
    ds = D.cremi3d(tmp_path, volumes=("A",), include_clefts=False)  # the short file name works
    assert ds.image.shape == (40, 192, 192)
    with h5py.File(tmp_path / "AC4_inputs.h5", "w") as f:
        f["a"], f["b"] = np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.uint8)
    with h5py.File(tmp_path / "AC4_labels.h5", "w") as f:
        f["meta"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"several 3D datasets .*\['a', 'b'\]"):
        D.snemi3d(tmp_path)
    with h5py.File(tmp_path / "AC4_inputs.h5", "w") as f:
        f["raw"] = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(KeyError, match=r"AC4_labels.h5: no 3D dataset .*keys present: \['meta'\]"):
        D.snemi3d(tmp_path)
    (tmp_path / "AC4_labels.h5").write_text("not hdf5")
    with pytest.raises(OSError, match="AC4_labels.h5: not a readable HDF5 file"):
        D.snemi3d(tmp_path)


def test_shape_mismatch_names_both_volumes(tmp_path):
    with h5py.File(tmp_path / "AC4_inputs.h5", "w") as f:
        f["main"] = np.zeros((10, 32, 32), np.uint8)
    with h5py.File(tmp_path / "AC4_labels.h5", "w") as f:
        f["main"] = np.zeros((10, 32, 31), np.uint32)
    with pytest.raises(ValueError, match=r"label shape \(10, 32, 31\) does not match image shape \(10, 32, 32\)"
                       r".*AC4_labels.h5:main vs .*AC4_inputs.h5:main"):
        D.snemi3d(tmp_path)


def test_unsupported_dtypes_and_empty_volumes():
    img = np.zeros((4, 5, 6), np.uint8)
    with pytest.raises(TypeError, match="unsupported image dtype complex64 .*expected one of uint8"):
        D.generic(img.astype(np.complex64), label=img, voxel_size=(1, 1, 1))
    with pytest.raises(TypeError, match="unsupported label dtype float32 .*expected an integer"):
        D.generic(img, label=img.astype(np.float32), voxel_size=(1, 1, 1))
    with pytest.raises(ValueError, match=r"image volume is empty .*shape \(0, 5, 6\)"):
        D.generic(np.zeros((0, 5, 6), np.uint8), voxel_size=(1, 1, 1))
    with pytest.raises(ValueError, match="1 z sections cannot be split"):
        D.generic(img[:1], label=img[:1], voxel_size=(1, 1, 1))
    with pytest.raises(ValueError, match="voxel_size=\\(z, y, x\\) in nm is required"):
        D.generic(img, label=img)
    with pytest.raises(ValueError, match="valid_fraction must be in \\[0, 1\\); got 1.5"):
        D.generic(img, label=img, voxel_size=(1, 1, 1), valid_fraction=1.5)


def test_cremi_ids_that_break_the_offset_encoding(tmp_path, workspace):
    src = workspace["cremi3d"] / "sample_A_20160501.hdf"
    with h5py.File(src, "r") as f, h5py.File(tmp_path / "sample_A_20160501.hdf", "w") as g:
        n = f["volumes/labels/neuron_ids"][:]
        n[3, 4, 5] = 1_234_567
        g["volumes/raw"], g["volumes/labels/neuron_ids"] = f["volumes/raw"][:], n
        g["volumes/labels/clefts"] = f["volumes/labels/clefts"][:]
    ds = D.cremi3d(tmp_path, volumes=("A",))
    ds.label.read((slice(0, 2), slice(0, 8), slice(0, 8)))  # elsewhere it reads
    with pytest.raises(ValueError, match="neurons id 1234567 .*expected ids below 1,000,000"):
        ds.label.read((slice(3, 4), slice(0, 8), slice(0, 8)))


def test_prepared_root_of_another_kind(prepared):
    with pytest.raises(ValueError, match="a prepared 'cremi3d' root, not 'snemi3d'"):
        D.snemi3d(prepared["cremi3d"])
    with pytest.raises(ValueError, match="unknown dataset kind 'nope' for prepare"):
        D.prepare("nope", prepared["cremi3d"], "/tmp/never")
