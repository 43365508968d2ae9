"""The fused warp on the CPU: one resample for rotation, scale, elastic and misalignment.

Every output voxel of each array (image, labels, mask) is written once by one numba loop
(``_cpu_warp``): the exact symmetries (flips, rot90, transposes incl. z) are part of its index
computation, the source position is ``grid``'s float32 formula bit for bit. Planar params
(every output section reads one context section, always the case for anisotropic voxels)
sample bilinearly in-plane with the arithmetic of ``cv2.remap`` INTER_LINEAR (so the images equal
the former per-section cv2 path bitwise); off-plane params (isotropic out-of-plane rotation or
z displacement) lerp in z between the two bilinear values (lower tap ``floor(z)``, each tap
clamped: the border section is replicated). Labels and masks take the voxel at ``rint`` (half to
even) of the position, bits copied, border replicated.

Box origins: with ``origin=(oz, oy, ox)`` the arrays are the box ``[origin, origin + shape)`` of
the context (``footprint`` reads only what a sample's params need); positions are computed in
the full-context frame as always and taps clamped to the box, so a box that holds every tap
gives the full context's output exactly.

Images are scaled as ``stage.to_float_image`` scales an unaugmented patch: integers (signed or
not, any width) are divided by ``np.iinfo(dtype).max`` (uint8 / 255, int16 / 32767, ...), floats
and bool are cast to float32; the output image is always float32. Labels and masks keep their
dtype.

Example:
    >>> import numpy as np
    >>> from neurons_jax.augment.params import identity
    >>> img = np.arange(4 * 6 * 6, dtype=np.float32).reshape(4, 6, 6)
    >>> out, _, _ = warp(identity((2, 2, 2), (4, 6, 6)), img)
    >>> bool((out == img[1:3, 2:4, 2:4]).all())
    True
    >>> box, _, _ = warp(identity((2, 2, 2), (4, 6, 6)), img[1:3, 2:5, 1:5], origin=(1, 2, 1))
    >>> bool((box == out).all())
    True
"""

from __future__ import annotations

import numpy as np

from . import _cpu_warp

F32 = np.float32


def image_to_float(image: np.ndarray):
    """float32 copy/view of an image: integers / ``np.iinfo(dtype).max``, floats and bool cast.

    The same values as ``stage.to_float_image``: ``float32(v) / float32(max)``."""
    dt = image.dtype
    if dt.kind in "iu":
        return np.divide(image, F32(np.iinfo(dt).max), dtype=F32)
    if dt.kind == "f":
        return image.astype(F32, copy=False)
    if dt == np.bool_:
        return image.astype(F32)
    raise TypeError(f"image: expected an integer, float or bool dtype, got {dt}")


def check_origin(params, origin, shape) -> tuple[int, int, int] | None:
    """``origin`` as three ints with ``0 <= origin`` and ``origin + shape <= context_shape``."""
    if origin is None:
        return None
    o = tuple(int(v) for v in np.asarray(origin).reshape(-1))
    ctx = tuple(params.context_shape)
    if len(o) != 3 or any(v < 0 for v in o) or any(v + s > c for v, s, c in zip(o, shape, ctx)):
        raise ValueError(
            f"origin: expected 3 integers >= 0 with origin + {tuple(shape)} (the arrays' shape) <= "
            f"{ctx} (params.context_shape), got {origin!r}"
        )
    return o  # type: ignore[return-value]


def _check(params, name: str, a, shape):
    if a is None:
        return None
    a = np.asarray(a)
    if shape is None and a.shape != tuple(params.context_shape):
        raise ValueError(
            f"{name}: expected shape {tuple(params.context_shape)} (params.context_shape), got {a.shape}"
        )
    if shape is not None and (a.ndim != 3 or a.shape != shape):
        raise ValueError(f"{name}: expected the box shape {shape} of the other arrays (3-D), got {a.shape}")
    if name != "image" and a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected an integer or bool dtype, got {a.dtype}")
    if name == "image" and a.dtype.kind not in "biuf":
        image_to_float(a[:0])  # raises the dtype error
    return np.ascontiguousarray(a)


def warp(params, image=None, label=None, mask=None, origin=None):
    """``(image float32 | None, label | None, mask | None)`` of ``params.patch_shape``.

    The arrays are the whole context (``params.context_shape``, ``origin=None``) or one box of
    it at ``origin`` (every array the same shape)."""
    shape = None
    if origin is not None:
        given = [np.shape(a) for a in (image, label, mask) if a is not None]
        shape = given[0] if given else None
        if shape is not None and len(shape) != 3:
            raise ValueError(f"arrays: expected 3-D boxes (Z, Y, X), got shape {shape}")
        origin = check_origin(params, origin, shape if shape is not None else (0, 0, 0))
    image, label, mask = (_check(params, n, a, shape) for n, a in (("image", image), ("label", label), ("mask", mask)))
    return _cpu_warp.warp(params, image, label, mask, origin)
