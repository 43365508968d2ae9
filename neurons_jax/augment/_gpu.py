"""CuPy backend of ``apply_batch``: the GPU entries of ``augment.table``'s built-in transforms.

``run_batch`` runs the table on a batch: the warp entry (``warp_batch``: ``kernels/augment_warp.cu``
once for image + labels + mask of the whole batch), then the GPU entry of every image transform
that at least one sample uses (``pointwise_batch``, ``motion_batch``, ``blur_batch``,
``noise_batch``: one ``augment_image.cu`` launch each, blur two). Each entry packs its params into
small host arrays (``pack_warp``, ``pack_pointwise``, ...) uploaded in one go, and gets a
``GpuBatch``: the params, an array module and a ``kernel(file, expression) -> run(n, args)``
factory, so the same code runs on CuPy (``apply_batch``) and on a host build of the kernels in
the tests. An entry must leave the samples it does not apply to unchanged.

Images of every dtype ``stage.to_float_image`` takes are read with its scaling (integers divided
by ``np.iinfo(dtype).max``, floats cast): ``IMAGE_CTYPES`` are read by the warp kernel directly,
64-bit integers, other floats and bool are converted on the device first.

Example (GPU only):
    >>> import cupy as cp                                        # doctest: +SKIP
    >>> img, lab, _ = apply_batch(params_list, cp.asarray(ctx_images), cp.asarray(ctx_labels))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import per_device
from . import defects, grid, intensity

F32, I32 = np.float32, np.int32
WARP, IMAGE = "augment_warp.cu", "augment_image.cu"
_CTYPES = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
# image dtypes the warp kernel reads itself (TI of augment_warp<TI, TL, TM>), with their C types
IMAGE_CTYPES = {
    "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int",
    "int8": "signed char", "int16": "short", "int32": "int", "float32": "float",
}


@dataclass
class GpuBatch:
    """What a transform's GPU entry gets: the batch's params and how to run work on the device.

    ``kernel(file, expression)`` returns ``run(n_threads, args)`` for a kernel of ``kernels/``;
    ``noise_table`` is the device copy of ``intensity.normal_table()`` (None: upload one);
    ``origins``/``shapes``: ``(B, 3)`` host ints, the box of each sample's context that its row
    of the input arrays holds (None: the whole context, see ``apply_batch``)."""

    params: list
    xp: Any
    kernel: Callable
    noise_table: Any = None
    origins: Any = None
    shapes: Any = None

    def active(self, op) -> np.ndarray:
        """``(B,)`` bool: which samples ``op`` (an ``Op`` or a ``Transform``) applies to."""
        return np.array([bool(op.active(p)) for p in self.params])


def boxes(params_list, row_shape, origins=None, shapes=None) -> tuple[np.ndarray, np.ndarray]:
    """``(origins, shapes)`` ``(B, 3)`` int32 of the context box each input row holds.

    Default origin 0; default shape ``min(row_shape, context_shape - origin)`` (the box at the
    row's low corner reaches the context's far border or the row's end)."""
    b = len(params_list)
    ctx = np.array([p.context_shape for p in params_list], np.int64).reshape(b, 3)
    org = np.zeros((b, 3), np.int64) if origins is None else np.asarray(origins, np.int64)
    if org.shape != (b, 3) or (org < 0).any():
        raise ValueError(f"origins: expected ({b}, 3) integers >= 0, got {np.asarray(origins).tolist()}")
    row = np.asarray(row_shape, np.int64)
    shp = np.minimum(row, ctx - org) if shapes is None else np.asarray(shapes, np.int64)
    if shp.shape != (b, 3) or (shp < 1).any() or (shp > row).any() or (org + shp > ctx).any():
        raise ValueError(
            f"shapes: expected ({b}, 3) box shapes >= 1 within the rows {tuple(row_shape)} and with "
            f"origin + shape <= context_shape; got origins {org.tolist()}, shapes {shp.tolist()}, "
            f"context shapes {ctx.tolist()}"
        )
    return org.astype(I32), shp.astype(I32)


def pack_warp(params_list, row_shape=None, origins=None, shapes=None) -> dict:
    """Host arrays for ``augment_warp`` (see the kernel's header for the layout); ``row_shape``:
    the inputs' ``(SZ, SY, SX)`` (default: the first sample's context shape)."""
    b = len(params_list)
    p0 = params_list[0]
    pz = p0.patch_shape[0]
    fpar = np.zeros((b, 12), F32)
    ipar = np.zeros((b, 8), I32)
    org, shp = boxes(params_list, p0.context_shape if row_shape is None else row_shape, origins, shapes)
    gpar = np.concatenate([np.array([p.context_shape for p in params_list], I32).reshape(b, 3), org, shp], 1)
    grids = [p for p in params_list if p.elastic is not None]
    gshape = grids[0].elastic.shape[1:] if grids else (1, 1, 1)
    spacing = grids[0].elastic_spacing if grids else (1.0, 1.0, 1.0)
    elastic = np.zeros((b, 3, *gshape), F32) if grids else np.zeros(1, F32)
    has_mis = any(p.misalign is not None for p in params_list)
    misalign = np.zeros((b, pz, 2), F32) if has_mis else np.zeros(1, F32)
    for i, p in enumerate(params_list):
        fpar[i, :9] = np.asarray(p.affine, F32).ravel()
        ipar[i, :3] = p.perm
        ipar[i, 3:6] = p.flip
        ipar[i, 6] = p.planar
        flags = 0
        if p.elastic is not None:
            if p.elastic.shape[1:] != gshape or tuple(p.elastic_spacing) != tuple(spacing):
                raise ValueError(
                    f"params_list[{i}].elastic: grid {p.elastic.shape[1:]} / spacing {p.elastic_spacing} "
                    f"differ from the batch's {gshape} / {spacing} (draw them with one config)"
                )
            elastic[i] = p.elastic
            flags |= 1
        if p.misalign is not None:
            misalign[i] = p.misalign
            flags |= 2
        ipar[i, 7] = flags
    out = {"fpar": fpar, "ipar": ipar, "elastic": elastic, "misalign": misalign, "gshape": gshape,
           "gpar": np.ascontiguousarray(gpar, I32)}
    for ax, name in enumerate("zyx"):
        if grids:
            w, idx = grid.spline_table(p0.patch_shape[ax], gshape[ax], float(spacing[ax]))
        else:
            w, idx = np.zeros((1, 4), F32), np.zeros(1, I32)
        out["w" + name], out["i" + name] = w, idx
    return out


def pack_pointwise(params_list) -> dict:
    """Host arrays for ``augment_pointwise`` (see the kernel's header for the layout)."""
    b = len(params_list)
    pz = params_list[0].patch_shape[0]
    zsrc = np.tile(np.arange(pz, dtype=I32), (b, 1))
    sec = np.zeros((b, pz, 4), F32)
    sec[:, :, 0] = 1.0
    sec[:, :, 1] = 1.0
    spar = np.zeros((b, 4), F32)
    nl = max([0 if p.lines is None else len(p.lines) for p in params_list] + [1])
    nb = max([0 if p.blobs is None else len(p.blobs) for p in params_list] + [1])
    lines, nlines = np.zeros((b, nl, 8), F32), np.zeros(b, I32)
    blobs, nblobs = np.zeros((b, nb, 7), F32), np.zeros(b, I32)
    low = False
    for i, p in enumerate(params_list):
        if p.zsrc is not None:
            zsrc[i] = p.zsrc
        if p.low_contrast is not None:
            sec[i, :, 0] = p.low_contrast
            low = True
        if p.intensity:
            sec[i, :, 1] = p.section_scale
            sec[i, :, 2] = p.section_shift
            spar[i, 0], spar[i, 1] = 1.0, p.gamma
        if p.blank is not None:
            sec[i, :, 3] = p.blank
        spar[i, 2] = p.missing_value
        if p.lines is not None:
            lines[i, : len(p.lines)], nlines[i] = p.lines, len(p.lines)
        if p.blobs is not None:
            blobs[i, : len(p.blobs)], nblobs[i] = p.blobs, len(p.blobs)
    return {"zsrc": zsrc, "sec": sec, "spar": spar, "lines": lines, "nlines": nlines, "blobs": blobs,
            "nblobs": nblobs, "nl": nl, "nb": nb, "low_contrast": low}


def pack_motion(params_list) -> dict | None:
    """Host arrays for ``augment_motion``; None when no sample has a motion-blurred section."""
    b = len(params_list)
    pz = params_list[0].patch_shape[0]
    sec_taps, taps = np.full((b, pz), -1, I32), []
    for i, p in enumerate(params_list):
        for z, length, angle in () if p.motion is None else p.motion:
            sec_taps[i, int(z)] = len(taps)
            taps.append(defects.motion_taps(length, angle))
    if not taps:
        return None
    maxt = max(len(t) for t in taps)
    tap_arr = np.zeros((len(taps), maxt, 2), I32)
    for j, t in enumerate(taps):
        tap_arr[j, : len(t)] = t
    return {"sec_taps": sec_taps, "taps": tap_arr, "ntaps": np.array([len(t) for t in taps], I32), "maxt": maxt}


def pack_blur(params_list) -> dict:
    """Host arrays for ``augment_blur``: centred taps ``(B, 2 rmax + 1)`` and radii ``(B,)``."""
    radii = [len(intensity.gaussian_weights(float(p.blur_sigma))) // 2 for p in params_list]
    rmax = max(radii)
    w = np.zeros((len(params_list), 2 * rmax + 1), F32)
    for i, p in enumerate(params_list):
        w[i, rmax - radii[i] : rmax + radii[i] + 1] = intensity.gaussian_weights(float(p.blur_sigma))
    return {"w": w, "radii": np.asarray(radii, I32), "rmax": rmax}


def pack_noise(params_list) -> dict:
    """Host arrays for ``augment_noise``: sigma ``(B,)`` (0: untouched) and keys ``(B,)``."""
    sigma = np.zeros(len(params_list), F32)
    keys = np.zeros(len(params_list), np.uint32)
    for i, p in enumerate(params_list):
        if p.noise_sigma > 0:
            sigma[i], keys[i] = p.noise_sigma, intensity.noise_key(p.noise_seed)
    return {"sigma": sigma, "keys": keys}


def _image_dtype(xp, images):
    """``(device image the warp kernel reads, its C type)`` with ``stage.to_float_image``'s scaling."""
    dt = np.dtype(images.dtype)
    if dt.name in IMAGE_CTYPES:
        return images, IMAGE_CTYPES[dt.name]
    if dt.kind in "iu":  # 64-bit integers: converted here, as to_float_image does
        return images.astype(F32) / F32(np.iinfo(dt).max), "float"
    if dt.kind in "fb":
        return images.astype(F32), "float"
    raise TypeError(f"images: expected an integer, float or bool dtype, got {dt}")


def _bits(xp, a):
    """``(unsigned view, C type)`` of a label/mask array, or a dummy for ``None``."""
    if a is None:
        return xp.zeros(1, np.uint8), "unsigned char"
    dt = np.dtype(a.dtype)
    if dt.kind not in "biu" or dt.itemsize not in _CTYPES:
        raise TypeError(f"labels/masks: expected an integer or bool dtype of 1, 2, 4 or 8 bytes, got {dt}")
    return a.view(f"uint{8 * dt.itemsize}"), _CTYPES[dt.itemsize]


def run_batch(params_list, images, labels, masks, xp, kernel: Callable, noise_table=None, origins=None,
              shapes=None):
    """The table on a batch of ``xp`` arrays with ``kernel(file, expr) -> run(n, args)``."""
    from . import table

    batch = GpuBatch(list(params_list), xp, kernel, noise_table, origins, shapes)
    img, lab, msk = table.warp_transform().gpu(batch, images, labels, masks)
    if img is not None:
        img = image_ops(batch, img)
    return img, lab, msk


def image_ops(batch: GpuBatch, img):
    """Every image transform of the table that a sample of the batch uses, in table order."""
    from . import table

    for t in table.image_transforms():
        if not any(t.active(p) for p in batch.params):
            continue
        if t.gpu is None:
            raise TypeError(
                f"augment transform {t.name!r} has no GPU entry (gpu=None): give one to "
                "table.register or run the batch on NumPy arrays"
            )
        img = t.gpu(batch, img)
        if tuple(img.shape) != (len(batch.params), *batch.params[0].patch_shape) or img.dtype != F32:
            raise TypeError(
                f"augment transform {t.name!r}: its GPU entry returned {img.dtype} {tuple(img.shape)}, "
                f"expected float32 {(len(batch.params), *batch.params[0].patch_shape)}"
            )
        img = _contiguous(batch.xp, img)
    return img


def _contiguous(xp, a):
    return a if a.flags.c_contiguous else xp.ascontiguousarray(a)


# ---------------------------------------------------------------- the built-in GPU entries
def warp_batch(batch: GpuBatch, images, labels, masks):
    """The fused warp of the whole batch: one ``augment_warp`` launch for image, labels, mask."""
    params_list, xp, kernel = batch.params, batch.xp, batch.kernel
    p0 = params_list[0]
    b = len(params_list)
    pz, py, px = p0.patch_shape
    first = next(a for a in (images, labels, masks) if a is not None)
    sz, sy, sx = (int(n) for n in first.shape[1:])
    for name, a in (("images", images), ("labels", labels), ("masks", masks)):
        if a is not None and tuple(a.shape) != (b, sz, sy, sx):
            raise ValueError(f"{name}: expected shape {(b, sz, sy, sx)} (the other arrays'), got {tuple(a.shape)}")
    total = b * pz * py * px
    if pz * py * px >= 2**31:
        raise ValueError(f"patch_shape {p0.patch_shape}: the GPU kernels take patches below 2**31 voxels")
    i32, i64 = np.int32, np.int64
    contig = [None if a is None else xp.ascontiguousarray(a) for a in (images, labels, masks)]
    images, labels, masks = contig
    if images is not None:
        img_in, ti = _image_dtype(xp, images)
        img_out = xp.empty((b, pz, py, px), F32)
    else:
        img_in, ti, img_out = xp.zeros(1, np.uint8), "unsigned char", xp.zeros(1, F32)
    lab_in, tl = _bits(xp, labels)
    msk_in, tm = _bits(xp, masks)
    lab_out = xp.empty((b, pz, py, px), lab_in.dtype) if labels is not None else xp.zeros(1, lab_in.dtype)
    msk_out = xp.empty((b, pz, py, px), msk_in.dtype) if masks is not None else xp.zeros(1, msk_in.dtype)
    pk = pack_warp(params_list, (sz, sy, sx), batch.origins, batch.shapes)
    d = {k: xp.asarray(v) for k, v in pk.items() if isinstance(v, np.ndarray)}
    gz, gy, gx = pk["gshape"]
    kernel(WARP, f"augment_warp<{ti}, {tl}, {tm}>")(
        total,
        (img_in, img_out, lab_in, lab_out, msk_in, msk_out, d["fpar"], d["ipar"], d["elastic"],
         d["misalign"], d["wz"], d["iz"], d["wy"], d["iy"], d["wx"], d["ix"], d["gpar"], i32(pz),
         i32(py), i32(px), i32(sz), i32(sy), i32(sx), i32(gz), i32(gy), i32(gx), i32(images is not None),
         i32(labels is not None), i32(masks is not None), i64(total)),
    )
    return (
        img_out if images is not None else None,
        lab_out.view(labels.dtype) if labels is not None else None,
        msk_out.view(masks.dtype) if masks is not None else None,
    )


def _dims(img):
    _, pz, py, px = img.shape
    return np.int32(pz), np.int32(py), np.int32(px)


def pointwise_batch(batch: GpuBatch, img):
    """Sections, intensity, lines and blobs: one ``augment_pointwise`` launch (new array)."""
    xp = batch.xp
    pk = pack_pointwise(batch.params)
    means = defects.section_means(img) if pk["low_contrast"] else xp.zeros(1, F32)
    out = xp.empty_like(img)
    total = img.size
    batch.kernel(IMAGE, "augment_pointwise")(
        total,
        (img, out, xp.asarray(pk["zsrc"]), xp.asarray(pk["sec"]), xp.ascontiguousarray(means),
         xp.asarray(pk["spar"]), xp.asarray(pk["lines"]), xp.asarray(pk["nlines"]), xp.asarray(pk["blobs"]),
         xp.asarray(pk["nblobs"]), *_dims(img), np.int32(pk["nl"]), np.int32(pk["nb"]), np.int64(total)),
    )
    return out


def motion_batch(batch: GpuBatch, img):
    """Motion blur of the flagged sections: one ``augment_motion`` launch (new array)."""
    pk = pack_motion(batch.params)
    if pk is None:
        return img
    xp = batch.xp
    out = xp.empty_like(img)
    total = img.size
    batch.kernel(IMAGE, "augment_motion")(
        total,
        (img, out, xp.asarray(pk["sec_taps"]), xp.asarray(pk["taps"]), xp.asarray(pk["ntaps"]),
         np.int32(pk["maxt"]), *_dims(img), np.int64(total)),
    )
    return out


def blur_batch(batch: GpuBatch, img):
    """Separable Gaussian blur: two ``augment_blur`` launches (y into a temporary, x back)."""
    pk = pack_blur(batch.params)
    if pk["rmax"] == 0:
        return img
    xp = batch.xp
    w, radii, rmax = xp.asarray(pk["w"]), xp.asarray(pk["radii"]), np.int32(pk["rmax"])
    tmp = xp.empty_like(img)
    total = np.int64(img.size)
    run = batch.kernel(IMAGE, "augment_blur")
    run(img.size, (img, tmp, w, radii, rmax, np.int32(1), *_dims(img), total))
    run(img.size, (tmp, img, w, radii, rmax, np.int32(2), *_dims(img), total))
    return img


def noise_batch(batch: GpuBatch, img):
    """Hashed Gaussian noise, in place: one ``augment_noise`` launch."""
    pk = pack_noise(batch.params)
    xp = batch.xp
    _, pz, py, px = img.shape
    tab = xp.asarray(intensity.normal_table()) if batch.noise_table is None else batch.noise_table
    batch.kernel(IMAGE, "augment_noise")(
        img.size,
        (img, xp.asarray(pk["sigma"]), xp.asarray(pk["keys"]), tab, np.int64(pz * py * px), np.int64(img.size)),
    )
    return img


def _cupy_kernel(file: str, expression: str):
    from ..ops import _kernels

    fn = _kernels.get_function(file, expression)
    return lambda n, args: _kernels.launch(fn, n, args)


@per_device
def _device_table():
    """The noise table on the current GPU (uploaded once per device)."""
    import cupy

    return cupy.asarray(intensity.normal_table())


def apply_batch(params_list, images=None, labels=None, masks=None, origins=None, shapes=None):
    """CuPy ``apply_batch``: ``(B, SZ, SY, SX)`` -> ``(B, *patch_shape)`` on the inputs' GPU.

    Without ``origins`` row b is sample b's whole context (``S = context_shape``, or a larger row
    with the context at its low corner). With ``origins`` ``(B, 3)`` ints, row b holds the box
    ``[origins[b], origins[b] + shapes[b])`` of sample b's context (each sample may have its own
    ``context_shape``) at the row's low corner; ``shapes`` defaults to
    ``min(S, context_shape - origin)``. The rest of a row is padding, never read. One warp launch
    for the batch; positions as in the full context, taps clamped to the box."""
    import cupy

    from ..backend import on_device_of

    first = next(a for a in (images, labels, masks) if a is not None)
    with on_device_of(first):
        return run_batch(list(params_list), images, labels, masks, cupy, _cupy_kernel, _device_table(),
                         origins, shapes)
