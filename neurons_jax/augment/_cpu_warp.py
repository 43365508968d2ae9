"""The CPU warp kernel (numba): every output voxel of image, labels and mask written once.

One loop runs over the canonical voxels ``k`` (rows along ``k_x``) and writes each to its output
position ``o`` (``o[perm_i] = P_i - 1 - k_i`` if ``flip_i`` else ``k_i``: flips, rot90 and
transposes, z included, are part of the index, never a copy afterwards); per voxel it computes
the source position with ``grid``'s float32 arithmetic in ``grid``'s order and samples every
array there:

* coordinates: ``s_i = ((c_i + ((A[i,0] q_z + A[i,1] q_y) + A[i,2] q_x)) + d_i) + t_i``; the
  products ``A[i,j] q_j`` come from NumPy tables (:func:`tables`), the elastic ``d`` is the
  control grid reduced along x then y (:func:`spline_yx`, ``grid.spline_yx``'s sums) and
  finished along z per voxel, every sum left to right. No fused multiply-add there (numba
  without fastmath keeps every float32 rounding): the positions equal ``grid.source_coords``
  bit for bit (tests/test_augment_geometry.py checks the kernel's own positions).
* images: bilinear in-plane exactly as ``cv2.remap`` INTER_LINEAR computes it for float32
  (``v0 = fma(b - a, tx, a)``, ``v1 = fma(d - c, tx, c)``, ``fma(v1 - v0, ty, v0)``, an explicit
  fused multiply-add), so outputs are bitwise those of the former per-section cv2 path; planar
  params read section ``int(s_z)``, off-plane params lerp ``a (1 - f) + b f`` between sections
  ``floor(s_z)`` and ``floor(s_z) + 1`` (each clamped: the border section is replicated), as
  the former band-wise path did. Integer images are scaled per tap as ``float32(v) /
  float32(max)`` (a table for 1/2-byte types), the value ``geometry.image_to_float`` gives.
* labels, masks: the voxel at ``rint(s)`` (half to even; planar z ``int(s_z)``), bits copied.

Box origins: the arrays may be a box ``[o, o + b)`` of the context. The positions stay in the
full-context frame; every tap is made an integer there (``floor``, ``+ 1``, ``rint``, ``int``),
then ``o`` is subtracted *as an integer* and the tap clamped to ``[0, b - 1]``. No float
operation involves ``o``, so nothing is rounded: a box that holds every (context-clamped) tap
gives the full context's output bit for bit, and the full context (``o = 0``, ``b = C``) clamps
exactly as before.

One compiled signature serves every dtype (image, label and mask arrays are passed in typed
slots, absent ones as dummies), so a fresh environment compiles once (about 20-40 s on 2 busy
cores) and every later process loads the cache (``cache=True``: ``__pycache__`` next to this
file, or numba's user-wide cache / ``NUMBA_CACHE_DIR`` when that is read-only).

Example:
    >>> import numpy as np
    >>> from neurons_jax.augment.params import identity
    >>> img = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    >>> out, _, _ = warp(identity((1, 2, 2), (2, 4, 4)), img, None, None, None)
    >>> out[0].tolist() == (img[0, 1:3, 1:3] / np.float32(255)).tolist()
    True
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from . import grid as _grid

F32 = np.float32
I64 = np.int64
# image dtypes read directly (scaled per tap); others are converted to float32 first
DIRECT_IMAGE = frozenset({"uint8", "uint16", "uint32", "int8", "int16", "int32", "float32"})


@intrinsic
def _fma(typingctx, a, b, c):
    """float32 ``a * b + c`` with one rounding (llvm.fma: the FMA instruction or libm fmaf)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        return builder.fma(args[0], args[1], args[2])

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _clamp(v, hi):
    return max(0, min(v, hi))


@numba.njit(cache=True, nogil=True, inline="always")
def _load(img, i, kind, lut, scale):
    """Image tap ``i`` (flat box index) as float32: ``kind`` 0 float32, 1 the table ``lut`` of a
    1/2-byte integer type, 2 ``float32(v) / scale`` (32-bit integers)."""
    j = np.uint64(i)  # unsigned: no negative-index wraparound
    if kind == 1:
        return lut[np.uint64(img[j])]
    if kind == 2:
        return F32(img[j]) / scale
    return F32(img[j])


