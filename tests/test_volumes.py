"""Volume: reads equal slicing the source (odd boxes, borders), windows, zarr3 round trips,
voxel sizes through dimension units, and pickling into a spawned child process."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import h5py
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.volumes import Volume, write_zarr3

ODD_BOXES = [
    (slice(0, 1), slice(0, 1), slice(0, 1)),
    (slice(3, 17), slice(5, 30), slice(11, 12)),
    (slice(0, 23), slice(0, 37), slice(0, 41)),  # the whole volume
    (slice(22, 23), slice(36, 37), slice(40, 41)),  # the far corner
    (slice(7, 23), slice(0, 5), slice(33, 41)),  # touches three borders
    (slice(5, 5), slice(0, 37), slice(0, 41)),  # empty along z
]


def _array(dtype=np.uint64, shape=(23, 37, 41), seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**40 if np.dtype(dtype).itemsize == 8 else 200, shape)
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64, np.float32])
def test_zarr3_round_trip_odd_boxes_and_borders(tmp_path, dtype):
    a = _array(dtype)
    v = write_zarr3(tmp_path / "a.zarr", a, (40, 4, 4), chunks=(8, 16, 16))
    assert v.shape == a.shape and v.dtype == a.dtype
    assert Volume.open(tmp_path / "a.zarr").voxel_size == (40.0, 4.0, 4.0)
    for box in ODD_BOXES:
        np.testing.assert_array_equal(v.read(box), a[box])
    for bad in [(slice(0, 24), slice(0, 5), slice(0, 5)), (slice(None, 24), slice(0, 5), slice(0, 5)),
                (slice(-1, 3), slice(0, 5), slice(0, 5)), (23, slice(0, 5), slice(0, 5))]:
        with pytest.raises(IndexError, match="outside the volume"):  # never clamped or wrapped
            v.read(bad)
    np.testing.assert_array_equal(v[5], a[5:6])  # an int keeps its axis
    np.testing.assert_array_equal(v.read((slice(20, None), slice(None, 3), slice(None))), a[20:, :3])


def test_windows_read_the_right_part(tmp_path):
    a = _array(np.uint32)
    v = write_zarr3(tmp_path / "a.zarr", a, (30, 6, 6))
    w = v.window(z=(17, 23))
    assert w.shape == (6, 37, 41) and w.origin == (17, 0, 0)
    np.testing.assert_array_equal(w.read(), a[17:23])
    ww = w.window((1, 30, 2), (5, 7, 39))  # a window of a window, to the far borders
    np.testing.assert_array_equal(ww.read(), a[18:23, 30:37, 2:41])
    with pytest.raises(ValueError, match="exceeds"):
        w.window(z=(0, 7))


def test_h5_volume_matches_h5py(tmp_path):
    a = _array(np.uint16)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("some/key", data=a, chunks=(4, 8, 8), compression="gzip")
    v = Volume.from_h5(tmp_path / "x.h5", "some/key", (30, 6, 6))
    for box in ODD_BOXES:
        np.testing.assert_array_equal(v.read(box), a[box])
    with pytest.raises(KeyError, match="some/key"):
        Volume.from_h5(tmp_path / "x.h5", "missing", (30, 6, 6))


def test_pickled_volumes_read_in_a_spawned_child(tmp_path, workspace, prepared):
    """Grain spawns workers: every kind of source must pickle lazily and reopen there."""
    a = _array(np.uint64)
    vols = [
        write_zarr3(tmp_path / "a.zarr", a, (40, 4, 4)),
        nj.datasets.snemi3d(workspace["snemi3d"]).label,  # H5, windowed to train
        nj.datasets.cremi3d(workspace["cremi3d"], "valid").label,  # combined CREMI labels
        nj.datasets.microns(workspace["microns"]).image,  # precomputed crop
        nj.datasets.mitoem2(workspace["mitoem2"], split="test").label,  # NIfTI
        nj.datasets.snemi3d(prepared["snemi3d"], "valid").image,  # prepared zarr3
    ]
    for v in vols:
        v.read((slice(0, 1), slice(0, 2), slice(0, 2)))  # open the handles first
        pickle.dumps(v)
    box = (slice(1, 4), slice(3, 30), slice(5, 22))
    expected = [v.read(box) for v in vols]
    with mp.get_context("spawn").Pool(1) as pool:
        got = pool.starmap(Volume.read, [(v, box) for v in vols])
    for v, e, g in zip(vols, expected, got):
        assert g.dtype == e.dtype, v
        np.testing.assert_array_equal(g, e, err_msg=str(v))


def _plain_zarr3(path, a: np.ndarray) -> dict:
    """A zarr3 store written with TensorStore alone: no dimension units (no voxel size)."""
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path) + "/"}}
    ts.open({**spec, "metadata": {"shape": list(a.shape), "data_type": a.dtype.name}},
            create=True).result().write(a).result()
    return spec


def test_a_store_without_voxel_size_opens_and_label_ops_run_on_it(tmp_path):
    from neurons_jax.ops.blockwise import blockwise_connected_components

    a = _array(np.uint64, (12, 10, 9)) % 3
    spec = _plain_zarr3(tmp_path / "plain.zarr", a)
    for src in (spec, tmp_path / "plain.zarr", str(tmp_path / "plain.zarr")):
        v = Volume.open(src)
        assert v.voxel_size is None and "voxel_size=None" in repr(v)
        np.testing.assert_array_equal(v.read(), a)
    assert Volume.open(spec, voxel_size=(40, 4, 4)).voxel_size == (40.0, 4.0, 4.0)
    dst = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "cc.zarr") + "/"}}
    out, n = blockwise_connected_components(spec, dst, (5, 4, 9), client="synchronous", progress=False)
    ids, ref_n = nj.ops.connected_components(a)
    assert n == ref_n and out.voxel_size is None and Volume.open(tmp_path / "cc.zarr").voxel_size is None
    np.testing.assert_array_equal(out.read(), ids)
    given, _ = blockwise_connected_components(spec, tmp_path / "cc2.zarr", (5, 4, 9), voxel_size=(8, 8, 8),
                                              client="synchronous", progress=False)
    assert given.voxel_size == (8.0, 8.0, 8.0)


def test_voxel_size_none_where_unused_and_a_clear_error_where_needed(tmp_path):
    a = _array(np.uint16, (4, 5, 6))
    v = Volume.from_array(a)
    assert v.voxel_size is None and v.window(z=(1, 3)).voxel_size is None
    with pytest.raises(ValueError, match=r"array\(4, 5, 6\): training needs a voxel size.*pass voxel_size"):
        v.require_voxel_size("training")
    w = write_zarr3(tmp_path / "none.zarr", v)  # nothing recorded, nothing guessed
    assert w.voxel_size is None
    np.testing.assert_array_equal(w.read(), a)
    sized = v.with_voxel_size((30, 6, 6))
    assert sized.require_voxel_size() == (30.0, 6.0, 6.0) and sized.shape == v.shape
    assert write_zarr3(tmp_path / "sized.zarr", sized).voxel_size == (30.0, 6.0, 6.0)
    with pytest.raises(ValueError, match="voxel_size needs 3 values"):
        Volume.from_array(a, (4, 4))
    with pytest.raises(ValueError, match="must be positive"):
        Volume.from_array(a, (4, 0, 4))
    h5 = tmp_path / "x.h5"
    with h5py.File(h5, "w") as f:
        f["k"] = a
    assert Volume.from_h5(h5, "k").voxel_size is None


# ----------------------------------------------------------------------------- missing chunks
def test_missing_chunks_are_errors_unless_allowed(tmp_path, monkeypatch):
    """A zarr3 store with a deleted chunk used to read as zeros: now the read names the store,
    the chunk and the box; sparse stores opt in (argument, context, environment)."""
    from neurons_jax.volumes import MissingChunkError, missing_chunks_allowed

    a = _array(np.uint16, (16, 16, 16)) + 1
    path = tmp_path / "a.zarr"
    write_zarr3(path, a, chunks=(8, 8, 8))
    (path / "c" / "0" / "1" / "0").unlink()
    box = (slice(0, 8), slice(4, 12), slice(0, 4))
    with pytest.raises(MissingChunkError) as e:
        Volume.open(path).read(box)
    assert str(e.value).startswith(
        f'zarr3 store file://{path}/: chunk {{0, 1, 0}} stored at local file "{path}/c/0/1/0" is missing '
        "(reading z 0:8, y 4:12, x 0:4)")
    assert "(a sparse store), pass --allow-missing (allow_missing=True)" in str(e.value)
    Volume.open(path).read((slice(0, 8), slice(0, 8), slice(0, 8)))  # other chunks read as before
    expected = a.copy()
    expected[0:8, 8:16, 0:8] = 0
    np.testing.assert_array_equal(Volume.open(path, allow_missing=True).read(), expected)
    with missing_chunks_allowed(True):
        sparse = Volume.open(path)
        assert Volume.open(path, allow_missing=False).source.allow_missing is False  # the argument wins
    np.testing.assert_array_equal(sparse.read(), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(sparse)).read(), expected)  # travels with the spec
    monkeypatch.setenv("NEURONS_JAX_ALLOW_MISSING", "1")
    np.testing.assert_array_equal(Volume.open(path).read(), expected)
    monkeypatch.delenv("NEURONS_JAX_ALLOW_MISSING")
    with pytest.raises(MissingChunkError):
        pickle.loads(pickle.dumps(Volume.open(path))).read()


def test_writers_store_every_chunk_so_zeros_are_not_missing(tmp_path):
    a = np.zeros((16, 16, 16), np.uint8)
    a[0, 0, 0] = 1
    v = write_zarr3(tmp_path / "z.zarr", a, chunks=(8, 8, 8))
    chunks = [p for p in (tmp_path / "z.zarr" / "c").rglob("*") if p.is_file()]
    assert len(chunks) == 8  # seven of them all zeros
    np.testing.assert_array_equal(v.read(), a)


def test_copies_are_bounded_in_all_three_axes(tmp_path, monkeypatch):
    """write_zarr3 (and so prepare) copies boxes of whole chunks within COPY_BYTES, whatever the
    section size: a 3000^2 section no longer means a slab of 32 full sections."""
    from neurons_jax import volumes

    assert volumes.copy_boxes((100, 3000, 3000), (32, 128, 128), 8) == (32, 128, 2048)
    assert volumes.copy_boxes((300, 3000, 3000), (32, 128, 128), 1, 64 << 20) == (32, 640, 3000)
    assert volumes.copy_boxes((4, 5, 6), (32, 128, 128), 1) == (4, 5, 6)
    monkeypatch.setattr(volumes, "COPY_BYTES", 16 * 16 * 16 * 2)
    a = _array(np.uint16, (20, 70, 90))
    seen = []
    real = volumes.ArraySource.read
    monkeypatch.setattr(volumes.ArraySource, "read", lambda self, sl: seen.append(sl) or real(self, sl))
    sections = []
    v = write_zarr3(tmp_path / "b.zarr", Volume.from_array(a), chunks=(8, 16, 16), progress=sections.append)
    np.testing.assert_array_equal(v.read(), a)
    sizes = [tuple(s.stop - s.start for s in sl) for sl in seen]
    assert max(int(np.prod(s)) for s in sizes) <= 16 * 16 * 16 and max(s[1] for s in sizes) < 70
    assert sum(sections) == 20


def test_volume_errors_name_the_file_and_say_symlink_loop(tmp_path):
    (tmp_path / "loop.zarr").symlink_to(tmp_path / "loop.zarr")
    with pytest.raises(FileNotFoundError, match=r"loop.zarr: symlink loop \(a link that leads back to itself\)"):
        Volume.open(tmp_path / "loop.zarr")
    with pytest.raises(FileNotFoundError, match=r"absent.zarr: no such volume"):
        Volume.open(tmp_path / "absent.zarr")
    a = _array(np.uint16, (8, 8, 8))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("k", data=a, chunks=(4, 8, 8), compression="gzip")
        offset = f["k"].id.get_chunk_info(0).byte_offset
    with open(tmp_path / "x.h5", "r+b") as fh:
        fh.seek(offset + 8)
        fh.write(b"\x00" * 32)
    with pytest.raises(OSError, match=r"x.h5:k: cannot read z 0:4, y 0:8, x 0:8 \(.*\); the file may be damaged"):
        Volume.from_h5(tmp_path / "x.h5", "k").read((slice(0, 4), slice(0, 8), slice(0, 8)))
