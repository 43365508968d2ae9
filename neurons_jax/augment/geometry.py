"""The fused warp on the CPU: one resample for rotation, scale, elastic and misalignment.

Planar params (every output section reads one context section, always the case for
anisotropic voxels) build each section's float32 map once (``grid``'s exact arithmetic) and run
``cv2.remap``: INTER_LINEAR on the float32 image (OpenCV >= 4.11 interpolates in float, within
1e-7 of exact bilinear), INTER_NEAREST on labels and masks viewed as same-width float/uint types
(nearest copies bits; 64-bit ids as two float32 channels; rounding is half-to-even like
``np.rint``). Off-plane params (isotropic out-of-plane rotation or z displacement) remap each
output section in bands, one per context section it reads (trilinear = two bilinear remaps
and a lerp in z). The exact symmetries are applied last as array views.

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
"""

from __future__ import annotations

import cv2
import numpy as np

from . import grid as _grid

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


def _nearest_view(a: np.ndarray) -> np.ndarray:
    """A view cv2.remap copies bitwise: 1/2-byte as uint8/uint16, 4-byte as float32, 8-byte as 2 x float32."""
    size = a.dtype.itemsize
    if size == 1:
        return a.view(np.uint8)
    if size == 2:
        return a.view(np.uint16)
    if size == 4:
        return a.view(F32)
    if size == 8:
        return a.view(F32).reshape(*a.shape, 2)
    raise TypeError(f"label/mask dtype {a.dtype} is not supported (expected 1, 2, 4 or 8 bytes)")


def _check(params, name: str, a):
    if a is None:
        return None
    a = np.asarray(a)
    if a.shape != tuple(params.context_shape):
        raise ValueError(
            f"{name}: expected shape {tuple(params.context_shape)} (params.context_shape), got {a.shape}"
        )
    if name != "image" and a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected an integer or bool dtype, got {a.dtype}")
    return np.ascontiguousarray(a)


def warp(params, image=None, label=None, mask=None):
    """``(image float32 | None, label | None, mask | None)`` of ``params.patch_shape``."""
    image, label, mask = (_check(params, n, a) for n, a in (("image", image), ("label", label), ("mask", mask)))
    img = None if image is None else image_to_float(image)
    if params.planar and params.perm[0] == 0:
        return _warp_planar(params, img, label, mask)  # symmetry folded into the maps
    if params.planar:
        outs = _warp_planar(params, img, label, mask, fold=False)
    else:
        outs = _warp_3d(params, img, label, mask)
    return tuple(
        None if o is None else np.ascontiguousarray(_grid.apply_sym(o, params.perm, params.flip)) for o in outs
    )


def _sym2d(a: np.ndarray, perm, flip) -> np.ndarray:
    """In-plane part of the symmetry applied to the last two axes of ``a`` (contiguous copy)."""
    lead = a.ndim - 2
    if flip[1]:
        a = a[(slice(None),) * lead + (slice(None, None, -1),)]
    if flip[2]:
        a = a[..., ::-1]
    if perm[1] == 2:
        a = np.swapaxes(a, -1, -2)
    return np.ascontiguousarray(a)