@numba.njit(cache=True, nogil=True, inline="always")
def _bilinear(img, r0, r1, x0, x1, ty, tx, kind, lut, scale):
    """``cv2.remap`` INTER_LINEAR's float32 arithmetic on taps at flat rows ``r0``/``r1``."""
    a = _load(img, r0 + x0, kind, lut, scale)
    b = _load(img, r0 + x1, kind, lut, scale)
    c = _load(img, r1 + x0, kind, lut, scale)
    d = _load(img, r1 + x1, kind, lut, scale)
    v0 = _fma(b - a, tx, a)
    v1 = _fma(d - c, tx, c)
    return _fma(v1 - v0, ty, v0)


@numba.njit(cache=True, nogil=True)
def _rows(z, iy, ix, b1, b2, c1, c2):
    """``(flat row of the lower taps, row step to the upper taps, x0, x1)`` in box section ``z``,
    each tap clamped to the box (border replicated)."""
    if iy >= 0 and ix >= 0 and iy < b1 and ix < b2:  # all four taps inside (the usual case)
        return (z * c1 + iy) * c2 + ix, c2, 0, 1
    y0 = _clamp(iy, b1) * c2
    return z * c1 * c2 + y0, _clamp(iy + 1, b1) * c2 - y0, _clamp(ix, b2), _clamp(ix + 1, b2)


@numba.njit(cache=True, nogil=True)
def _image_row(img, kind, lut, scale, planar, r0, r1, r2, out, ob, st2, geo):
    """Sample one row of canonical positions ``(r0, r1, r2)`` into ``out[ob + st2 k]``."""
    c1, c2 = geo[4], geo[5]
    b0, b1, b2 = geo[3] - 1, geo[4] - 1, geo[5] - 1
    og0, og1, og2 = geo[6], geo[7], geo[8]
    one = F32(1.0)
    if planar:
        for k2 in range(r0.shape[0]):
            s1, s2 = r1[k2], r2[k2]
            fy, fx = np.floor(s1), np.floor(s2)
            z = _clamp(np.int64(r0[k2]) - og0, b0)
            ra, dy, x0, x1 = _rows(z, np.int64(fy) - og1, np.int64(fx) - og2, b1, b2, c1, c2)
            out[np.uint64(ob + st2 * k2)] = _bilinear(img, ra, ra + dy, x0, x1, s1 - fy, s2 - fx,
                                                      kind, lut, scale)
    else:
        for k2 in range(r0.shape[0]):
            s0, s1, s2 = r0[k2], r1[k2], r2[k2]
            fz, fy, fx = np.floor(s0), np.floor(s1), np.floor(s2)
            iz0, iy, ix = np.int64(fz) - og0, np.int64(fy) - og1, np.int64(fx) - og2
            ty, tx, tz = s1 - fy, s2 - fx, s0 - fz
            za = _clamp(iz0, b0)
            ra, dy, x0, x1 = _rows(za, iy, ix, b1, b2, c1, c2)
            rb = ra + (_clamp(iz0 + 1, b0) - za) * c1 * c2
            va = _bilinear(img, ra, ra + dy, x0, x1, ty, tx, kind, lut, scale)
            vb = _bilinear(img, rb, rb + dy, x0, x1, ty, tx, kind, lut, scale)
            out[np.uint64(ob + st2 * k2)] = va * (one - tz) + vb * tz


@numba.njit(cache=True, nogil=True)
def spline_yx(g, wy, iy, wx, ix):
    """``grid.spline_yx``'s reduction of the control grid ``g (C, gz, gy, gx)`` along x, then y:
    ``(C, gz, Py, Px)`` float32, every sum ``((w0 g0 + w1 g1) + w2 g2) + w3 g3`` in that order."""
    nc, gz, gy, _ = g.shape
    py, px = wy.shape[0], wx.shape[0]
    r = np.empty((nc, gz, gy, px), F32)
    for c in range(nc):
        for z in range(gz):
            for y in range(gy):
                for x in range(px):
                    j = ix[x]
                    r[c, z, y, x] = ((wx[x, 0] * g[c, z, y, j] + wx[x, 1] * g[c, z, y, j + 1])
                                     + wx[x, 2] * g[c, z, y, j + 2]) + wx[x, 3] * g[c, z, y, j + 3]
    s = np.empty((nc, gz, py, px), F32)
    for c in range(nc):
        for z in range(gz):
            for y in range(py):
                j = iy[y]
                w0, w1, w2, w3 = wy[y, 0], wy[y, 1], wy[y, 2], wy[y, 3]
                for x in range(px):
                    s[c, z, y, x] = ((w0 * r[c, z, j, x] + w1 * r[c, z, j + 1, x])
                                     + w2 * r[c, z, j + 2, x]) + w3 * r[c, z, j + 3, x]
    return s


