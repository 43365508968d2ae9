"""Blockwise connected components on a real Dask LocalCluster (worker processes): a worker is
killed mid-run, the scheduler reruns its task elsewhere, the output is complete and identical."""

from __future__ import annotations

import os

import cc3d
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.ops import blockwise as bw

distributed = pytest.importorskip("distributed")


class KillOnce(distributed.WorkerPlugin):
    """Ends its worker process (as a crash would) when the write task of one block starts,
    once per job: a file created exclusively records that the kill happened."""

    def __init__(self, flag: str, block: int):
        self.flag, self.block = flag, block

    def transition(self, key, start, finish, **kwargs):
        name = key if isinstance(key, str) else str(key)
        if finish == "executing" and name.startswith(f"nj-write-{self.block}-"):
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            os._exit(1)


def test_worker_killed_mid_run_local_cluster(load_shared, tmp_path):
    labels = np.ascontiguousarray(load_shared("pinky40_seg_256.npz")["labels"][128:, 128:, :128])
    src = tmp_path / "seg.zarr"
    nj.volumes.write_zarr3(src, labels, (40.0, 8.0, 8.0), chunks=(32, 64, 64))
    ref = cc3d.connected_components(labels, connectivity=26, out_dtype=np.uint32)
    flag = tmp_path / "killed"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(KillOnce(str(flag), block=3), name="kill-once")
        pids = set(client.run(os.getpid).values())
        vol, n = bw.blockwise_connected_components(
            src, tmp_path / "cc.zarr", (48, 64, 64), 26, client=client, progress=False
        )
        survivors = set(client.run(os.getpid).values())
        # an in-memory source (8 MB) is scattered to the workers once instead of with each task
        vol2, n2 = bw.blockwise_connected_components(
            nj.Volume.from_array(labels, (40.0, 8.0, 8.0)), tmp_path / "cc2.zarr", (64, 64, 64), 26,
            client=client, progress=False,
        )
        np.testing.assert_array_equal(vol2.read(), ref)
    assert flag.exists() and pids - survivors  # a worker really died during the write phase
    assert n == int(ref.max())
    np.testing.assert_array_equal(vol.read(), ref)


def test_a_failing_task_surfaces_the_workers_own_error(tmp_path):
    """A corrupt chunk on a worker used to reach the caller as FutureCancelledError: the worker's
    exception comes back instead (type and message), naming the store, the box and the block."""
    labels = np.ones((16, 16, 16), np.uint32)
    src = tmp_path / "seg.zarr"
    nj.volumes.write_zarr3(src, labels, chunks=(8, 8, 8))
    (src / "c" / "0" / "1" / "1").write_bytes(b"not a zstd frame" * 4)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        with pytest.raises(OSError) as e:
            bw.blockwise_connected_components(src, tmp_path / "cc.zarr", (8, 8, 8), client=client, progress=False)
    assert type(e.value) is OSError
    msg = str(e.value)
    assert msg.startswith(f"zarr3 store file://{src}/: cannot read z 0:8, y 8:16, x 8:16 (")
    assert "ZSTD" in msg and msg.endswith("(block 3 of 8)")
