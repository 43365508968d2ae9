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
from . import footprint, table


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


def _check_box(params, origin, arrays) -> tuple[np.ndarray, tuple[int, ...]]:
    """``origin`` as int64 (3,) and the common shape of ``arrays``, checked to lie in the context."""
    o = np.asarray(origin, np.int64).reshape(-1)
    shapes = {tuple(np.shape(a)) for a in arrays if a is not None}
    if len(shapes) > 1:
        raise ValueError(f"image/label/mask: expected one box shape, got {sorted(shapes)}")
    shape = shapes.pop() if shapes else tuple(params.context_shape)
    if o.shape != (3,) or len(shape) != 3 or not footprint.covers(params, o, shape):
        raise ValueError(
            f"origin: the box origin {o.tolist()} + shape {list(shape)} must lie inside "
            f"params.context_shape {list(params.context_shape)}"
        )
    return o, shape


def apply(params, image=None, label=None, mask=None, origin=None):
    """Augment one sample: arrays of ``params.context_shape`` -> ``params.patch_shape``.

    With ``origin`` the arrays are a box of the context starting at ``origin`` (z, y, x), e.g.
    ``footprint(params)``: the box must hold every voxel the warp reads, and the output equals
    that of the whole context. Returns ``(image float32 | None, label | None, mask | None)``;
    absent inputs stay ``None``."""
    xp = array_module(image, label, mask)
    if origin is None:
        for name, a in (("image", image), ("label", label), ("mask", mask)):
            # checked before either backend runs: the GPU kernels index the context without bounds
            if a is not None and np.shape(a) != tuple(params.context_shape):
                raise ValueError(
                    f"{name}: expected shape {tuple(params.context_shape)} (params.context_shape), "
                    f"got {np.shape(a)}"
                )
    else:
        origin, _ = _check_box(params, origin, (image, label, mask))
    if xp is not np:
        from . import _gpu

        outs = _gpu.apply_batch(
            [params], *(None if a is None else a[None] for a in (image, label, mask)),
            **({} if origin is None else {"origins": origin[None],
                                          "shapes": np.asarray(np.shape(next(a for a in (image, label, mask)
                                                                             if a is not None)))[None]}),
        )
        return tuple(None if o is None else o[0] for o in outs)
    if origin is None:
        img, lab, msk = table.warp_transform().cpu(params, image, label, mask)
    else:
        img, lab, msk = table.warp_transform().cpu(params, image, label, mask, origin=origin)
    if img is not None:
        img = image_ops(params, img)
    return img, lab, msk


def apply_batch(params_list: Sequence, images=None, labels=None, masks=None, boxes=None):
    """Augment a batch: ``(B, *context_shape)`` arrays -> ``(B, *patch_shape)``.

    Without ``boxes`` all params must share ``patch_shape`` and ``context_shape`` (they do when
    drawn with one config, patch shape and voxel size). With ``boxes`` (B, 2, 3) int
    ``[origin, shape]`` per sample, row ``i`` of the ``(B, *S)`` arrays holds sample ``i``'s box of
    its own context at its low corner (the rest is never read); the params then only share
    ``patch_shape``. CuPy arrays run one kernel launch per operation for the whole batch; NumPy
    arrays loop over the samples."""
    params_list = list(params_list)
    if not params_list:
        raise ValueError("params_list: expected at least one AugmentParams, got an empty list")
    p0 = params_list[0]
    for i, p in enumerate(params_list):
        if p.patch_shape != p0.patch_shape or (boxes is None and p.context_shape != p0.context_shape):
            raise ValueError(
                f"params_list[{i}]: patch/context shapes {p.patch_shape}/{p.context_shape} differ from "
                f"params_list[0]'s {p0.patch_shape}/{p0.context_shape}"
            )
    b = len(params_list)
    if boxes is not None:
        boxes = np.asarray(boxes, np.int64)
        if boxes.shape != (b, 2, 3):
            raise ValueError(f"boxes: expected shape {(b, 2, 3)} ([origin, shape] per sample), got {boxes.shape}")
    for name, a in (("images", images), ("labels", labels), ("masks", masks)):
        if a is None:
            continue
        if boxes is None and tuple(a.shape) != (b, *p0.context_shape):
            raise ValueError(f"{name}: expected shape {(b, *p0.context_shape)}, got {tuple(a.shape)}")
        if boxes is not None and (a.ndim != 4 or a.shape[0] != b or np.any(boxes[:, 1] > np.asarray(a.shape[1:]))):
            raise ValueError(f"{name}: expected (B={b}, Z, Y, X) holding every box {boxes[:, 1].tolist()}, "
                             f"got {tuple(a.shape)}")
    if boxes is not None:
        for i, p in enumerate(params_list):
            if not footprint.covers(p, boxes[i, 0], boxes[i, 1]):
                raise ValueError(f"boxes[{i}]: origin {boxes[i, 0].tolist()} + shape {boxes[i, 1].tolist()} "
                                 f"must lie inside params_list[{i}].context_shape {list(p.context_shape)}")
    xp = array_module(images, labels, masks)
    if xp is not np:
        from . import _gpu

        if boxes is None:
            return _gpu.apply_batch(params_list, images, labels, masks)
        return _gpu.apply_batch(params_list, images, labels, masks, origins=np.ascontiguousarray(boxes[:, 0]),
                                shapes=np.ascontiguousarray(boxes[:, 1]))

    def row(a, i):
        if a is None:
            return None
        if boxes is None:
            return a[i]
        return a[(i, *(slice(0, int(n)) for n in boxes[i, 1]))]

    outs = [
        apply(p, *(row(a, i) for a in (images, labels, masks)), origin=None if boxes is None else boxes[i, 0])
        for i, p in enumerate(params_list)
    ]
    if b == 1:  # one sample (the Loader's CPU stage): a view, not a copy
        return tuple(None if o is None else o[None] for o in outs[0])
    return tuple(
        None if a is None else np.stack([o[j] for o in outs]) for j, a in enumerate((images, labels, masks))
    )
