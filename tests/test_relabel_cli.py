"""``neurons-relabel``: every input format x every mode equals the library call on the same
array; the input is byte-identical afterwards; outputs in every format round-trip; each bad
input exits non-zero with a one-line reason; ``--device gpu`` says clearly when there is no GPU.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import tensorstore as ts
import tifffile

import neurons_jax as nj
from neurons_jax.cli import relabel_main

ROOT = Path(__file__).resolve().parents[1]
VS = (40.0, 16.0, 16.0)
IN_FORMATS = ("h5", "npz", "npy", "tif", "nii.gz", "zarr3", "zarr", "n5", "precomputed")
MODE_ARGS = {  # mode -> (dataset, extra CLI args, library call)
    "components": ("pinky", ["--connectivity", "26"],
                   lambda a: nj.ops.connected_components(a, connectivity=26)[0]),
    "instances": ("semantic", [], lambda a: nj.ops.boundary_separated_instances(a, 1, 2, 6)[0]),
    "union": ("cremi", ["--kind", "cremi3d", "--ignore-class", "cleft"],
              lambda a: nj.ops.union_semantic(a, "cremi3d", ignore_classes=("cleft",))),
    "renumber": ("cremi", [], lambda a: nj.ops.renumber(a)[0]),
}


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def arrays(load_shared) -> dict[str, np.ndarray]:
    """A real pinky40 crop, 3-class semantic labels made from it, and CREMI-style offset ids."""
    pinky = np.ascontiguousarray(load_shared("pinky40_seg_256.npz")["labels"][:64, :, :16])
    # 3 classes: objects (every third id) -> 1, their voxels touching another id -> 2 (boundary)
    keep = np.isin(pinky, np.unique(pinky)[1::3])
    touch = np.zeros_like(keep)
    for ax in range(3):
        d = np.diff(pinky, axis=ax) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        touch[tuple(lo)] |= d
        touch[tuple(hi)] |= d
    semantic = np.where(keep, np.where(touch, 2, 1), 0).astype(np.uint8)
    # CREMI encoding: neurons < 1e6, clefts 1e6 + id, mitochondria 2e6 + id (from compact ids)
    cremi = np.unique(pinky, return_inverse=True)[1].reshape(pinky.shape).astype(np.uint64)
    cremi[cremi % 5 == 1] += 1_000_000
    cremi[cremi % 5 == 2] += 2_000_000
    return {"pinky": pinky, "semantic": semantic, "cremi": cremi}


def _ts_write(spec: dict, arr: np.ndarray) -> None:
    """A complete store (every chunk, zeros too): missing chunks are errors unless --allow-missing."""
    ts.open({**spec, "store_data_equal_to_fill_value": True}, create=True).result().write(arr).result()


def write_input(fmt: str, arr: np.ndarray, folder: Path) -> str:
    """Write ``arr`` (ZYX) with each format's own library, independent of neurons_jax.labelio."""
    p = folder / f"in.{fmt}"
    kv = {"driver": "file", "path": str(p) + "/"}
    if fmt == "h5":
        with h5py.File(p, "w") as f:
            f.create_dataset("volumes/labels", data=arr).attrs["resolution"] = VS
        return f"{p}:volumes/labels"
    if fmt == "npz":
        np.savez(p, seg=arr)
        return f"{p}:seg"
    if fmt == "npy":
        np.save(p, arr)
    elif fmt == "tif":
        tifffile.imwrite(p, arr)
    elif fmt == "nii.gz":  # NIfTI keeps XYZ on disk
        img = nib.Nifti1Image(arr.T, np.diag([0.016, 0.016, 0.04, 1.0]), dtype=arr.dtype)
        img.header.set_xyzt_units("micron")
        nib.save(img, p)
    elif fmt == "zarr3":
        nj.volumes.write_zarr3(p, arr, VS)
    elif fmt == "zarr":
        _ts_write({"driver": "zarr", "kvstore": kv, "dtype": arr.dtype.name,
                   "schema": {"domain": {"shape": list(arr.shape)}}}, arr)
    elif fmt == "n5":
        _ts_write({"driver": "n5", "kvstore": kv, "dtype": arr.dtype.name, "schema": {
            "domain": {"shape": list(arr.shape)}, "dimension_units": [[v, "nm"] for v in VS]}}, arr)
    elif fmt == "precomputed":
        spec = {"driver": "neuroglancer_precomputed", "kvstore": kv,
                "multiscale_metadata": {"type": "segmentation", "data_type": arr.dtype.name, "num_channels": 1},
                "scale_metadata": {"size": list(arr.shape[::-1]), "resolution": list(VS[::-1]),
                                   "encoding": "raw", "chunk_size": [16, 64, 32]}}
        _ts_write(spec, arr.T[..., None])
        return f"precomputed://{p}"
    return str(p)


