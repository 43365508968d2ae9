"""neurons_jax.backend: device choice, connectivity tables, per-device caches, the probe cache."""

from __future__ import annotations

import numpy as np
import pytest

from neurons_jax import backend
from neurons_jax.ops import _kernels

NO_GPU = (False, "CuPy sees no CUDA device")


def test_resolve_device_follows_the_probe(monkeypatch):
    monkeypatch.setattr(backend, "_PROBE", (True, ""))
    assert [backend.resolve_device(d, "device") for d in ("auto", "cpu", "gpu")] == ["gpu", "cpu", "gpu"]
    monkeypatch.setattr(backend, "_PROBE", NO_GPU)
    assert [backend.resolve_device(d, "device") for d in ("auto", "cpu")] == ["cpu", "cpu"]
    with pytest.raises(backend.GpuUnavailableError,
                       match=r"^--device gpu: no CUDA GPU found \(CuPy sees no CUDA device\); use cpu or auto$"):
        backend.resolve_device("gpu", "--device")
    for bad in ("GPU", "cuda", None, 1):
        with pytest.raises(ValueError, match=r"f: device must be one of auto, cpu, gpu; got"):
            backend.resolve_device(bad, "f: device")


def test_a_failed_kernel_makes_the_probe_say_why(monkeypatch):
    def broken(*a):
        raise RuntimeError("nvrtc: cannot open include file")

    monkeypatch.setattr(_kernels, "get_function", broken)
    monkeypatch.setattr(backend, "_PROBE", None)
    assert not backend.gpu_available()
    reason = backend.gpu_unavailable_reason()
    assert "cannot compile or run a kernel (RuntimeError: nvrtc" in reason or reason.startswith("CuPy")


@pytest.mark.parametrize(
    "conn,ndim,expected",
    [(4, 2, 4), (8, 2, 8), (6, 2, 4), (18, 2, 8), (26, 2, 8), (6, 3, 6), (18, 3, 18), (26, 4, 26),
     (np.int64(26), 3, 26)],
)
def test_connectivities_by_dimension(conn, ndim, expected):
    got = backend.check_connectivity(conn, ndim, "f")
    assert got == expected and type(got) is int


@pytest.mark.parametrize(
    "conn,ndim,match",
    [(4, 3, r"f: connectivity must be one of \(6, 18, 26\) for 3D input; got 4"),
     (5, 2, r"one of \(4, 8\) \(or 6, 18, 26 as cc3d maps them\) for 2D input; got 5"),
     (True, 3, "got True"), (6.0, 3, "got 6.0"), ("6", 3, "got '6'")],
)
def test_bad_connectivities_name_what_is_allowed(conn, ndim, match):
    with pytest.raises(ValueError, match=match):
        backend.check_connectivity(conn, ndim, "f")


def test_stencils_and_reach():
    for conn, k, r in ((6, 6, 1), (18, 18, 2), (26, 26, 3), (4, 6, 1), (8, 26, 3)):
        s = backend.stencil(conn)
        assert s.shape == (k, 3) and backend.reach(conn) == r
        assert np.count_nonzero(s, axis=1).max() == r and not (s == 0).all(axis=1).any()
        assert len({tuple(o) for o in s}) == k and not s.flags.writeable
    assert backend.to_3d(4) == 6 and backend.to_3d(8) == 26 and backend.to_3d(18) == 18


def test_array_module_refuses_to_mix(xp):
    a = xp.zeros(2)
    assert backend.array_module(a, None) is xp
    np.testing.assert_array_equal(backend.to_numpy(a), np.zeros(2))
    if xp is not np:
        with pytest.raises(TypeError, match="mix NumPy and CuPy"):
            backend.array_module(a, np.zeros(2))


@pytest.mark.gpu
def test_per_device_caches_one_value_per_device():
    import cupy

    calls = []

    @backend.per_device
    def table(n):
        calls.append((cupy.cuda.Device().id, n))
        return cupy.arange(n)

    with cupy.cuda.Device(0):
        a, b = table(3), table(3)
    assert a is b and calls == [(0, 3)]
    if cupy.cuda.runtime.getDeviceCount() > 1:
        with cupy.cuda.Device(1):
            c = table(3)
            assert c is not a and c.device.id == 1
        assert calls == [(0, 3), (1, 3)]
    table.cache_clear()
    with cupy.cuda.Device(0):
        assert table(3) is not a
