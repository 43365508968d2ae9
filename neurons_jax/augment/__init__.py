"""EM augmentation: anisotropy-aware geometry with context margins, EM defects, intensity.

Parameters are drawn on the host (``draw``); applying them is a pure function of (context
patch, params) on NumPy or CuPy arrays. The sampler reads ``context_shape(cfg, patch, voxel)``
(the patch plus the margin the warp needs, fixed for a config), ``apply`` returns exactly
``patch_shape``: image float32 (integers / ``np.iinfo(dtype).max`` as ``stage.to_float_image``:
uint8 / 255, int16 / 32767, ...; floats cast), labels and masks with their dtype and values.
Every transform is one entry of ``augment.table`` (``table.register`` adds one).

Example:
    >>> import numpy as np
    >>> import neurons_jax as nj
    >>> cfg = nj.augment.AugmentConfig()
    >>> params = nj.augment.draw(cfg, np.random.default_rng(0), (16, 128, 128), (30, 6, 6))
    >>> ctx = np.random.default_rng(1).integers(0, 255, params.context_shape, dtype=np.uint8)
    >>> image, label, mask = nj.augment.apply(params, ctx)
    >>> image.shape
    (16, 128, 128)
"""

from __future__ import annotations

from . import table
from .apply import apply, apply_batch
from .config import AugmentConfig, context_shape, is_isotropic, margins
from .footprint import footprint
from .params import AugmentParams, draw, grow, identity

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "apply",
    "apply_batch",
    "context_shape",
    "draw",
    "footprint",
    "grow",
    "identity",
    "is_isotropic",
    "margins",
    "table",
]