@pytest.fixture(scope="module")
def inputs(arrays, tmp_path_factory):
    """(format, dataset) -> input location, written once per module."""
    cache: dict[tuple[str, str], str] = {}

    def get(fmt: str, name: str) -> str:
        if (fmt, name) not in cache:
            cache[fmt, name] = write_input(fmt, arrays[name], tmp_path_factory.mktemp(f"{name}_{fmt.replace('.', '_')}"))
        return cache[fmt, name]

    return get


def digest(location: str) -> str:
    """SHA-256 over every file of an input (the file itself, or a folder's files by name)."""
    p = Path(location.removeprefix("precomputed://").split(":", 1)[0] if location.startswith("precomputed://")
             else location.split(":", 1)[0])
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        h.update(str(q.relative_to(p.parent)).encode())
        h.update(q.read_bytes())
    return h.hexdigest()


def relabel(*argv: str) -> int:
    return relabel_main([*map(str, argv), "--device", "cpu", "--no-progress"])


# ----------------------------------------------------------------------------- every format x mode
@pytest.mark.parametrize("mode", list(MODE_ARGS))
@pytest.mark.parametrize("fmt", IN_FORMATS)
def test_each_input_format_and_mode_matches_library(fmt, mode, arrays, inputs, tmp_path, capsys):
    name, extra, call = MODE_ARGS[mode]
    src = inputs(fmt, name)
    before = digest(src)
    out = tmp_path / "out.zarr3"
    assert relabel(mode, src, out, *extra) == 0
    got = nj.Volume.open(out)
    expected = np.asarray(call(arrays[name]))
    result = got.read()
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)
    assert digest(src) == before, "the input changed"
    if fmt not in ("npy", "npz", "tif", "zarr"):  # formats that carry a voxel size
        assert got.voxel_size == VS
    printed = capsys.readouterr().out
    n_in = len(np.unique(arrays[name])) - 1
    assert f"ids in: {n_in}  ids out: {len(np.unique(expected)) - 1}" in printed
    assert sorted(os.listdir(tmp_path)) == ["out.zarr3"]  # no temporary left behind


# ----------------------------------------------------------------------------- outputs
def _read_back(out: str, path: Path) -> np.ndarray:
    if out.endswith(":cc"):
        with h5py.File(path, "r") as f:
            return f["cc"][...]
    if path.suffix == ".tif":
        return tifffile.imread(path)
    if path.name.endswith(".nii.gz"):
        return np.asarray(nib.load(path).dataobj).T
    if path.suffix == ".npy":
        return np.load(path)
    return nj.Volume.open(out, voxel_size=(1, 1, 1)).read()


