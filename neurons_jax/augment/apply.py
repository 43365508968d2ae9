"""``apply`` / ``apply_batch``: params + context patch -> augmented patch, NumPy or CuPy.

The backend follows the array type. Both run ``augment.table`` in order: the fused warp
(+ exact symmetries), then every image transform active for the sample (built-in: the
per-voxel pass of missing / low-contrast sections, contrast, brightness, gamma, lines,
charging, missing parts -> motion blur -> Gaussian blur -> noise; registered ones after).
Labels and masks only go through the warp (nearest, bits copied).

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

from ..backend import array_module
from . import table


def image_ops(params, img: np.ndarray) -> np.ndarray:
    """Every image transform of the table active for ``params``, on a float32 patch (CPU)."""
    for t in table.image_transforms():
        if t.active(params):
            img = t.cpu(params, img)
            if not isinstance(img, np.ndarray) or img.dtype != np.float32 or img.shape != tuple(params.patch_shape):
                raise TypeError(
                    f"augment transform {t.name!r}: its CPU function returned "
                    f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}, expected a "
                    f"float32 NumPy array of shape {tuple(params.patch_shape)}"
                )
    return img


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
    img, lab, msk = table.warp_transform().cpu(params, image, label, mask)
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
