"""CuPy backend of ``apply_batch``: params packed into small arrays, one launch per operation.

``pack_warp`` / ``pack_image`` turn a list of params into a few host arrays (NumPy, uploaded
in one go); ``run_batch`` launches ``kernels/augment_warp.cu`` once for image + labels + mask of
the whole batch, then ``augment_image.cu`` once per image operation that any sample uses.
``run_batch`` only needs an array module and a ``kernel(file, expression) -> run(n, args)``
factory, so the same code runs on CuPy (``apply_batch``) and on a host build of the kernels in
the tests.

Example (GPU only):
    >>> import cupy as cp                                        # doctest: +SKIP
    >>> img, lab, _ = apply_batch(params_list, cp.asarray(ctx_images), cp.asarray(ctx_labels))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import defects, grid, intensity

F32, I32 = np.float32, np.int32
WARP, IMAGE = "augment_warp.cu", "augment_image.cu"
_CTYPES = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
_TABLES: dict = {}


def pack_warp(params_list) -> dict:
    """Host arrays for ``augment_warp`` (see the kernel's header for the layout)."""
    b = len(params_list)
    p0 = params_list[0]
    pz = p0.patch_shape[0]
    fpar = np.zeros((b, 12), F32)
    ipar = np.zeros((b, 8), I32)
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
    out = {"fpar": fpar, "ipar": ipar, "elastic": elastic, "misalign": misalign, "gshape": gshape}
    for ax, name in enumerate("zyx"):
        if grids:
            w, idx = grid.spline_table(p0.patch_shape[ax], gshape[ax], float(spacing[ax]))
        else:
            w, idx = np.zeros((1, 4), F32), np.zeros(1, I32)
        out["w" + name], out["i" + name] = w, idx
    return out


def pack_image(params_list) -> dict:
    """Host arrays for ``augment_image`` (None where no sample of the batch uses an op)."""
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
    sec_taps, taps = np.full((b, pz), -1, I32), []
    radii = [len(intensity.gaussian_weights(float(p.blur_sigma))) // 2 for p in params_list]
    rmax = max(radii)
    w = np.zeros((b, 2 * rmax + 1), F32)
    sigma = np.zeros(b, F32)
    keys = np.zeros(b, np.uint32)
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
        for z, length, angle in () if p.motion is None else p.motion:
            sec_taps[i, int(z)] = len(taps)
            taps.append(defects.motion_taps(length, angle))
        g = intensity.gaussian_weights(float(p.blur_sigma))
        w[i, rmax - radii[i] : rmax + radii[i] + 1] = g
        if p.noise_sigma > 0:
            sigma[i], keys[i] = p.noise_sigma, intensity.noise_key(p.noise_seed)
    pointwise = any(
        p.zsrc is not None or p.low_contrast is not None or p.intensity or p.blank is not None
        or p.lines is not None or p.blobs is not None for p in params_list
    )
    maxt = max([len(t) for t in taps] + [1])
    tap_arr = np.zeros((max(len(taps), 1), maxt, 2), I32)
    for j, t in enumerate(taps):
        tap_arr[j, : len(t)] = t
    return {
        "pointwise": (zsrc, sec, spar, lines, nlines, blobs, nblobs, nl, nb) if pointwise else None,
        "low_contrast": low,
        "motion": (sec_taps, tap_arr, np.array([len(t) for t in taps] or [1], I32), maxt) if taps else None,
        "blur": (w, np.asarray(radii, I32), rmax) if rmax > 0 else None,
        "noise": (sigma, keys) if np.any(sigma > 0) else None,
    }


def _image_dtype(xp, images):
    dt = np.dtype(images.dtype)
    if dt == np.uint8:
        return images, "unsigned char"
    if dt == np.uint16:
        return images, "unsigned short"
    if dt == np.float32:
        return images, "float"
    if dt.kind in "fb":
        return images.astype(F32), "float"
    raise TypeError(f"images: expected uint8, uint16 or float dtype, got {dt}")


def _bits(xp, a):
    """``(unsigned view, C type)`` of a label/mask array, or a dummy for ``None``."""
    if a is None:
        return xp.zeros(1, np.uint8), "unsigned char"
    dt = np.dtype(a.dtype)
    if dt.kind not in "biu" or dt.itemsize not in _CTYPES:
        raise TypeError(f"labels/masks: expected an integer or bool dtype of 1, 2, 4 or 8 bytes, got {dt}")
    return a.view(f"uint{8 * dt.itemsize}"), _CTYPES[dt.itemsize]


def run_batch(params_list, images, labels, masks, xp, kernel: Callable, table=None):
    """Warp + image ops of a batch on ``xp`` arrays with ``kernel(file, expr) -> run(n, args)``."""
    p0 = params_list[0]
    b = len(params_list)
    (pz, py, px), (cz, cy, cx) = p0.patch_shape, p0.context_shape
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
    pk = pack_warp(params_list)
    d = {k: xp.asarray(v) for k, v in pk.items() if isinstance(v, np.ndarray)}
    gz, gy, gx = pk["gshape"]
    kernel(WARP, f"augment_warp<{ti}, {tl}, {tm}>")(
        total,
        (img_in, img_out, lab_in, lab_out, msk_in, msk_out, d["fpar"], d["ipar"], d["elastic"],
         d["misalign"], d["wz"], d["iz"], d["wy"], d["iy"], d["wx"], d["ix"], i32(pz), i32(py),
         i32(px), i32(cz), i32(cy), i32(cx), i32(gz), i32(gy), i32(gx), i32(images is not None),
         i32(labels is not None), i32(masks is not None), i64(total)),
    )
    if images is not None:
        img_out = _image_ops(params_list, img_out, xp, kernel, table)
    return (
        img_out if images is not None else None,
        lab_out.view(labels.dtype) if labels is not None else None,
        msk_out.view(masks.dtype) if masks is not None else None,
    )


def _image_ops(params_list, img, xp, kernel, table):
    pk = pack_image(params_list)
    b, pz, py, px = img.shape
    total = img.size
    i32, i64 = np.int32, np.int64
    dims = (i32(pz), i32(py), i32(px))
    if pk["pointwise"] is not None:
        zsrc, sec, spar, lines, nlines, blobs, nblobs, nl, nb = pk["pointwise"]
        means = defects.section_means(img) if pk["low_contrast"] else xp.zeros(1, F32)
        out = xp.empty_like(img)
        kernel(IMAGE, "augment_pointwise")(
            total,
            (img, out, xp.asarray(zsrc), xp.asarray(sec), xp.ascontiguousarray(means), xp.asarray(spar),
             xp.asarray(lines), xp.asarray(nlines), xp.asarray(blobs), xp.asarray(nblobs), *dims,
             i32(nl), i32(nb), i64(total)),
        )
        img = out
    if pk["motion"] is not None:
        sec_taps, taps, ntaps, maxt = pk["motion"]
        out = xp.empty_like(img)
        kernel(IMAGE, "augment_motion")(
            total, (img, out, xp.asarray(sec_taps), xp.asarray(taps), xp.asarray(ntaps), i32(maxt), *dims, i64(total))
        )
        img = out
    if pk["blur"] is not None:
        w, radii, rmax = pk["blur"]
        w, radii = xp.asarray(w), xp.asarray(radii)
        tmp = xp.empty_like(img)
        run = kernel(IMAGE, "augment_blur")
        run(total, (img, tmp, w, radii, i32(rmax), i32(1), *dims, i64(total)))
        run(total, (tmp, img, w, radii, i32(rmax), i32(2), *dims, i64(total)))
    if pk["noise"] is not None:
        sigma, keys = pk["noise"]
        tab = xp.asarray(intensity.normal_table()) if table is None else table
        kernel(IMAGE, "augment_noise")(
            total, (img, xp.asarray(sigma), xp.asarray(keys), tab, i64(pz * py * px), i64(total))
        )
    return img


def _cupy_kernel(file: str, expression: str):
    from ..ops import _kernels

    fn = _kernels.get_function(file, expression)
    return lambda n, args: _kernels.launch(fn, n, args)


def _device_table():
    import cupy

    dev = cupy.cuda.Device().id
    if dev not in _TABLES:
        _TABLES[dev] = cupy.asarray(intensity.normal_table())
    return _TABLES[dev]


def apply_batch(params_list, images=None, labels=None, masks=None):
    """CuPy ``apply_batch``: ``(B, *context_shape)`` -> ``(B, *patch_shape)`` on the inputs' GPU."""
    import cupy

    from ..ops._backend import on_device_of

    first = next(a for a in (images, labels, masks) if a is not None)
    with on_device_of(first):
        return run_batch(list(params_list), images, labels, masks, cupy, _cupy_kernel, _device_table())