@numba.njit(cache=True, nogil=True)
def _add_spline(r, s, e, g, k1, w0, w1, w2, w3):
    """``r += ((w0 s[g] + w1 s[g + 1]) + w2 s[g + 2]) + w3 s[g + 3]`` along row ``k1`` of
    component ``e``."""
    for k2 in range(r.shape[0]):
        r[k2] = r[k2] + (((w0 * s[e, g, k1, k2] + w1 * s[e, g + 1, k1, k2]) + w2 * s[e, g + 2, k1, k2])
                         + w3 * s[e, g + 3, k1, k2])


@numba.njit(cache=True, nogil=True)
def _copy(nsz, idx, ob, st2, s1, s2, s4, s8, d1, d2, d4, d8):
    """``dst[ob + st2 k] = src[idx[k]]`` in the array of ``nsz`` bytes per voxel."""
    n = idx.shape[0]
    if nsz == 1:
        for k in range(n):
            d1[np.uint64(ob + st2 * k)] = s1[idx[k]]
    elif nsz == 2:
        for k in range(n):
            d2[np.uint64(ob + st2 * k)] = s2[idx[k]]
    elif nsz == 4:
        for k in range(n):
            d4[np.uint64(ob + st2 * k)] = s4[idx[k]]
    else:
        for k in range(n):
            d8[np.uint64(ob + st2 * k)] = s8[idx[k]]


@numba.njit(cache=True, nogil=True)
def _warp(geo, tab, cc, spl, wz, iz, mis, mode, u8, u16, u32, i32, f32, lut, scale, out_i,
          lsz, l1, l2, l4, l8, ol1, ol2, ol4, ol8, msz, m1, m2, m4, m8, om1, om2, om4, om8, out_c):
    """The warp loop over canonical voxels (rows along k_x), each written to its output position
    ``o[perm_j] = P_j - 1 - k_j if flip_j else k_j``; all float arithmetic float32.

    ``geo`` (int64): patch shape, box shape, origin, perm, flip, flags (image, planar, elastic,
    misalignment, coordinates wanted), first elastic component. Arrays are flat (C order);
    ``lsz``/``msz`` the label/mask bytes per voxel (0: absent)."""
    p0, p1, p2 = geo[0], geo[1], geo[2]
    c1, c2 = geo[4], geo[5]
    b0, b1, b2 = geo[3] - 1, geo[4] - 1, geo[5] - 1
    og0, og1, og2 = geo[6], geo[7], geo[8]
    has_i, planar, has_el, has_mis, has_c = geo[15], geo[16], geo[17], geo[18], geo[19]
    el0 = geo[20]
    # flat output offset of canonical k: base + st0 k0 + st1 k1 + st2 k2
    so = (p1 * p2, p2, 1)
    base = 0
    st = np.zeros(3, np.int64)
    for j in range(3):
        sj = so[geo[9 + j]]
        if geo[12 + j]:
            base += sj * (geo[j] - 1)
            st[j] = -sj
        else:
            st[j] = sj
    st0, st1, st2 = st[0], st[1], st[2]
    r0 = np.empty(p2, F32)
    r1 = np.empty(p2, F32)
    r2 = np.empty(p2, F32)
    nidx = np.empty(p2, np.uint64)
    g, w0, w1, w2, w3 = 0, F32(0), F32(0), F32(0), F32(0)
    for k0 in range(p0):
        if has_el:
            g = iz[k0]
            w0, w1, w2, w3 = wz[k0, 0], wz[k0, 1], wz[k0, 2], wz[k0, 3]
        for k1 in range(p1):
            u0 = tab[0, 0, k0] + tab[0, 1, k1]
            u1 = tab[1, 0, k0] + tab[1, 1, k1]
            u2 = tab[2, 0, k0] + tab[2, 1, k1]
            for k2 in range(p2):
                r0[k2] = cc[0] + (u0 + tab[0, 2, k2])
                r1[k2] = cc[1] + (u1 + tab[1, 2, k2])
                r2[k2] = cc[2] + (u2 + tab[2, 2, k2])
            if has_el:
                if el0 == 0:
                    _add_spline(r0, spl, 0, g, k1, w0, w1, w2, w3)
                _add_spline(r1, spl, 1 - el0, g, k1, w0, w1, w2, w3)
                _add_spline(r2, spl, 2 - el0, g, k1, w0, w1, w2, w3)
            if has_mis:
                t0, t1 = mis[k0, 0], mis[k0, 1]
                for k2 in range(p2):
                    r1[k2] = r1[k2] + t0
                    r2[k2] = r2[k2] + t1
            if has_c:  # the coordinates themselves (tests)
                out_c[0, k0, k1] = r0
                out_c[1, k0, k1] = r1
                out_c[2, k0, k1] = r2
            ob = base + st0 * k0 + st1 * k1
            if has_i:
                if mode == 1:
                    _image_row(u8, 1, lut, scale, planar, r0, r1, r2, out_i, ob, st2, geo)
                elif mode == 2:
                    _image_row(u16, 1, lut, scale, planar, r0, r1, r2, out_i, ob, st2, geo)
                elif mode == 3:
                    _image_row(u32, 2, lut, scale, planar, r0, r1, r2, out_i, ob, st2, geo)
                elif mode == 4:
                    _image_row(i32, 2, lut, scale, planar, r0, r1, r2, out_i, ob, st2, geo)
                else:
                    _image_row(f32, 0, lut, scale, planar, r0, r1, r2, out_i, ob, st2, geo)
            if lsz or msz:
                for k2 in range(p2):
                    s0 = r0[k2]
                    nz = np.int64(s0) if planar else np.int64(np.rint(s0))
                    nz = _clamp(nz - og0, b0)
                    ny = _clamp(np.int64(np.rint(r1[k2])) - og1, b1)
                    nx = _clamp(np.int64(np.rint(r2[k2])) - og2, b2)
                    nidx[k2] = (nz * c1 + ny) * c2 + nx
                if lsz:
                    _copy(lsz, nidx, ob, st2, l1, l2, l4, l8, ol1, ol2, ol4, ol8)
                if msz:
                    _copy(msz, nidx, ob, st2, m1, m2, m4, m8, om1, om2, om4, om8)


