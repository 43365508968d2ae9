"""The target registry and specs: one entry per target, margins, outputs."""

from __future__ import annotations

import numpy as np
import pytest

import neurons_jax as nj


def test_every_registered_target_has_a_spec_that_runs_on_a_batch():
    ids = np.random.default_rng(0).integers(0, 3, (2, 4, 9, 10)).astype(np.uint32)
    kwargs = {"point_prompts": {"n_pos": 1, "n_neg": 1}}
    for name in nj.targets.registry_names():
        spec = nj.targets.make(name, **kwargs.get(name, {}))
        params = spec.draw(np.random.default_rng(1), batch=2)
        out = spec(ids, voxel_size=(40, 8, 8), params=params)
        assert tuple(out) == spec.outputs and spec.outputs[0] == "target", name
        assert out["target"].shape[-1] == spec.channels, name
        m = spec.margin((40, 8, 8))
        assert len(m) == 3 and all(isinstance(v, int) and v >= 0 for v in m), name


def test_register_refuses_a_clash_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        nj.targets.register("lsd", nj.targets.Affinities)
    with pytest.raises(KeyError, match="unknown target 'nope'"):
        nj.targets.get("nope")
    with pytest.raises(TypeError, match="lacks margin"):
        nj.targets.register("bad", int)
