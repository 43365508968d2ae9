"""Shared fixtures: the ``xp`` backend fixture, real data in ../shared/data, the sample workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))




def _real_cuda() -> bool:
    """A CuPy that sees a CUDA device (then the ``gpu`` tests run on it, unchanged)."""
    if os.environ.get("NJ_CUDASIM") == "1":
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: all mean "use the stand-in"
        sys.modules.pop("cupy", None)
        return False


REAL_CUDA = _real_cuda()
if os.environ.get("NJ_REQUIRE_CUDA") == "1" and not REAL_CUDA:
    raise pytest.UsageError("NJ_REQUIRE_CUDA=1 (make gpu-check) but CuPy finds no CUDA device")
if not REAL_CUDA and os.environ.get("NJ_CUDASIM") != "0":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cudasim

    cudasim.install()
STANDIN = "cupy" in sys.modules and getattr(sys.modules["cupy"], "IS_CUDASIM", False)


def _gpu() -> bool:
    from neurons_jax.backend import gpu_available

    return gpu_available()


def pytest_report_header(config):
    return f"gpu tests: {'real CuPy' if REAL_CUDA else 'cudasim stand-in' if STANDIN else 'skipped'}"


def pytest_collection_modifyitems(config, items):
    if _gpu():
        return
    from neurons_jax.backend import gpu_unavailable_reason

    skip = pytest.mark.skip(reason=f"needs a CUDA GPU with CuPy: {gpu_unavailable_reason()}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _standin_only_for_gpu_tests(request, monkeypatch):
    """With the stand-in, only ``gpu`` tests see a GPU: ``device="auto"`` elsewhere stays on the CPU."""
    if not STANDIN:
        yield
        return
    from neurons_jax import backend as _backend

    if "gpu" not in request.keywords:
        monkeypatch.setattr(_backend, "_PROBE", (False, "the cudasim stand-in serves gpu-marked tests only"))
        yield
        return
    cudasim.reset()
    yield


@pytest.fixture
def gpu_counters():
    """The stand-in's counters, reset (tests of the sync budget need the stand-in)."""
    if not STANDIN:
        pytest.skip("launch/sync counters exist on the cudasim stand-in only")
    cudasim.reset()
    return cudasim.counters


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module a test body runs on: NumPy always, CuPy where a GPU exists."""
    if request.param == "numpy":
        return np
    import cupy

    return cupy


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real EM data not found at {SHARED_DATA} (set NEURONS_JAX_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def load_shared(shared_data):
    """``load_shared("fib25_sample2.npz")`` -> the npz, or a skip naming the missing file."""

    def load(name: str):
        p = shared_data / name
        if not p.exists():
            pytest.skip(f"{p} is absent")
        return np.load(p)

    return load


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> dict:
    """The synthetic sample workspace in native formats (written once per test session)."""
    import neurons_jax as nj

    return nj.sample.write_workspace(tmp_path_factory.mktemp("workspace"), seed=0)


@pytest.fixture(scope="session")
def prepared(workspace, tmp_path_factory) -> dict:
    """The sample workspace ingested to zarr3 (kind -> prepared root)."""
    import neurons_jax as nj

    out = tmp_path_factory.mktemp("prepared")
    return {k: nj.datasets.prepare(k, root, out / k) for k, root in workspace.items()}
