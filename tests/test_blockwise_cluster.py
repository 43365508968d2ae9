"""Blockwise connected components on real Dask clusters: a LocalCluster whose worker is killed
mid-run (the scheduler reruns its task elsewhere, the output is complete and identical), and a
``dask scheduler`` with two ``dask worker`` processes started here on 127.0.0.1."""

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


def _wait_for(path, proc, deadline: float) -> None:
    import time

    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with code {proc.returncode} before writing {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"dask scheduler wrote no {path} within 60 s")
        time.sleep(0.1)


def _stop(procs) -> None:
    """End the cluster's processes (ours, by their ids): SIGTERM, then SIGKILL after 20 s."""
    import subprocess

    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def test_real_cluster_scheduler_and_two_worker_processes(load_shared, tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (free ports chosen by
    the scheduler, address from its scheduler file), the job run through
    ``distributed.Client(address)``: raster output equal to cc3d, blocks output equal to the
    same job run in one process (the numbering does not depend on the workers)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    labels = np.ascontiguousarray(load_shared("pinky40_seg_256.npz")["labels"][128:, 128:, :128])
    src = tmp_path / "seg.zarr"
    nj.volumes.write_zarr3(src, labels, (40.0, 8.0, 8.0), chunks=(32, 64, 64))
    ref = cc3d.connected_components(labels, connectivity=26, out_dtype=np.uint32)
    dask = str(Path(sys.executable).with_name("dask"))
    env = dict(os.environ, PYTHONPATH=str(root))
    sched_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    logs = [open(tmp_path / f"log{i}.txt", "w") for i in range(3)]
    procs = [subprocess.Popen([dask, "scheduler", "--port", "0", "--scheduler-file", str(sched_file), *common],
                              stdout=logs[0], stderr=subprocess.STDOUT, env=env, cwd=root)]
    try:
        _wait_for(sched_file, procs[0], time.monotonic() + 60)
        for i in (1, 2):
            procs.append(subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--no-nanny",
                 "--name", f"nj-test-{i}", *common],
                stdout=logs[i], stderr=subprocess.STDOUT, env=env, cwd=root,
            ))  # fmt: skip
        import json

        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            assert set(client.run(os.getpid).values()) == {p.pid for p in procs[1:]}
            outs = {}
            for order in ("raster", "blocks"):
                vol, n = bw.blockwise_connected_components(
                    src, tmp_path / f"{order}.zarr", (32, 64, 48), 26, client=client, progress=False,
                    order=order,
                )
                assert n == int(ref.max())
                outs[order] = vol.read()
            # both worker processes ran tasks
            done = client.run(lambda dask_worker: dask_worker.state.transition_counter)
            assert len(done) == 2 and min(done.values()) > 0, done
    finally:
        _stop(procs)
        for f in logs:
            f.close()
    assert all(p.poll() is not None for p in procs)
    np.testing.assert_array_equal(outs["raster"], ref)
    vol, _ = bw.blockwise_connected_components(
        src, tmp_path / "one.zarr", (32, 64, 48), 26, client="synchronous", progress=False, order="blocks"
    )
    np.testing.assert_array_equal(outs["blocks"], vol.read())
    joint = np.unique((outs["blocks"].astype(np.uint64) << np.uint64(32)) | ref.astype(np.uint64))
    assert len(joint) == int(ref.max()) + 1  # the same components, renumbered