@pytest.mark.parametrize("suffix", ["h5:cc", "tif", "nii.gz", "npy", "zarr3", "zarr", "n5", "precomputed", ""])
def test_each_output_format_round_trips(suffix, arrays, inputs, tmp_path):
    path = tmp_path / (f"out.{suffix.split(':')[0]}" if suffix else "out")
    out = f"precomputed://{path}" if suffix == "precomputed" else f"{path}:cc" if suffix == "h5:cc" else str(path)
    assert relabel("components", inputs("npy", "pinky"), out) == 0
    expected = nj.ops.connected_components(arrays["pinky"], connectivity=6)[0]
    np.testing.assert_array_equal(_read_back(out, path), expected)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_nifti_output_keeps_affine_and_header(arrays, tmp_path):
    affine = np.array([[0, 0, 0.016, 5.0], [0, -0.016, 0, 7.0], [0.04, 0, 0, -3.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(arrays["pinky"].T, affine, dtype=np.uint32)
    img.header.set_xyzt_units("micron")
    img.header["descrip"] = b"pinky crop"
    src, out = tmp_path / "in.nii", tmp_path / "out.nii.gz"
    nib.save(img, src)
    assert relabel("union", src, out, "--kind", "snemi3d") == 0
    res = nib.load(out)
    np.testing.assert_allclose(res.affine, nib.load(src).affine)
    assert res.header["descrip"] == img.header["descrip"]
    assert res.header.get_xyzt_units() == ("micron", "unknown")
    assert res.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(res.dataobj).T, nj.ops.union_semantic(arrays["pinky"], "snemi3d"))


def test_instances_without_growth(arrays, inputs, tmp_path):
    out = tmp_path / "inst.npy"
    assert relabel("instances", inputs("npy", "semantic"), out, "--no-grow", "--connectivity", "18") == 0
    expected = nj.ops.boundary_separated_instances(arrays["semantic"], connectivity=18, grow=False)[0]
    np.testing.assert_array_equal(np.load(out), expected)
    assert (expected[arrays["semantic"] == 2] == 0).all()


def test_hdf5_output_adds_a_key_and_keeps_the_others(arrays, inputs, tmp_path):
    out = tmp_path / "both.h5"
    with h5py.File(out, "w") as f:
        f["raw"] = np.arange(10)
    assert relabel("renumber", inputs("npy", "cremi"), f"{out}:seg") == 0
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["raw", "seg"]
        np.testing.assert_array_equal(f["raw"][...], np.arange(10))
        np.testing.assert_array_equal(f["seg"][...], nj.ops.renumber(arrays["cremi"])[0])


def test_2d_components_with_8_connectivity(arrays, tmp_path):
    plane = np.ascontiguousarray(arrays["pinky"][5])
    np.save(tmp_path / "plane.npy", plane)
    assert relabel("components", tmp_path / "plane.npy", tmp_path / "cc.npy", "--connectivity", "8") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "cc.npy"), nj.ops.connected_components(plane, 8)[0])


def test_existing_output_needs_overwrite(arrays, inputs, tmp_path, capsys):
    out = tmp_path / "out.npy"
    np.save(out, np.zeros(3, np.uint8))
    assert relabel("renumber", inputs("npy", "pinky"), out) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out), np.zeros(3, np.uint8))
    assert relabel("renumber", inputs("npy", "pinky"), out, "--overwrite") == 0
    np.testing.assert_array_equal(np.load(out), nj.ops.renumber(arrays["pinky"])[0])
    zout = tmp_path / "out.zarr3"
    assert relabel("renumber", inputs("npy", "pinky"), zout) == 0
    assert relabel("union", inputs("npy", "pinky"), zout, "--kind", "microns", "--overwrite") == 0
    assert nj.Volume.open(zout).dtype == np.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy", "out.zarr3"]


