"""Augmentation parity cases shared by the CPU and GPU tests: every transform alone and full random
configs, anisotropic (planar) and isotropic cubes, several dtypes; and the comparison rule
(labels and masks bitwise, images within 1e-5)."""

from __future__ import annotations

import numpy as np

SINGLE = (
    "flip_prob", "rot90_prob", "transpose_xy_prob", "transpose_z_prob", "rotate_prob", "rotate_3d_prob",
    "scale_prob", "elastic_prob", "misalign_prob", "missing_section_prob", "low_contrast_prob", "line_prob",
    "charging_prob", "motion_blur_prob", "missing_part_prob", "contrast_prob", "brightness_prob",
    "gamma_prob", "section_intensity_prob", "blur_prob", "noise_prob",
)
IMAGE_DTYPES = (np.uint8, np.float32, np.uint16)
LABEL_DTYPES = (np.uint64, np.uint32, np.uint16, np.uint8, np.int32, np.int64)


def _config(field: str | None):
    from neurons_jax.augment import AugmentConfig

    if field is None:  # everything at 0.5
        return AugmentConfig(
            rotate_3d_prob=0.5, missing_section_prob=0.5, low_contrast_prob=0.5, line_prob=0.5,
            charging_prob=0.5, motion_blur_prob=0.5, missing_part_prob=0.5, blur_prob=0.5,
            misalign_prob=0.5,
        )
    if field == "flip_prob":
        return AugmentConfig.off(flip_prob=(1.0, 1.0, 1.0))
    return AugmentConfig.off(**{field: 1.0})


def parity_cases():
    """``(name, params_list, images, labels, masks)``: each transform alone and full random configs,
    anisotropic (planar) and isotropic cubes (z transposes, 3D path), several dtypes."""
    from neurons_jax import augment

    fields = [*SINGLE, None, None, None]
    n = 0
    for vs, patch in (((40, 4, 4), (5, 36, 36)), ((10, 10, 10), (12, 12, 12)), ((30, 6, 6), (1, 33, 29))):
        for field in fields:
            rng = np.random.default_rng(n)
            cfg = _config(field)
            params = [augment.draw(cfg, rng, patch, vs) for _ in range(3)]
            ctx = params[0].context_shape
            idt, ldt = IMAGE_DTYPES[n % 3], LABEL_DTYPES[n % 6]
            if idt == np.float32:
                img = rng.random((3, *ctx), dtype=np.float32)
            else:
                img = rng.integers(0, np.iinfo(idt).max, (3, *ctx), dtype=idt)
            top = np.iinfo(ldt).max
            ids = np.array([0, 1, 2, 3, top // 2, top - 1], dtype=ldt)
            lab = ids[rng.integers(0, len(ids), (3, *ctx))]
            mask = rng.random((3, *ctx)) < 0.5
            yield f"{field or 'all'}-{vs[0]}nm-{patch}", params, img, lab, mask
            n += 1


def assert_parity(ref, got, name: str) -> None:
    """Labels and masks bitwise, images within 1e-5."""
    img, lab, mask = (None if a is None else np.asarray(a) for a in got)
    assert img.dtype == np.float32 and img.shape == ref[0].shape, name
    assert np.abs(img - ref[0]).max() <= 1e-5, (name, float(np.abs(img - ref[0]).max()))
    assert lab.dtype == ref[1].dtype and np.array_equal(lab, ref[1]), name
    assert mask.dtype == ref[2].dtype and np.array_equal(mask, ref[2]), name


def border_params():
    """Params whose source coordinates fall just below 0 (in-plane, then in z)."""
    from neurons_jax.augment.params import identity

    p = identity((3, 8, 8))
    p.misalign = np.full((3, 2), -0.5, np.float32)  # every section half a voxel up and left
    q = identity((3, 8, 8))
    q.affine = np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1]], np.float32)  # z = k + 0.1 (y - 3.5)
    assert p.planar and not q.planar
    return p, q
