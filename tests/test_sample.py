"""The sample workspace: native layouts, label semantics, EM-like rendering, determinism, size."""

from __future__ import annotations

import json

import cc3d
import h5py
import nibabel as nib
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax import sample
from neurons_jax.rules import U64_MAX


def test_layout_and_size(workspace):
    names = {k: sorted(p.relative_to(r).as_posix() for p in r.rglob("*") if p.is_file() and "/" not in
                       p.relative_to(r).as_posix()) for k, r in workspace.items()}
    assert names["snemi3d"] == ["AC3_inputs.h5", "AC3_labels.h5", "AC4_inputs.h5", "AC4_labels.h5"]
    assert names["cremi3d"] == [f"sample_{s}_20160501.hdf" for s in "ABC"]
    for layer in ("em", "seg_m1300", "seg_m343"):
        assert (workspace["microns"] / layer / "info").is_file()
    beta = workspace["mitoem2"] / "Dataset001_ME2-Beta"
    assert sorted(p.name for p in (beta / "imagesTs").iterdir()) == ["beta_002_0000.nii.gz"]
    assert sorted(p.name for p in (beta / "labelsTr").iterdir()) == ["beta_000.nii.gz", "beta_001.nii.gz"]
    marker = json.loads((workspace["snemi3d"].parent / sample.MARKER).read_text())
    assert marker["seed"] == 0 and 1e6 < sum(marker["bytes"].values()) < 15e6
    assert nj.sample.write_workspace(workspace["snemi3d"].parent, seed=0) == workspace  # already there
    with pytest.raises(FileExistsError, match="not a sample workspace of seed 1"):
        nj.sample.write_workspace(workspace["snemi3d"].parent, seed=1)


def test_cremi_file_contents(workspace):
    with h5py.File(workspace["cremi3d"] / "sample_A_20160501.hdf", "r") as f:
        assert tuple(f["volumes/raw"].attrs["resolution"]) == (40, 4, 4)
        assert f["volumes/raw"].dtype == np.uint8
        neurons = f["volumes/labels/neuron_ids"][:]
        clefts = f["volumes/labels/clefts"][:]
        mito = f["volumes/labels/mitochondria"][:]
        raw = f["volumes/raw"][:]
    assert neurons.dtype == clefts.dtype == mito.dtype == np.uint64
    assert 0 < neurons.min() and neurons.max() < 1_000_000
    assert (clefts == U64_MAX).mean() > 0.5 and (clefts == 0).any()  # both "no cleft" markers
    syn = (clefts != U64_MAX) & (clefts > 0)
    assert syn.any() and (sample.boundaries(neurons)[syn]).all()  # clefts lie on membranes
    assert len(np.unique(mito)) > 10
    # one mitochondrion never straddles two neurons
    has = mito > 0
    pairs = np.unique(np.stack([mito[has], neurons[has]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1]
    # EM-like: membranes and clefts dark, cytoplasm bright, mitochondria in between
    membrane = sample.boundaries(neurons) & ~syn
    cyto = ~sample.boundaries(neurons) & ~has
    assert raw[syn].mean() < raw[membrane].mean() < raw[has].mean() < raw[cyto].mean()


def test_mitoem2_boundary_class_separates_touching_mitochondria(workspace):
    for lab_path in sorted(workspace["mitoem2"].glob("*/labels*/*.nii.gz")):
        nii = nib.load(lab_path)
        lab = np.asarray(nii.dataobj).T
        assert set(np.unique(lab)) == {0, 1, 2}, lab_path
        n_all = cc3d.connected_components(lab > 0, connectivity=6, return_N=True)[1]
        n_sep = cc3d.connected_components(lab == 1, connectivity=6, return_N=True)[1]
        assert n_sep > n_all, lab_path  # touching pairs exist and class 2 splits them
        # the boundary is a thin layer on mitochondrion interiors
        interior = lab == 1
        near = np.zeros_like(interior)
        for ax in range(3):
            near |= np.roll(interior, 1, ax) | np.roll(interior, -1, ax)
        assert near[lab == 2].mean() > 0.9 and (lab == 2).sum() < 0.1 * (lab > 0).sum()
    hdr = nib.load(workspace["mitoem2"] / "Dataset004_ME2-Mossy/imagesTr/mossy_000_0000.nii.gz").header
    assert tuple(float(z) for z in hdr.get_zooms()) == (8.0, 8.0, 30.0)
    js = json.loads((workspace["mitoem2"] / "Dataset004_ME2-Mossy/dataset.json").read_text())
    assert js["spacing"] == [8.0, 8.0, 30.0] and js["labels"]["boundary"] == 2


def test_microns_layers(workspace):
    em = json.loads((workspace["microns"] / "em/info").read_text())
    seg = json.loads((workspace["microns"] / "seg_m1300/info").read_text())
    assert [s["resolution"] for s in em["scales"]] == [[4, 4, 40], [8, 8, 40]]
    assert [s["resolution"] for s in seg["scales"]] == [[8, 8, 40]]
    assert seg["scales"][0]["voxel_offset"] == list(sample.MICRONS_OFFSET)
    assert seg["data_type"] == "uint64" and seg["type"] == "segmentation"
    assert em["scales"][0]["voxel_offset"][0] == 2 * em["scales"][1]["voxel_offset"][0]


def test_deterministic_per_seed(workspace, tmp_path):
    sample._snemi3d(tmp_path, np.random.default_rng([0, sample.KINDS.index("snemi3d")]))
    for name in ("AC4_inputs.h5", "AC3_labels.h5"):
        np.testing.assert_array_equal(_load(workspace["snemi3d"] / name), _load(tmp_path / name))
    a, b, c = (sample.tubes((5, 30, 30), np.random.default_rng(s), 8) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _load(path):
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return f["main"][:]
    return np.asarray(nib.load(path).dataobj)


def test_generators_are_vectorised_partitions():
    rng = np.random.default_rng(3)
    cells = sample.tubes((6, 40, 50), rng, cell_px=12)
    assert cells.min() >= 1 and cells.dtype == np.uint32
    # tubes: each id's voxels in a section are one 2D component (a Voronoi cell is convex)
    for z in range(6):
        _, n = cc3d.connected_components(cells[z][None], connectivity=26, return_N=True)
        assert n == len(np.unique(cells[z]))
    blobs = sample.blobs((10, 40, 40), (16, 16, 16), rng, n=8, radius_nm=120, pair_fraction=0.5)
    t = sample.touching(blobs)
    assert t.any() and (blobs[t] > 0).all()
