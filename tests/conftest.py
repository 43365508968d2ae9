"""Shared fixtures: the ``xp`` backend fixture, real data in ../shared/data, the sample workspace."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEURONS_JAX_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _gpu() -> bool:
    from neurons_jax.ops._backend import gpu_available

    return gpu_available()


def pytest_collection_modifyitems(config, items):
    if _gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy (none found)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