# ----------------------------------------------------------------------------- errors
def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    with h5py.File(tmp / "two.h5", "w") as f:
        f["a"], f["grp/b"] = np.ones((2, 2, 2), np.uint32), np.ones((2, 2, 2), np.uint32)
    np.save(tmp / "float.npy", np.ones((2, 3, 4), np.float32))
    tifffile.imwrite(tmp / "float.tif", np.ones((2, 3, 4), np.float32), photometric="minisblack")
    np.save(tmp / "complex.npy", np.ones((2, 3, 4), np.complex64))
    np.save(tmp / "neg.npy", -np.ones((2, 3, 4), np.int16))
    np.save(tmp / "vec.npy", np.ones(5, np.uint32))
    (tmp / "junk.h5").write_bytes(b"not an hdf5 file" * 8)
    (tmp / "junk.tif").write_bytes(b"not a tiff" * 8)
    (tmp / "junk.nii.gz").write_bytes(b"not a nifti" * 8)
    ok = str(tmp / "two.h5:a")
    return {
        "h5 without a key": ([str(tmp / "two.h5")], "2 datasets (a, grp/b)"),
        "missing key": ([f"{tmp / 'two.h5'}:nope"], "key 'nope' not found; keys present: a, grp/b"),
        "float labels": ([str(tmp / "float.npy")], "float labels are not supported (found float32)"),
        "float tiff": ([str(tmp / "float.tif")], "float labels are not supported"),
        "unsupported dtype": ([str(tmp / "complex.npy")], "unsupported dtype complex64"),
        "negative ids": ([str(tmp / "neg.npy")], "negative label ids"),
        "1D array": ([str(tmp / "vec.npy")], "expected a 3D (or 2D) label volume"),
        "unreadable h5": ([str(tmp / "junk.h5")], "cannot read as HDF5"),
        "unreadable tiff": ([str(tmp / "junk.tif")], "cannot read as tiff"),
        "unreadable nifti": ([str(tmp / "junk.nii.gz")], "cannot read as nifti"),
        "missing file": ([str(tmp / "absent.tif")], "absent.tif: no such file"),
        "missing store": ([str(tmp / "absent.zarr3")], "no such volume"),
        "2D connectivity": ([str(tmp / "plane.npy"), "--connectivity", "6"], "use 4 or 8"),
        "union without kind": ([ok, "--mode-union"], "union needs --kind"),
        "unknown kind": ([ok, "--mode-union", "--kind", "nope"], "unknown dataset kind 'nope'"),
        "unknown class": ([ok, "--mode-union", "--kind", "snemi3d", "--ignore-class", "axon"],
                          "unknown union class 'axon'"),
    }


