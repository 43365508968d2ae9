"""The SNEMI3D, CREMI and MitoEM2 readers on the sample workspace (native files) and on its
prepared roots, checked against independent reads with h5py / nibabel / tifffile."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest
import tifffile

import neurons_jax as nj
from neurons_jax.rules import U64_MAX

D = nj.datasets
BOXES = [(slice(0, 1), slice(0, 1), slice(0, 1)), (slice(3, 10), slice(17, 60), slice(101, 160)),
         (slice(5, 10), slice(150, 160), slice(0, 3))]


def _h5(path, key):
    with h5py.File(path, "r") as f:
        return f[key][:]


def _cremi_labels(path, mito=False):
    """The offset encoding of docs/datasets.md computed directly from the file."""
    with h5py.File(path, "r") as f:
        n = f["volumes/labels/neuron_ids"][:].astype(np.uint64)
        c = f["volumes/labels/clefts"][:]
        m = f["volumes/labels/mitochondria"][:]
    out = n.copy()
    if mito:
        out[m > 0] = m[m > 0] + 2_000_000
    c = np.where(c == U64_MAX, 0, c)
    out[c > 0] = c[c > 0] + 1_000_000
    return out


def _check_split_geometry(kind, root, **kw):
    """Train and valid cut the same whole volume at one z, disjoint, together all of it."""
    tr, va = D.open_dataset(kind, root, "train", **kw), D.open_dataset(kind, root, "valid", **kw)
    z_tr, z_va = tr.info["z_ranges"], va.info["z_ranges"]
    for name in set(z_tr) & set(z_va):
        (a0, a1), (b0, b1) = z_tr[name], z_va[name]
        assert a0 == 0 and a1 == b0 and b1 > b0, (name, z_tr[name], z_va[name])
        p_tr = next(p for p in tr.pairs if p.name == name)
        p_va = next(p for p in va.pairs if p.name == name)
        assert p_tr.image.origin[0] + p_tr.image.shape[0] == p_va.image.origin[0]
        assert p_va.image.shape[0] == max(1, round((b1 - a0) * 0.2))
    return tr, va


@pytest.mark.parametrize("which", ["native", "prepared"])
def test_snemi3d(workspace, prepared, which):
    root = workspace["snemi3d"] if which == "native" else prepared["snemi3d"]
    tr, va = _check_split_geometry("snemi3d", root)
    te = D.snemi3d(root, split="test")
    img4 = _h5(workspace["snemi3d"] / "AC4_inputs.h5", "main")
    lab4 = _h5(workspace["snemi3d"] / "AC4_labels.h5", "main")
    lab3 = _h5(workspace["snemi3d"] / "AC3_labels.h5", "main")
    assert tr.kind == "snemi3d" and tr.voxel_size == (30.0, 6.0, 6.0)
    assert [p.name for p in tr.pairs] == ["AC4"] and [p.name for p in te.pairs] == ["AC3"]
    assert tr.image.shape == (40, 192, 192) and va.image.shape == (10, 192, 192)
    np.testing.assert_array_equal(va.label.read(), lab4[40:])
    np.testing.assert_array_equal(np.concatenate([tr.image.read(), va.image.read()]), img4)
    for box in BOXES:
        np.testing.assert_array_equal(te.label.read(box), lab3[box])
    assert te.label.dtype == np.uint32


@pytest.mark.parametrize("which", ["native", "prepared"])
def test_cremi3d_offset_encoding(workspace, prepared, which):
    root = workspace["cremi3d"] if which == "native" else prepared["cremi3d"]
    tr, va = _check_split_geometry("cremi3d", root)
    te = D.cremi3d(root, "test")
    assert [p.name for p in tr.pairs] == ["A", "B"] and [p.name for p in te.pairs] == ["C"]
    assert tr.voxel_size == (40.0, 4.0, 4.0) and tr.label.dtype == np.uint64
    for pair in va.pairs:
        expected = _cremi_labels(workspace["cremi3d"] / f"sample_{pair.name}_20160501.hdf")
        np.testing.assert_array_equal(pair.label.read(), expected[40:])
    lab = te.label.read()
    expected = _cremi_labels(workspace["cremi3d"] / "sample_C_20160501.hdf")
    np.testing.assert_array_equal(lab, expected)
    assert lab.max() < 2_000_000 and (lab >= 1_000_000).any()  # clefts, no mito, no no-data marker
    classes, _ = D.classes_present(te.label, "cremi3d")
    assert classes == ("neuron", "cleft")


def test_cremi3d_with_mitochondria_and_one_volume(workspace, tmp_path):
    root = workspace["cremi3d"]
    ds = D.cremi3d(root, "valid", volumes=("B",), include_mito=True)
    assert [p.name for p in ds.pairs] == ["B"]
    expected = _cremi_labels(root / "sample_B_20160501.hdf", mito=True)
    np.testing.assert_array_equal(ds.label.read(), expected[40:])
    assert D.classes_present(ds.label, "cremi3d")[0] == ("neuron", "cleft", "mitochondria")
    no_clefts = D.cremi3d(root, "test", include_clefts=False).label.read()
    np.testing.assert_array_equal(no_clefts, _h5(root / "sample_C_20160501.hdf", "volumes/labels/neuron_ids"))
    out = D.prepare("cremi3d", root, tmp_path / "p", volumes=["B"], include_mito=True, progress=False)
    p = D.cremi3d(out, "valid")  # the prepared options are the ones recorded
    assert p.info["include_mito"] and [q.name for q in p.pairs] == ["B"]
    np.testing.assert_array_equal(p.label.read(), expected[40:])
    with pytest.raises(ValueError, match="include_clefts=True"):
        D.cremi3d(out, "valid", include_clefts=False)
    with pytest.raises(ValueError, match=r"without sample\(s\) \['A'\] \(it holds \['B'\]\)"):
        D.cremi3d(out, "train", volumes=("A",))


def test_cremi3d_padded_file_is_cut_to_the_labelled_block(workspace, tmp_path):
    src = workspace["cremi3d"] / "sample_A_20160501.hdf"
    raw, neurons = _h5(src, "volumes/raw"), _h5(src, "volumes/labels/neuron_ids")
    pad = (3, 10, 7)  # z, y, x voxels of extra raw before the labelled block (CREMI pads more)
    big = np.random.default_rng(0).integers(0, 255, np.add(raw.shape, np.multiply(pad, 2)), np.uint8)
    big[pad[0]:pad[0] + 50, pad[1]:pad[1] + 192, pad[2]:pad[2] + 192] = raw

    def padded(name, offset_nm):
        (tmp_path / name).mkdir()
        with h5py.File(tmp_path / name / "sample_A_padded_20160501.hdf", "w") as f:
            f["volumes/raw"] = big
            f["volumes/raw"].attrs["resolution"] = (40.0, 4.0, 4.0)
            f["volumes/labels/neuron_ids"] = neurons
            if offset_nm is not None:
                f["volumes/labels/neuron_ids"].attrs["offset"] = np.asarray(offset_nm, float)
        return tmp_path / name

    ds = D.cremi3d(padded("ok", np.multiply(pad, (40, 4, 4))), "valid", volumes=("A",), include_clefts=False)
    np.testing.assert_array_equal(ds.image.read(), raw[40:])
    np.testing.assert_array_equal(ds.label.read(), neurons[40:])
    with pytest.raises(ValueError, match=r"shape \(50, 192, 192\)\) at voxel offset \(0, 30, 0\) does not fit"):
        D.cremi3d(padded("off", (0, 4 * 30, 0)), volumes=("A",), include_clefts=False)
    with pytest.raises(ValueError, match="no 'offset' attribute"):
        D.cremi3d(padded("none", None), volumes=("A",), include_clefts=False)


@pytest.mark.parametrize("which", ["native", "prepared"])
def test_mitoem2_file_splits(workspace, prepared, which):
    root = workspace["mitoem2"] if which == "native" else prepared["mitoem2"]
    tr, va, te = (D.mitoem2(root, split=s) for s in ("train", "valid", "test"))
    # Beta has two training files: split by file; Mossy has one: split by z
    assert [p.name for p in tr.pairs] == ["Beta/beta_000", "Mossy/mossy_000"]
    assert [p.name for p in va.pairs] == ["Beta/beta_001", "Mossy/mossy_000"]
    assert [p.name for p in te.pairs] == ["Beta/beta_002", "Mossy/mossy_001"]
    assert va.info["z_ranges"]["Mossy/mossy_000"] == (38, 48) and tr.info["z_ranges"]["Mossy/mossy_000"] == (0, 38)
    assert tr.pairs[0].image.voxel_size == (16.0, 16.0, 16.0)
    assert tr.pairs[1].image.voxel_size == (30.0, 8.0, 8.0)
    base = workspace["mitoem2"]
    img = np.asarray(nib.load(base / "Dataset004_ME2-Mossy/imagesTr/mossy_000_0000.nii.gz").dataobj).T
    lab = np.asarray(nib.load(base / "Dataset001_ME2-Beta/labelsTr/beta_001.nii.gz").dataobj).T
    np.testing.assert_array_equal(va.pairs[1].image.read(), img[38:])
    for box in BOXES:
        np.testing.assert_array_equal(va.pairs[0].label.read(box), lab[box])
    assert D.classes_present(va.pairs[0].label, "mitoem2")[0] == ("background", "mitochondria", "mito_boundary")
    only = D.mitoem2(root, subsets=["mossy"], split="test")
    assert [p.name for p in only.pairs] == ["Mossy/mossy_001"]
    assert [p.name for p in D.mitoem2(root, subsets=[1], split="test").pairs] == ["Beta/beta_002"]
    with pytest.raises(ValueError, match="unknown subset 'Stem'.*available"):
        D.mitoem2(root, subsets=["Stem"])


def test_mitoem2_spacing_from_dataset_json(tmp_path):
    base = tmp_path / "Dataset008_ME2-Stem"
    for sub in ("imagesTr", "labelsTr"):
        (base / sub).mkdir(parents=True)
    img = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)  # z, y, x
    nib.save(nib.Nifti1Image(img.T, np.eye(4)), base / "imagesTr/s_000_0000.nii.gz")
    nib.save(nib.Nifti1Image((img.T % 3).astype(np.uint8), np.eye(4)), base / "labelsTr/s_000.nii.gz")
    with pytest.raises(ValueError, match="no voxel size"):
        D.mitoem2(tmp_path)
    (base / "dataset.json").write_text('{"spacing": [8, 8, 30]}')
    ds = D.mitoem2(tmp_path, valid_fraction=0.25)
    assert ds.voxel_size == (30.0, 8.0, 8.0) and ds.pairs[0].name == "Stem/s_000"
    np.testing.assert_array_equal(ds.image.read(), img[:3])  # NIfTI x, y, z -> ZYX
    # SimpleITK (nnU-Net) stamps "mm" on nm numbers: read them as nm, not as 8 mm voxels
    for name, arr in (("imagesTr/s_000_0000.nii.gz", img), ("labelsTr/s_000.nii.gz", img % 3)):
        nii = nib.Nifti1Image(arr.T, np.diag([8.0, 8.0, 30.0, 1.0]))
        nii.header.set_xyzt_units("mm")
        nib.save(nii, base / name)
    assert D.mitoem2(tmp_path, valid_fraction=0.25).voxel_size == (30.0, 8.0, 8.0)
    nii.header.set_xyzt_units("micron")  # a stated unit that fits EM is converted
    nib.save(nib.Nifti1Image(img.T, np.diag([0.016, 0.016, 0.016, 1.0]), nii.header), base / "imagesTr/s_000_0000.nii.gz")
    assert D.mitoem2(tmp_path, valid_fraction=0.25).voxel_size == (16.0, 16.0, 16.0)


def test_snemi3d_tiff_stacks(workspace, tmp_path):
    for name in ("AC4_inputs", "AC4_labels"):
        tifffile.imwrite(tmp_path / f"{name}.tif", _h5(workspace["snemi3d"] / f"{name}.h5", "main"))
    ds = D.snemi3d(tmp_path, "valid")
    lab = _h5(workspace["snemi3d"] / "AC4_labels.h5", "main")
    np.testing.assert_array_equal(ds.label.read(), lab[40:])
    for box in BOXES:
        np.testing.assert_array_equal(ds.label.read(box), lab[40:][box])


def test_snemi3d_finds_the_hdf5_key(workspace, tmp_path):
    img = _h5(workspace["snemi3d"] / "AC4_inputs.h5", "main")
    lab = _h5(workspace["snemi3d"] / "AC4_labels.h5", "main")
    with h5py.File(tmp_path / "AC4_inputs.h5", "w") as f:
        f.create_dataset("volumes/stack", data=img)
        f.create_dataset("meta/resolution", data=np.array([30, 6, 6]))  # not 3D: ignored
    with h5py.File(tmp_path / "AC4_labels.h5", "w") as f:
        f.create_dataset("labels", data=lab)
        f.create_dataset("something_else", data=lab)  # two 3D datasets: the known name wins
    ds = D.snemi3d(tmp_path, "train")
    assert ds.image.name.endswith(":volumes/stack") and ds.label.name.endswith(":labels")
    np.testing.assert_array_equal(ds.image.read(), img[:40])


def test_generic_on_arrays_and_files(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (11, 20, 30), dtype=np.uint8)
    lab = rng.integers(0, 3, (11, 20, 30), dtype=np.uint8)
    ds = D.generic(img, "valid", label=lab, voxel_size=(30, 8, 8), rule="mitoem2")
    assert ds.kind == "mitoem2" and ds.rule.instances == "boundary_separated"
    assert ds.info["z_ranges"] == {"volume": (9, 11)}
    np.testing.assert_array_equal(ds.label.read(), lab[9:])
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["image"], f["label"] = img, lab
    nj.volumes.write_zarr3(tmp_path / "lab.zarr", lab, (30, 8, 8))
    ds = D.generic(f"{tmp_path}/v.h5:image", "train", label=tmp_path / "lab.zarr", voxel_size=(30, 8, 8))
    np.testing.assert_array_equal(ds.image.read(), img[:9])
    np.testing.assert_array_equal(ds.label.read(), lab[:9])
    te = D.generic(img, "test", label=lab, voxel_size=(30, 8, 8), test=(img[:4], lab[:4]))
    np.testing.assert_array_equal(te.label.read(), lab[:4])
    with pytest.raises(ValueError, match="test=\\(image, label\\)"):
        D.generic(img, "test", label=lab, voxel_size=(30, 8, 8))
    with pytest.raises(ValueError, match="unknown dataset kind 'nope'"):
        D.generic(img, label=lab, voxel_size=(30, 8, 8), rule="nope")