def tables(params) -> tuple[np.ndarray, np.ndarray]:
    """``(tab (3, 3, max P), cc (3,))``: ``tab[i, j, k] = A[i, j] * (float32(k) - pc_j)`` and the
    context centre ``float32((C - 1) / 2)``, both float32 (``grid.affine_offsets``' products)."""
    a = np.asarray(params.affine, dtype=F32)
    p = params.patch_shape
    tab = np.zeros((3, 3, max(p)), F32)
    for j in range(3):
        q = _grid.centred(p[j])
        for i in range(3):
            tab[i, j, : p[j]] = a[i, j] * q
    cc = np.array([F32((n - 1) / 2) for n in params.context_shape], F32)
    return tab, cc


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # one numba type (read-only) for the tables and the dummies
    return a


_U = (np.uint8, np.uint16, np.uint32, np.uint64)
_NONE = {t: np.zeros(1, t) for t in (*_U, np.int32, F32)}  # absent slots (never read/written)
_NONE_RO = {t: _frozen(np.zeros(1, t)) for t in (*_U, np.int32, F32)}
_NO_COORDS = np.zeros((3, 1, 1, 1), F32)
_NO_WZ, _NO_IZ = _frozen(np.zeros((1, 4), F32)), _frozen(np.zeros(1, np.int32))
_NO_SPL = np.zeros((1, 1, 1, 1), F32)
_NO_MIS = np.zeros((1, 2), F32)


@functools.lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    """float32 value of every 1/2-byte integer, indexed by its bits read as unsigned."""
    from .geometry import image_to_float

    dt = np.dtype(name)
    bits = np.arange(2 ** (8 * dt.itemsize), dtype=f"uint{8 * dt.itemsize}")
    return _frozen(np.ascontiguousarray(image_to_float(bits.view(dt)), F32))