def _warp_planar(params, img, label, mask, fold: bool = True):
    """Section by section with cv2.remap; ``fold``: maps built directly in the output frame."""
    pz, py, px = params.patch_shape
    c = [F32((n - 1) / 2) for n in params.context_shape]
    a = params.affine.astype(F32)
    base = _grid.affine_offsets(a, (1, py, px), axes=(1, 2))
    base = np.stack([c[1] + base[0][0], c[2] + base[1][0]]).astype(F32)  # (2, Py, Px) canonical
    spl = None
    if params.elastic is not None:
        spl = _grid.spline_yx(params.elastic[1:], params.patch_shape, params.elastic_spacing)
    if fold and (params.flip[1] or params.flip[2] or params.perm[1] != 1):
        base = _sym2d(base, params.perm, params.flip)
        if spl is not None:
            spl = (_sym2d(spl[0], params.perm, params.flip), spl[1])
    oy, ox = base.shape[1:]
    sz = (c[0] + a[0, 0] * _grid.centred(pz)).astype(np.int64)  # exact integers when planar
    mis = params.misalign
    out_i = None if img is None else np.empty((pz, oy, ox), F32)
    out_l = None if label is None else np.empty((pz, oy, ox), label.dtype)
    out_m = None if mask is None else np.empty((pz, oy, ox), mask.dtype)
    lv = None if label is None else _nearest_view(label)
    mv = None if mask is None else _nearest_view(mask)
    for o in range(pz):
        k = pz - 1 - o if (fold and params.flip[0]) else o  # canonical section
        my, mx = base[0], base[1]
        if spl is not None:
            d = _grid.spline_z(spl[0], spl[1], k)
            my, mx = my + d[0], mx + d[1]
        if mis is not None:
            my, mx = my + mis[k, 0], mx + mis[k, 1]
        z = int(sz[k])
        if out_i is not None:
            out_i[o] = cv2.remap(img[z], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if out_l is not None:
            r = cv2.remap(lv[z], mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            out_l[o] = r.view(label.dtype).reshape(oy, ox)
        if out_m is not None:
            r = cv2.remap(mv[z], mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            out_m[o] = r.view(mask.dtype).reshape(oy, ox)
    return out_i, out_l, out_m


def _lerp(a, b, f):
    return a * (F32(1) - f) + b * f


def _warp_3d(params, img, label, mask):
    """Off-plane warp, section by section: each output section reads a few context sections.

    The source z of an output section varies smoothly, so its pixels split into bands by the
    context section they read (``floor(z)`` for the image, ``rint(z)`` for labels and masks);
    each band is one ``cv2.remap`` of its bounding box. Trilinear = lerp in z of two bilinear
    remaps (same arithmetic as the GPU kernel); nearest = one remap of the nearest section.
    """
    cz = params.context_shape[0]
    pz, py, px = params.patch_shape
    out_i = None if img is None else np.empty((pz, py, px), F32)
    out_l = None if label is None else np.empty((pz, py, px), label.dtype)
    out_m = None if mask is None else np.empty((pz, py, px), mask.dtype)
    lv = None if label is None else _nearest_view(label)
    mv = None if mask is None else _nearest_view(mask)
    for o, (sz, sy, sx) in enumerate(_grid.source_sections(params)):
        if out_i is not None:
            fl = np.floor(sz)
            f = sz - fl
            # lower tap floor(z), upper tap floor(z) + 1, each clamped (the border section is
            # replicated, as cv2 does in-plane): band -1 reads section 0 twice
            z0 = np.clip(fl.astype(np.int64), -1, cz - 1)
            for u, (r, c), m in _bands(z0):
                my, mx = sy[r, c], sx[r, c]
                a = cv2.remap(img[max(u, 0)], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                b = cv2.remap(img[min(u + 1, cz - 1)], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                out_i[o][r, c][m] = _lerp(a, b, f[r, c])[m]
        if out_l is not None or out_m is not None:
            nz = np.clip(np.rint(sz).astype(np.int64), 0, cz - 1)
            for u, (r, c), m in _bands(nz):
                my, mx = sy[r, c], sx[r, c]
                for src, view, out in ((label, lv, out_l), (mask, mv, out_m)):
                    if out is None:
                        continue
                    got = cv2.remap(view[u], mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
                    out[o][r, c][m] = got.view(src.dtype).reshape(m.shape)[m]
    return out_i, out_l, out_m


def _bands(z: np.ndarray):
    """(section, bounding-box slices, mask within the box) for each section index in ``z``."""
    lo, hi = int(z.min()), int(z.max())
    if lo == hi:
        yield lo, (slice(None), slice(None)), np.ones(z.shape, bool)
        return
    for u in range(lo, hi + 1):
        m = z == u
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(rows) == 0:
            continue
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        yield u, box, m[box]
