"""point_prompts: positives inside the chosen instance, negatives outside, the same on both backends."""

from __future__ import annotations

import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.backend import to_numpy


def run(xp, ids, semantic, n_pos, n_neg, u):
    p = nj.targets.point_prompts(xp.asarray(ids), None if semantic is None else xp.asarray(semantic),
                                 n_pos, n_neg, u)
    return {k: to_numpy(v) for k, v in p.items()}


def test_points_lie_inside_and_outside_on_fib25(xp, load_shared):
    seg = load_shared("fib25_sample2.npz")["groundtruth"][:8, :40, :40].reshape(2, 4, 40, 40)
    sem = (seg % 3).astype(np.uint8)
    spec = nj.targets.PointPrompts(n_pos=5, n_neg=4)
    u = spec.draw(np.random.default_rng(0), batch=2)
    p = run(xp, seg, sem, 5, 4, u)
    assert p["points"].shape == (2, 9, 3) and p["points"].dtype == np.int32
    assert p["valid"].all() and p["positive"][:, :5].all() and not p["positive"][:, 5:].any()
    for b in range(2):
        z, y, x = p["points"][b].T
        at = seg[b, z, y, x]
        assert (at[:5] == p["instance"][b]).all() and (at[5:] != p["instance"][b]).all()
        assert p["semantic"][b] == sem[b, z[0], y[0], x[0]]
        present = np.unique(seg[b][seg[b] != 0])  # the rule: floor(u0 * m)-th present id
        assert p["instance"][b] == present[int(u[b, 0] * len(present))]
        inside = np.flatnonzero(seg[b].reshape(-1) == p["instance"][b])
        assert np.ravel_multi_index((z[0], y[0], x[0]), seg[b].shape) == inside[int(u[b, 1] * len(inside))]


def test_edge_cases(xp):
    ids = np.zeros((1, 3, 4), np.uint16)
    p = run(xp, ids, None, 2, 1, np.array([0.5, 0.1, 0.2, 0.3]))
    assert not p["valid"].any() and p["instance"][0] == 0 and p["semantic"][0] == -1
    full = np.full((2, 3), 7, np.int64)  # one instance everywhere: no negative exists
    p = run(xp, full, None, 1, 2, np.array([0.99, 0.99, 0.0, 0.5]))
    assert p["valid"][0].tolist() == [True, False, False] and p["points"][0, 0].tolist() == [0, 1, 2]


@pytest.mark.gpu
def test_gpu_equals_cpu(load_shared):
    import cupy

    seg = load_shared("fib25_sample2.npz")["groundtruth"][:6, :20, :20].reshape(3, 2, 20, 20)
    u = np.random.default_rng(1).random((3, 1 + 3 + 3))
    cpu = nj.targets.point_prompts(seg, seg % 5, 3, 3, u)
    gpu = nj.targets.point_prompts(cupy.asarray(seg), cupy.asarray(seg % 5), 3, 3, u)
    for k in cpu:
        np.testing.assert_array_equal(cpu[k], gpu[k].get(), err_msg=k)


def test_the_spec_and_errors():
    spec = nj.targets.PointPrompts(n_pos=2, n_neg=1)
    a, b = spec.draw(np.random.default_rng(5)), spec.draw(np.random.default_rng(5))
    assert a.shape == (4,) and (a == b).all() and spec.margin() == (0, 0, 0)
    out = spec(np.ones((3, 4, 5), np.uint8), params=a)
    assert set(out) == set(spec.outputs) and out["target"].shape == (1, 3, 3)
    with pytest.raises(ValueError, match=r"rng_params must be uniforms in \[0, 1\) of shape \(1, 4\)"):
        nj.targets.point_prompts(np.ones((3, 4, 5), np.uint8), None, 2, 1, np.ones(4))
    with pytest.raises(ValueError, match="n_pos must be an integer >= 0"):
        nj.targets.point_prompts(np.ones((3, 4), np.uint8), None, -1, 1, np.zeros(1))
