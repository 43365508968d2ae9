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
