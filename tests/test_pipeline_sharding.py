"""Global batches: sharded over 8 forced CPU devices, and split across 2 JAX processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import synth

from neurons_jax.pipeline import Loader

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

COMMON = """
import sys, json
sys.path[:0] = [{tests!r}, {root!r}]
import numpy as np, synth
from neurons_jax.pipeline import Loader
sources = {{"snemi3d": (synth.dataset("snemi3d", seed=1), 1.0), "mitoem2": (synth.dataset("mitoem2", seed=3), 1.0)}}
"""


def _run(code: str, env_extra: dict, timeout=240) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONPATH": f"{TESTS}:{ROOT}"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def test_batch_is_sharded_over_8_devices():
    code = COMMON.format(tests=str(TESTS), root=str(ROOT)) + textwrap.dedent("""
        import jax
        loader = Loader(sources, (4, 32, 32), batch_size=8, seed=0, augment=None)
        b = next(loader)
        out = {k: [list(v.shape), len(v.sharding.device_set), list(v.sharding.spec)] for k, v in b.items()}
        out["n_devices"] = jax.device_count()
        try:
            Loader(sources, (4, 32, 32), batch_size=12, augment=None)
        except ValueError as e:
            out["bad_batch"] = str(e)
        print(json.dumps(out))
    """)
    r = _run(code, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["n_devices"] == 8
    assert out["image"] == [[8, 4, 32, 32, 1], 8, ["data"]]
    assert out["semantic"][:2] == [[8, 4, 32, 32], 8]
    assert out["dataset"][:2] == [[8], 8]
    assert "batch_size 12 is not divisible by the mesh's data axis size 8" in out.get("bad_batch", "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_the_stream(tmp_path):
    port = _free_port()
    code = COMMON.format(tests=str(TESTS), root=str(ROOT)) + textwrap.dedent("""
        import os, jax
        pid = int(os.environ["PID"])
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{PORT}", num_processes=2, process_id=pid)
        loader = Loader(sources, (4, 32, 32), batch_size=4, seed=7, augment=None)
        seen = []
        for _ in range(3):
            b = next(loader)
            assert b["dataset"].shape == (4,), b["dataset"].shape
            d = [np.asarray(s.data) for s in b["dataset"].addressable_shards]
            p = [np.asarray(s.data) for s in b["position"].addressable_shards]
            seen += np.concatenate([np.concatenate(d)[:, None], np.concatenate(p)], 1).tolist()
        json.dump(seen, open(f"{OUT}/p{pid}.json", "w"))
        jax.distributed.shutdown()
    """).replace("{PORT}", str(port)).replace("{OUT}", str(tmp_path))
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PID": str(i), "JAX_PLATFORMS": "cpu",
                         "PYTHONPATH": f"{TESTS}:{ROOT}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    errs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        errs.append((p.returncode, err[-3000:]))
    assert all(rc == 0 for rc, _ in errs), errs
    a = [tuple(x) for x in json.load(open(tmp_path / "p0.json"))]
    b = [tuple(x) for x in json.load(open(tmp_path / "p1.json"))]
    assert len(a) == len(b) == 6
    single = Loader({"snemi3d": (synth.dataset("snemi3d", seed=1), 1.0), "mitoem2": (synth.dataset("mitoem2", seed=3), 1.0)},
                    (4, 32, 32), batch_size=4, seed=7, augment=None, output="numpy")
    stream = []
    for _ in range(3):
        x = next(single)
        stream += np.concatenate([x["dataset"][:, None], x["position"]], 1).tolist()
    stream = [tuple(s) for s in stream]
    # process k holds elements k, k+2, ... of the global stream: disjoint, together complete
    assert a == stream[0::2] and b == stream[1::2]
    assert sorted(a + b) == sorted(stream)
