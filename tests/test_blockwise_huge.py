"""A generated volume of 2.1·10⁹ voxels (1280³ uint64, no input on disk) labelled blockwise on a
LocalCluster of 2 workers: component count and sampled components equal what the generator
implies, with bounded driver and worker peak memory (measured). Minutes on 2 cores, so it runs
only with ``NJ_RUN_HUGE=1`` (the benchmark, ``benchmarks/bench_blockwise.py --generated``,
runs it too)."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from neurons_jax.ops import blockwise as bw
from neurons_jax.ops.blockwise.generated import GeneratedSource, verify

pytestmark = pytest.mark.skipif(
    os.environ.get("NJ_RUN_HUGE") != "1",
    reason="a 2.1 GVx job takes minutes on 2 cores and ~3 GB of disk: set NJ_RUN_HUGE=1 to run it",
)
SHAPE = (1280, 1280, 1280)
DRIVER_MB, WORKER_MB = 1500, 2500  # far below the 17 GB the input alone would take in memory


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_generated_2_gvx_volume_with_bounded_memory():
    distributed = pytest.importorskip("distributed")
    gen = GeneratedSource(SHAPE, seed=0)
    assert np.prod(SHAPE) >= 2e9
    where = max([Path(tempfile.gettempdir()), Path(__file__).resolve().parents[2]],
                key=lambda p: shutil.disk_usage(p).free)  # fmt: skip
    if shutil.disk_usage(where).free < 20e9:
        pytest.skip(f"{where}: less than 20 GB free for the output")
    tmp = Path(tempfile.mkdtemp(prefix="nj_huge_", dir=where))
    try:
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0
        ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
            vol, n = bw.blockwise_connected_components(
                {"driver": "nj_generated", "shape": list(SHAPE), "seed": 0}, tmp / "cc.zarr",
                (256, 256, 256), 6, client=client, progress=False,
            )  # fmt: skip
            workers = client.run(peak_mb)
        driver = peak_mb()
        assert vol.shape == SHAPE and vol.dtype == np.uint32
        checks = verify(gen, vol, n, samples=16)
        assert checks["ok"], checks
        assert n == gen.n_components > 50_000
        assert driver < DRIVER_MB, f"driver peak RSS {driver:.0f} MB"
        assert max(workers.values()) < WORKER_MB, f"worker peak RSS {workers}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
