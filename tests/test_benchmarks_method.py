"""The benchmarks' steady-state rate: buffered batches do not count, and bench_peers.py runs."""

from __future__ import annotations

import importlib.util
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


bp = load("bench_pipeline")


def test_buffered_batches_do_not_count():
    # 10 batches in the buffers (1 ms each), then the producers' pace: 1 batch / 0.2 s
    arrivals = [0.001 * (k + 1) for k in range(10)] + [0.2 * (k + 1) for k in range(30)]
    calls = [0.0] + [a + 1e-4 for a in arrivals[:-1]]
    r = bp.steady_rate(calls, arrivals)
    assert r["first_wait"] == 10
    assert r["batches_per_s"] == pytest.approx(5.0, rel=1e-9)
    assert r["naive_batches_per_s"] == pytest.approx(40 / 6.0, rel=1e-9)  # the old figure, +33 %


def test_consumer_bound_counts_every_batch():
    # every call takes the consumer's 50 ms and never waits: 20 batches/s from the first call
    calls = [0.05 * k for k in range(20)]
    arrivals = [c + 0.049 for c in calls]
    r = bp.steady_rate(calls, arrivals)
    assert r["first_wait"] is None
    assert r["batches_per_s"] == pytest.approx(20 / (arrivals[-1] - calls[0]))


def test_too_short_a_window_is_refused():
    arrivals = [0.001 * (k + 1) for k in range(10)] + [0.2, 0.4]
    calls = [0.0] + [a + 1e-4 for a in arrivals[:-1]]
    with pytest.raises(ValueError, match="time more batches"):
        bp.steady_rate(calls, arrivals)


def test_time_batches_on_a_real_buffered_producer():
    """A producer thread (1 batch / 25 ms) fills a 12-deep buffer while the consumer sleeps:
    the steady rate is the producer's, the old method's figure is inflated by the buffer."""
    q: queue.Queue = queue.Queue(maxsize=12)
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            time.sleep(0.025)
            try:
                q.put(object(), timeout=0.5)
            except queue.Full:
                continue

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        r = bp.time_batches(q.get, warm=2, n=48, settle_s=0.6, naive=16)
    finally:
        stop.set()
    assert r["first_wait"] is not None and r["first_wait"] >= 8
    assert 25 < r["batches_per_s"] < 44  # 40 batches/s, minus sleep overshoot on a busy machine
    assert r["naive_batches_per_s"] > 1.5 * r["batches_per_s"]


def test_summary_takes_the_quietest_repeats():
    bpe = load("bench_peers")
    reps = [{"repeat": k, "foreign_cores": load_, "ours": {"samples_per_s": o},
             "gunpowder": {"samples_per_s": g}}
            for k, (load_, o, g) in enumerate([(1.5, 10, 5), (0.1, 30, 10), (0.2, 28, 7),
                                                (0.3, 26, 13), (2.0, 8, 8)])]
    reps.append({"repeat": 5, "foreign_cores": 0.0, "ours": {"samples_per_s": 99},
                 "gunpowder": {"error": "failed"}})
    s = bpe.summarise(reps, ["ours", "gunpowder"])
    assert s["gunpowder"]["quiet_repeats"] == [1, 2, 3]  # repeat 5 has no gunpowder figure
    assert s["ours"]["quiet_repeats"] == [5, 1, 2]
    assert s["ours"]["median"] == 27 and s["ours"]["quiet_median"] == 30
    assert s["gunpowder"]["ours_over_peer"] == 2.0  # median of 2, 3, 4, 2, 1
    assert s["gunpowder"]["ours_over_peer_quiet"] == 3.0  # median of 3, 4, 2


def test_bench_peers_help():
    r = subprocess.run([sys.executable, str(BENCH / "bench_peers.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--quick" in r.stdout and "--repeats" in r.stdout