@pytest.mark.parametrize("case", [
    "h5 without a key", "missing key", "float labels", "float tiff", "unsupported dtype", "negative ids",
    "1D array", "unreadable h5", "unreadable tiff", "unreadable nifti", "missing file", "missing store",
    "2D connectivity", "union without kind", "unknown kind", "unknown class",
])
def test_bad_input_exits_nonzero_with_one_line_reason(case, tmp_path, capsys):
    np.save(tmp_path / "plane.npy", np.ones((4, 5), np.uint32))
    argv, reason = _bad_inputs(tmp_path)[case]
    mode = "union" if "--mode-union" in argv else "components"
    argv = [a for a in argv if a != "--mode-union"]
    out = tmp_path / "out" / "result.zarr3"
    assert relabel(mode, argv[0], out, *argv[1:]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err
    assert len(err.splitlines()) == 1 and err.startswith("neurons-relabel: error: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_refuses_to_write_into_its_input(arrays, tmp_path, capsys):
    src = write_input("h5", arrays["pinky"], tmp_path)  # .../in.h5:volumes/labels
    zsrc = write_input("zarr3", arrays["pinky"], tmp_path)
    nsrc = write_input("npy", arrays["pinky"], tmp_path)
    before = {s: digest(s) for s in (src, zsrc, nsrc)}
    h5file = src.split(":")[0]
    for argv in ([src, src, "--overwrite"], [src, f"{h5file}:other"], [nsrc, nsrc, "--overwrite"],
                 [zsrc, Path(zsrc) / "inner.zarr3"], [zsrc, f"zarr3://{zsrc}", "--overwrite"],
                 [zsrc, tmp_path, "--overwrite"]):
        assert relabel("renumber", *argv) == 2
        assert "refusing to write into the input" in capsys.readouterr().err
    assert {s: digest(s) for s in before} == before


def test_device_gpu_without_gpu_says_so(inputs, tmp_path, capsys, monkeypatch):
    from neurons_jax import backend

    why = "CuPy is not installed or does not import (ModuleNotFoundError: No module named 'cupy')"
    monkeypatch.setattr(backend, "_PROBE", (False, why))
    rc = relabel_main(["components", inputs("npy", "pinky"), str(tmp_path / "o.zarr3"), "--device", "gpu"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--device gpu: no CUDA GPU found ({why}); use cpu or auto" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.zarr3").exists()
    rc = relabel_main(["components", inputs("npy", "pinky"), str(tmp_path / "o.zarr3"), "--no-progress"])
    assert rc == 0 and "on cpu" in capsys.readouterr().out  # auto falls back to the CPU


def test_entry_point_runs_as_a_subprocess(arrays, inputs, tmp_path):
    exe = ROOT / ".venv" / "bin" / "neurons-relabel"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "neurons_jax.cli", "relabel"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "cc.zarr3"
    proc = subprocess.run([*cmd, "components", inputs("h5", "pinky"), str(out), "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ids in: " in proc.stdout and "time: " in proc.stdout
    np.testing.assert_array_equal(nj.Volume.open(out).read(), nj.ops.connected_components(arrays["pinky"])[0])
    bad = subprocess.run([*cmd, "components", str(tmp_path / "nope.h5:x"), str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert bad.returncode == 2 and "nope.h5: no such file" in bad.stderr


def test_outputs_carry_the_input_voxel_size_or_none(arrays, tmp_path, capsys):
    """An input without a voxel size gives outputs without one (no guessed 1 nm), which open
    without being told one; one with a voxel size passes it on, in memory and block by block."""
    pytest.importorskip("dask")
    plain, sized = tmp_path / "plain.h5", tmp_path / "sized.h5"
    with h5py.File(plain, "w") as f:
        f["labels"] = arrays["pinky"]
    with h5py.File(sized, "w") as f:
        f["labels"] = arrays["pinky"]
        f["labels"].attrs["resolution"] = VS
    blocks = ["--block-shape", "32", "64", "16", "--scheduler", "synchronous"]
    expected = nj.ops.connected_components(arrays["pinky"])[0]
    for src, vs in ((plain, None), (sized, VS)):
        for extra in ([], blocks):
            out = tmp_path / f"{src.stem}{len(extra)}.zarr3"
            assert relabel("components", f"{src}:labels", out, *extra) == 0
            vol = nj.Volume.open(out)
            assert vol.voxel_size == vs
            np.testing.assert_array_equal(vol.read(), expected)
            printed = capsys.readouterr().out
            assert ("none recorded (pass --voxel-size Z Y X)" in printed) == (vs is None)
        out = tmp_path / f"{src.stem}_given.zarr3"
        assert relabel("components", f"{src}:labels", out, *blocks, "--voxel-size", "30", "4", "4") == 0
        assert nj.Volume.open(out).voxel_size == (30.0, 4.0, 4.0)
    assert relabel("components", f"{plain}:labels", tmp_path / "o.h5", "--voxel-size", "4", "4") == 2
    assert "--voxel-size needs 3 values" in capsys.readouterr().err


def test_block_shape_runs_the_blockwise_labeller(arrays, inputs, tmp_path, capsys):
    pytest.importorskip("dask")
    src, out = inputs("h5", "pinky"), tmp_path / "blocks.zarr3"
    argv = ["components", src, out, "--block-shape", "32", "128", "8", "--connectivity", "18",
            "--scheduler", "synchronous"]
    assert relabel(*argv) == 0
    expected, n = nj.ops.connected_components(arrays["pinky"], 18)
    np.testing.assert_array_equal(nj.Volume.open(out).read(), expected)
    assert nj.Volume.open(out).voxel_size == VS
    assert f"ids out: {n}" in capsys.readouterr().out
    assert relabel(*argv) == 2 and "already exists" in capsys.readouterr().err
    assert relabel(*argv[:-4], "--connectivity", "6", "--scheduler", "synchronous", "--overwrite") == 0
    np.testing.assert_array_equal(nj.Volume.open(out).read(), nj.ops.connected_components(arrays["pinky"], 6)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.zarr3", "blocks.zarr3.blockwise"]
    assert relabel("components", src, tmp_path / "b.h5", "--block-shape", "8", "8", "8") == 2
    assert "writes a local zarr3 output" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("mode", list(MODE_ARGS))
def test_gpu_equals_cpu(mode, inputs, tmp_path):
    name, extra, _ = MODE_ARGS[mode]
    src = inputs("zarr3", name)
    for dev in ("cpu", "gpu"):
        assert relabel_main([mode, src, str(tmp_path / f"{dev}.zarr3"), *extra, "--device", dev, "--no-progress"]) == 0
    cpu, gpu = (nj.Volume.open(tmp_path / f"{d}.zarr3").read() for d in ("cpu", "gpu"))
    assert cpu.dtype == gpu.dtype
    np.testing.assert_array_equal(gpu, cpu)
