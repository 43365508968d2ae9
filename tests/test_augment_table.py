"""augment.table: one entry per augmentation. A toy augmentation registered from this file alone
(config fields, draw, CPU function, GPU entry in CuPy array operations) runs on the CPU and the GPU
with parity, is skipped when inactive, and is gone again afterwards; the built-in table declares
every config field once and each op's ``active`` matches its solo config."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from augment_cases import assert_parity, parity_cases

from neurons_jax import augment
from neurons_jax.augment import AugmentConfig, intensity, table
from neurons_jax.augment.params import identity

CALLS = {"cpu": 0, "gpu": 0}


def draw_toy(d) -> None:
    if d.rng.random() < d.cfg.toy_prob:
        d.params.extra["toy"] = float(d.rng.uniform(*d.cfg.toy_gain))
        d.applied.append("toy")


def toy_cpu(params, img: np.ndarray) -> np.ndarray:
    CALLS["cpu"] += 1
    return img * np.float32(params.extra["toy"])


def toy_gpu(batch, img):
    CALLS["gpu"] += 1
    xp = batch.xp
    gain = np.array([p.extra.get("toy", 1.0) for p in batch.params], np.float32)
    on = xp.asarray(batch.active(TOY))[:, None, None, None]
    return xp.where(on, img * xp.asarray(gain)[:, None, None, None], img)


TOY = table.transform(
    "toy", fields={"toy_prob": 0.25, "toy_gain": (0.5, 1.5)}, draw=draw_toy,
    active=lambda p: "toy" in p.extra, cpu=toy_cpu, gpu=toy_gpu,
)


def _gone() -> bool:
    return "toy" not in {t.name for t in table.transforms()} and "toy_prob" not in AugmentConfig.off().extra


@pytest.fixture
def toy():
    CALLS.update(cpu=0, gpu=0)
    with table.registered(TOY):
        yield TOY
    assert _gone()


def test_registered_fields_are_config_fields(toy):
    assert AugmentConfig().toy_prob == 0.25 and AugmentConfig().toy_gain == (0.5, 1.5)
    cfg = AugmentConfig(toy_prob=1.0, rotate_prob=0.0)
    assert cfg.toy_prob == 1.0 and cfg.rotate_prob == 0.0 and dict(cfg.extra) == {"toy_prob": 1.0}
    off = AugmentConfig.off(toy_gain=(2.0, 3.0))
    assert off.toy_prob == 0.0 and off.noise_prob == 0.0 and off.toy_gain == (2.0, 3.0)
    r = off.replace(toy_prob=0.5)
    assert r.toy_prob == 0.5 and r.toy_gain == (2.0, 3.0) and off.toy_prob == 0.0
    assert dataclasses.replace(r, blur_prob=0.4).toy_prob == 0.5
    assert AugmentConfig(extra={"toy_prob": 0.1}).toy_prob == 0.1
    assert pickle.loads(pickle.dumps(r)) == r and hash(r) == hash(off.replace(toy_prob=0.5))
    with pytest.raises(ValueError, match="toy_prob"):
        AugmentConfig(toy_prob=1.5)
    with pytest.raises(ValueError, match="toy_gain"):
        AugmentConfig.off(toy_gain=(2.0, 1.0))
    with pytest.raises(TypeError, match="toy_typo"):
        AugmentConfig(toy_typo=1.0)


def test_toy_runs_on_the_cpu_after_the_builtin_transforms(toy):
    assert [t.name for t in table.image_transforms()][-2:] == ["noise", "toy"]
    rng = np.random.default_rng(0)
    p = augment.draw(AugmentConfig.off(toy_prob=1.0, noise_prob=1.0), rng, (4, 16, 16), (40, 4, 4))
    assert p.applied == ("noise", "toy") and 0.5 <= p.extra["toy"] <= 1.5
    assert pickle.loads(pickle.dumps(p)) == p
    img = rng.random(p.context_shape, dtype=np.float32)
    out = augment.apply(p, img)[0]
    assert CALLS["cpu"] == 1
    base = dataclasses.replace(p, extra={})
    assert np.array_equal(out, augment.apply(base, img)[0] * np.float32(p.extra["toy"]))


def test_before_places_the_entry_in_draw_and_apply_order():
    with table.registered(TOY, before="blur"):
        assert [t.name for t in table.image_transforms()] == ["pointwise", "motion_blur", "toy", "blur", "noise"]
        p = augment.draw(AugmentConfig.off(toy_prob=1.0, blur_prob=1.0), 3, (3, 20, 20), (40, 4, 4))
        assert p.applied == ("toy", "blur")
        img = np.random.default_rng(1).random(p.context_shape, dtype=np.float32)
        out = augment.apply(p, img)[0]
    assert _gone()
    ref = intensity.gaussian_blur(p, img * np.float32(p.extra["toy"]))
    assert np.array_equal(out, ref)


@pytest.mark.gpu
def test_toy_on_the_gpu_matches_the_cpu(toy):
    cp = pytest.importorskip("cupy")
    count = 0
    for name, params, img, lab, mask in parity_cases(ops={"toy"}):
        ref = augment.apply_batch(params, img, lab, mask)
        got = augment.apply_batch(params, cp.asarray(img), cp.asarray(lab), cp.asarray(mask))
        assert_parity(ref, tuple(g.get() for g in got), name)
        if name.startswith("toy_prob"):
            assert all(p.applied[-1] == "toy" for p in params), name
            count += 1
    assert count == 3 and CALLS["gpu"] > 3 and CALLS["cpu"] > 9


def _draw_batch(cfg, seed):
    # one generator per sample, as the Loader's random_map hands out: the toy's draw, last in the
    # table, consumes after every built-in draw of its sample
    params = [augment.draw(cfg, np.random.default_rng(seed + i), (4, 24, 24), (40, 4, 4)) for i in range(4)]
    img = np.random.default_rng(seed).integers(0, 256, (4, *params[0].context_shape), dtype=np.uint8)
    return params, img


def _skipped_when_inactive(xp):
    ref_params, img = _draw_batch(AugmentConfig(), 5)
    ref = augment.apply_batch(ref_params, xp.asarray(img))[0]
    CALLS.update(cpu=0, gpu=0)
    with table.registered(TOY):
        params, img2 = _draw_batch(AugmentConfig(toy_prob=0.0), 5)
        got = augment.apply_batch(params, xp.asarray(img2))[0]
    assert _gone()
    assert params == ref_params and np.array_equal(img, img2)  # its draw comes last: nothing moves
    assert CALLS == {"cpu": 0, "gpu": 0}
    return ref, got


def test_inactive_toy_is_skipped_on_the_cpu():
    ref, got = _skipped_when_inactive(np)
    assert np.array_equal(ref, got)


@pytest.mark.gpu
def test_inactive_toy_is_skipped_on_the_gpu():
    cp = pytest.importorskip("cupy")
    ref, got = _skipped_when_inactive(cp)
    assert np.array_equal(ref.get(), got.get())


@pytest.mark.gpu
def test_a_transform_without_gpu_entry_fails_on_the_gpu_only():
    cp = pytest.importorskip("cupy")
    cpu_only = table.transform(
        "cpu_only", fields={"cpu_only_prob": 1.0}, draw=lambda d: d.params.extra.update(cpu_only=2.0),
        active=lambda p: "cpu_only" in p.extra, cpu=lambda p, img: img * np.float32(p.extra["cpu_only"]), gpu=None,
    )
    with table.registered(cpu_only):
        p = augment.draw(AugmentConfig.off(), 0, (2, 8, 8), (40, 4, 4))
        img = np.ones((1, *p.context_shape), np.float32)
        assert np.all(augment.apply_batch([p], img)[0] == 2.0)
        with pytest.raises(TypeError, match="'cpu_only' has no GPU entry"):
            augment.apply_batch([p], cp.asarray(img))


def test_registration_errors_name_what_is_wrong():
    def t(name="extra_op", **kw):
        return table.transform(name, **{"fields": {"extra_op_prob": 0.0}, "draw": draw_toy,
                                        "active": lambda p: False, "cpu": toy_cpu, "gpu": None, **kw})

    with pytest.raises(ValueError, match="'noise' is already in the table"):
        table.register(t("noise"))
    with pytest.raises(ValueError, match="'blur_prob' is already a field of AugmentConfig"):
        table.register(t(fields={"blur_prob": 0.0}))
    with pytest.raises(ValueError, match="'replace' is already a field of AugmentConfig"):
        table.register(t(fields={"replace": 0.0}))
    with pytest.raises(ValueError, match="extra_op_prob: expected a probability"):
        table.register(t(fields={"extra_op_prob": 2.0}))
    with pytest.raises(ValueError, match="before: expected the name of an image transform"):
        table.register(t(), before="warp")
    with pytest.raises(ValueError, match="before: expected"):
        table.register(t(), before="nothing")
    with pytest.raises(ValueError, match="only the built-in warp"):
        table.register(dataclasses.replace(t(), warp=True))
    with pytest.raises(TypeError, match="cpu: expected a callable"):
        table.register(t(cpu=None))
    with pytest.raises(TypeError, match="expected a table.Transform"):
        table.register(TOY.ops[0])
    with pytest.raises(ValueError, match="built-in"):
        table.unregister("blur")
    with pytest.raises(KeyError, match="toy"):
        table.unregister("toy")
    # nothing of the failed registrations stayed behind
    assert [x.name for x in table.transforms()] == [x.name for x in table.BUILTIN]
    with pytest.raises(TypeError, match="extra_op_prob"):
        AugmentConfig(extra_op_prob=0.0)
    with pytest.raises(TypeError, match="extra_op_prob"):
        AugmentConfig(extra={"extra_op_prob": 0.0})
    with pytest.raises(AttributeError, match="toy_prob"):
        _ = AugmentConfig().toy_prob


def test_a_cpu_function_of_the_wrong_type_is_reported():
    bad = dataclasses.replace(TOY, cpu=lambda p, img: img.astype(np.float64))
    with table.registered(bad):
        p = augment.draw(AugmentConfig.off(toy_prob=1.0), 0, (2, 8, 8), (40, 4, 4))
        with pytest.raises(TypeError, match="'toy': its CPU function returned float64"):
            augment.apply(p, np.zeros(p.context_shape, np.float32))


# every probability the parity tests covered one by one before the table (nothing may get lost)
OLD_SINGLE = {
    "flip_prob", "rot90_prob", "transpose_xy_prob", "transpose_z_prob", "rotate_prob", "rotate_3d_prob",
    "scale_prob", "elastic_prob", "misalign_prob", "missing_section_prob", "low_contrast_prob", "line_prob",
    "charging_prob", "motion_blur_prob", "missing_part_prob", "contrast_prob", "brightness_prob",
    "gamma_prob", "section_intensity_prob", "blur_prob", "noise_prob",
}


def test_the_builtin_table_declares_every_field_once():
    table.check_table()
    owners = [op.name for op in table.ops() for _ in op.fields]
    fields = [f for op in table.ops() for f in op.fields]
    assert len(fields) == len(set(fields)) == len(owners)
    assert set(fields) | {"isotropy_ratio", "extra"} == {f.name for f in dataclasses.fields(AugmentConfig)}
    assert {name for name, _ in table.solo_cases()} == OLD_SINGLE
    assert [t.name for t in table.transforms()] == ["warp", "pointwise", "motion_blur", "blur", "noise"]


def test_each_op_is_active_exactly_under_its_solo_config():
    rng = np.random.default_rng(0)
    assert not any(op.active(identity((12, 12, 12))) for op in table.ops())
    for op in table.ops():
        for case in op.solo_cases():
            cfg = AugmentConfig.off(**case)
            for _ in range(3):
                p = augment.draw(cfg, rng, (12, 12, 12), (10, 10, 10))
                on = {o.name for o in table.ops() if o.active(p)}
                assert on == {op.name}, (case, p.applied, on)
                assert {t.name for t in table.transforms() if t.active(p)} == {
                    t.name for t in table.transforms() if op in t.ops}