def image_slots(image: np.ndarray | None):
    """``(mode, (u8, u16, u32, i32, f32), lut, divisor)`` for ``_warp``: taps become
    ``float32(v) / float32(max)`` (the value of ``geometry.image_to_float``): a table for 1/2-byte
    integers, a division for 32-bit ones, float32 as is; other dtypes are converted first."""
    slots = [_NONE_RO[np.uint8], _NONE_RO[np.uint16], _NONE_RO[np.uint32], _NONE_RO[np.int32],
             _NONE_RO[F32]]
    if image is None:
        return 0, slots, _NONE_RO[F32], F32(1)
    dt = image.dtype
    if dt.name in DIRECT_IMAGE and dt.kind in "iu" and dt.itemsize <= 2:
        k = 0 if dt.itemsize == 1 else 1
        slots[k] = _frozen(image.view(_U[k]).reshape(-1))
        return k + 1, slots, _lut(dt.name), F32(1)
    if dt.name in ("uint32", "int32"):
        k = 2 if dt.name == "uint32" else 3
        slots[k] = _frozen(image.reshape(-1))
        return k + 1, slots, _NONE_RO[F32], F32(np.iinfo(dt).max)
    from .geometry import image_to_float

    slots[4] = _frozen(np.ascontiguousarray(image_to_float(image), F32).reshape(-1))
    return 0, slots, _NONE_RO[F32], F32(1)


def _nearest_slots(a: np.ndarray | None, p) -> tuple[int, list, list, np.ndarray | None]:
    """``(bytes per voxel, 4 source slots, 4 output slots, output)`` for a label/mask array."""
    src = [_NONE_RO[t] for t in _U]
    dst = [_NONE[t] for t in _U]
    if a is None:
        return 0, src, dst, None
    size = a.dtype.itemsize
    if a.dtype.kind not in "biu" or size not in (1, 2, 4, 8):
        raise TypeError(f"label/mask dtype {a.dtype} is not supported (expected 1, 2, 4 or 8 bytes)")
    k = (1, 2, 4, 8).index(size)
    out = np.empty(p, a.dtype)
    src[k] = _frozen(a.view(_U[k]).reshape(-1))
    dst[k] = out.view(_U[k]).reshape(-1)
    return size, src, dst, out


def warp(params, image, label, mask, origin, coords: np.ndarray | None = None):
    """``(image float32 | None, label | None, mask | None)`` of ``params.patch_shape`` from
    (box) arrays already checked by ``geometry.warp``; ``origin`` (3,) int or None.

    ``coords``: a ``(3, *patch_shape)`` float32 array to receive the kernel's canonical source
    coordinates (full-context frame), for the tests' comparison with ``grid.source_coords``."""
    p = tuple(params.patch_shape)
    first = next((a for a in (image, label, mask) if a is not None), None)
    if first is None and coords is None:
        return None, None, None
    box = tuple(params.context_shape if first is None else first.shape)
    org = (0, 0, 0) if origin is None else tuple(int(v) for v in origin)
    mode, islots, lut, scale = image_slots(image)
    lsz, lsrc, ldst, out_l = _nearest_slots(label, p)
    msz, msrc, mdst, out_m = _nearest_slots(mask, p)
    out_i = np.empty(p, F32) if image is not None else None
    tab, cc = tables(params)
    planar = bool(params.planar)
    el = params.elastic
    el0, spl, wz, iz = 1, _NO_SPL, _NO_WZ, _NO_IZ
    if el is not None:
        el0 = 1 if (planar or not np.any(el[0])) else 0  # a zero z component adds nothing
        gs = el.shape[1:]
        wy, iy = _grid.spline_table(p[1], gs[1], float(params.elastic_spacing[1]))
        wx, ix = _grid.spline_table(p[2], gs[2], float(params.elastic_spacing[2]))
        wz, iz = _grid.spline_table(p[0], gs[0], float(params.elastic_spacing[0]))
        spl = spline_yx(_frozen(np.ascontiguousarray(el[el0:], F32)), wy, iy, wx, ix)
    mis = _NO_MIS if params.misalign is None else np.ascontiguousarray(params.misalign, F32)
    geo = np.array([*p, *box, *org, *params.perm, *(int(f) for f in params.flip), image is not None,
                    planar, el is not None, params.misalign is not None, coords is not None, el0],
                   np.int64)
    _warp(geo, tab, cc, spl, wz, iz, mis, mode, *islots, lut, scale,
          _NONE[F32] if out_i is None else out_i.reshape(-1), lsz, *lsrc, *ldst, msz, *msrc, *mdst,
          _NO_COORDS if coords is None else coords)
    return out_i, out_l, out_m
