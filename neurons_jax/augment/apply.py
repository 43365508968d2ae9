"""``apply`` / ``apply_batch``: params + context patch -> augmented patch, NumPy or CuPy.

The backend follows the array type. Order of operations (identical on both backends):
fused warp (+ exact symmetries) -> per-voxel pass (missing / low-contrast sections,
contrast, brightness, gamma, lines, charging, missing parts) -> motion blur -> Gaussian blur
-> noise. Labels and masks only go through the warp (nearest, bits copied).

Example:
    >>> import numpy as np
    >>> from neurons_jax import augment
    >>> cfg = augment.AugmentConfig()
    >>> p = augment.draw(cfg, np.random.default_rng(1), (8, 64, 64), (40, 4, 4))
    >>> img = np.zeros(p.context_shape, np.uint8)
    >>> lab = np.ones(p.context_shape, np.uint64)
    >>> out, lab_out, _ = augment.apply(p, img, lab)
    >>> out.shape, out.dtype, lab_out.dtype
    ((8, 64, 64), dtype('float32'), dtype('uint64'))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ops._backend import array_module
from . import defects, geometry, intensity


def image_ops(params, img: np.ndarray) -> np.ndarray:
    """Every image-only op after the warp, on a float32 ``patch_shape`` array (CPU)."""
    touched = (
        params.zsrc is not None or params.low_contrast is not None or params.intensity
        or params.blank is not None or params.lines is not None or params.blobs is not None
    )
    if touched:
        img = defects.pointwise(params, img)
    img = defects.motion_blur(params, img)
    img = intensity.gaussian_blur(params, img)
    return intensity.add_noise(params, img)


def apply(params, image=None, label=None, mask=None):
    """Augment one sample: arrays of ``params.context_shape`` -> ``params.patch_shape``.

    Returns ``(image float32 | None, label | None, mask | None)``; absent inputs stay ``None``."""
    xp = array_module(image, label, mask)
    for name, a in (("image", image), ("label", label), ("mask", mask)):
        # checked before either backend runs: the GPU kernels index the context without bounds
        if a is not None and np.shape(a) != tuple(params.context_shape):
            raise ValueError(
                f"{name}: expected shape {tuple(params.context_shape)} (params.context_shape), "
                f"got {np.shape(a)}"
            )
    if xp is not np:
        from . import _gpu

        outs = _gpu.apply_batch(
            [params], *(None if a is None else a[None] for a in (image, label, mask))
        )
        return tuple(None if o is None else o[0] for o in outs)
    img, lab, msk = geometry.warp(params, image, label, mask)
    if img is not None:
        img = image_ops(params, img)
    return img, lab, msk


def apply_batch(params_list: Sequence, images=None, labels=None, masks=None):
    """Augment a batch: ``(B, *context_shape)`` arrays -> ``(B, *patch_shape)``.

    All params must share ``patch_shape`` and ``context_shape`` (they do when drawn with one
    config, patch shape and voxel size). CuPy arrays run one kernel launch per operation for the
    whole batch; NumPy arrays loop over the samples."""
    params_list = list(params_list)
    if not params_list:
        raise ValueError("params_list: expected at least one AugmentParams, got an empty list")
    p0 = params_list[0]
    for i, p in enumerate(params_list):
        if p.patch_shape != p0.patch_shape or p.context_shape != p0.context_shape:
            raise ValueError(
                f"params_list[{i}]: patch/context shapes {p.patch_shape}/{p.context_shape} differ from "
                f"params_list[0]'s {p0.patch_shape}/{p0.context_shape}"
            )
    b = len(params_list)
    for name, a in (("images", images), ("labels", labels), ("masks", masks)):
        if a is not None and tuple(a.shape) != (b, *p0.context_shape):
            raise ValueError(f"{name}: expected shape {(b, *p0.context_shape)}, got {tuple(a.shape)}")
    xp = array_module(images, labels, masks)
    if xp is not np:
        from . import _gpu

        return _gpu.apply_batch(params_list, images, labels, masks)
    outs = [
        apply(p, *(None if a is None else a[i] for a in (images, labels, masks)))
        for i, p in enumerate(params_list)
    ]
    return tuple(
        None if a is None else np.stack([o[j] for o in outs]) for j, a in enumerate((images, labels, masks))
    )
