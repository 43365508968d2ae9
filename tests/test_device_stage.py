"""The Loader's GPU stage (``neurons_jax.device_stage``): the choice of stage, the DLPack hand-over
per device, ops on their input's device, the sync budget of ``finish``, and 2 GPUs against the
CPU stage. Each defect test failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import synth

import neurons_jax as nj
from neurons_jax import backend as _backend
from neurons_jax import device_stage
from neurons_jax.ops import _kernels
from neurons_jax.pipeline import Loader

pytestmark = pytest.mark.gpu
TESTS = Path(__file__).resolve().parent
PATCH = (4, 32, 32)


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.fixture(scope="module")
def two():
    return {"snemi3d": (synth.dataset("snemi3d", seed=1), 1.0), "mitoem2": (synth.dataset("mitoem2", seed=3), 1.0)}


def _host_batch(two, n=4):
    # the host half of the Loader, without its CPU finish: the GPU loader's own host batches
    gpu = Loader(two, PATCH, batch_size=n, seed=2, device="gpu", output="numpy")
    host = gpu._reader.open_batch(next(gpu._make_iter()))  # views of the batch's block
    return {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}, gpu


def test_auto_with_a_cpu_only_jax_stays_on_the_cpu(cp, monkeypatch):
    monkeypatch.setattr(device_stage, "jax_on_gpu", lambda: False)  # CI's JAX: CPU devices only
    assert device_stage.choose("auto", "jax") == (False, "host")
    assert device_stage.choose("gpu", "jax") == (True, "host")  # kernels run, batch goes through host memory
    assert device_stage.choose("auto", "numpy") == (True, "cupy")
    assert device_stage.choose("cpu", "jax") == (False, "host")


def test_auto_with_jax_on_gpus_hands_over_by_dlpack(cp, monkeypatch):
    monkeypatch.setattr(device_stage, "jax_on_gpu", lambda: True)
    assert device_stage.choose("auto", "jax") == (True, "dlpack")


def test_a_cupy_that_cannot_compile_is_no_gpu(cp, monkeypatch):
    def broken(*a, **k):
        raise cp.cuda.compiler.CompileException("nvrtc: error: failed to open cuda_fp16.h")

    monkeypatch.setattr(_kernels, "get_function", broken)
    monkeypatch.setattr(_backend, "_PROBE", None)
    assert not _backend.gpu_available()
    assert "cannot compile or run a kernel" in _backend.gpu_unavailable_reason()
    monkeypatch.setattr(device_stage, "jax_on_gpu", lambda: True)
    assert device_stage.choose("auto", "jax") == (False, "host")
    with pytest.raises(RuntimeError, match=r"device gpu: no CUDA GPU found \(CuPy cannot compile"):
        device_stage.choose("gpu", "jax")


def test_ops_run_on_their_inputs_device(cp, monkeypatch):
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs 2 GPUs")
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, (5, 9, 8)).astype(np.uint16)
    with cp.cuda.Device(1):
        d, d8 = cp.asarray(lab), cp.asarray(lab.astype(np.uint8))
    assert cp.cuda.Device().id == 0
    ids, n = nj.ops.connected_components(d, 26)
    assert ids.device.id == 1
    np.testing.assert_array_equal(ids.get(), nj.ops.connected_components(lab, 26)[0])
    for out in (nj.ops.renumber(d)[0], nj.ops.union_semantic(d, "cremi3d"),
                nj.ops.boundary_separated_instances(d8)[0], nj.ops.relabel_after_crop(d)[0]):
        assert out.device.id == 1
    if getattr(cp, "IS_CUDASIM", False):  # before the fix: launched on device 0 with a device-1 pointer
        import contextlib

        monkeypatch.setattr("neurons_jax.ops.components.on_device_of", lambda a: contextlib.nullcontext())
        with pytest.raises(cp.DeviceMismatchError):
            nj.ops.connected_components(d, 26)


def test_dlpack_export_happens_on_the_device_that_wrote(cp, two):
    if not getattr(cp, "IS_CUDASIM", False):
        pytest.skip("the consumer below is the stand-in's model of JAX's from_dlpack")
    host, loader = _host_batch(two)
    bs = host["instance_classes"]
    for gpu in (0, 1):
        out = device_stage.device_rows(host, slice(0, 2), gpu, host["params"], PATCH, cp.consume_dlpack, {})
        assert set(out) == {"image", "semantic", "instance", "mask"}
    # the defect: outputs of GPU 1 exported after leaving its context (device 0 current)
    with cp.cuda.Device(1):
        part = nj.stage.finish(cp.asarray(host["image"][:2]), cp.asarray(host["packed"][:2]), None,
                               host["params"][:2], PATCH, bs[:2], boxes=host["box"][:2])
    with pytest.raises(cp.OrderingError, match="DLPack export of an array of device 1 while device 0 is current"):
        cp.consume_dlpack(part["instance"])
    loader.close()


def test_finish_waits_for_the_device_at_most_once_per_batch(cp, two, gpu_counters):
    host, loader = _host_batch(two, n=6)
    bs = host["instance_classes"]
    assert bs.any() and not bs.all(1).all()
    with cp.cuda.Device(0):
        img, packed = cp.asarray(host["image"]), cp.asarray(host["packed"])
        gpu_counters.reset()
        out = nj.stage.finish(img, packed, None, host["params"], PATCH, bs, boxes=host["box"])
    assert gpu_counters.syncs <= 1, gpu_counters.log
    assert gpu_counters.h2d_bytes < img.nbytes // 4  # only parameter tables go up, no batch data
    assert gpu_counters.d2h_bytes <= 8  # the one flag read
    ref = nj.stage.finish(host["image"], host["packed"], host.get("mask"), host["params"], PATCH, bs,
                          boxes=host["box"])
    for k in ("semantic", "instance", "mask"):
        np.testing.assert_array_equal(out[k].get(), ref[k], err_msg=k)
    np.testing.assert_allclose(out["image"].get(), ref["image"], atol=1e-5)
    loader.close()


def test_two_gpus_equal_the_cpu_stage():
    """2 JAX CPU devices, 2 stand-in (or real) GPUs: each GPU finishes its rows, in its own thread."""
    code = textwrap.dedent(f"""
        import sys, json
        sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]
        import conftest  # installs the stand-in where no GPU is usable
        import numpy as np, synth, jax
        from neurons_jax.pipeline import Loader
        src = {{"snemi3d": (synth.dataset("snemi3d", seed=1), 1.0), "mitoem2": (synth.dataset("mitoem2", seed=3), 1.0)}}
        cpu = Loader(src, {PATCH}, batch_size=4, seed=5, device="cpu")
        gpu = Loader(src, {PATCH}, batch_size=4, seed=5, device="gpu")
        res = {{"n": jax.device_count(), "handover": gpu.handover, "equal": True}}
        for _ in range(2):
            a, b = next(cpu), next(gpu)
            res["shards"] = len(b["instance"].sharding.device_set)
            for k in ("semantic", "instance", "mask", "dataset"):
                res["equal"] &= bool(np.array_equal(np.asarray(a[k]), np.asarray(b[k])))
            res["equal"] &= bool(np.abs(np.asarray(a["image"]) - np.asarray(b["image"])).max() <= 1e-5)
        gpu.close(); cpu.close()
        print(json.dumps(res))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": f"{TESTS}:{TESTS.parent}"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res == {"n": 2, "handover": "host", "equal": True, "shards": 2}
