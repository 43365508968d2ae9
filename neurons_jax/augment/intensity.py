"""Intensity ops on the CPU: contrast/brightness/gamma, Gaussian blur, deterministic noise.

Noise is not drawn on the host (it would be image-sized): params hold a 32-bit seed, and each
voxel's standard normal value is ``NORMAL_TABLE[hash(hash(i) ^ key(seed)) >> 16]`` with ``i`` the
voxel's flat index in the patch, ``hash`` the lowbias32 integer mixer and the table the 65536
normal quantiles ``ndtri((j + 0.5) / 65536)`` (tails to 4.3 sigma). The same integer arithmetic
runs in ``kernels/augment_image.cu`` and in ``_cpu_image``'s fused pass (what the table runs on
the CPU; ``add_noise`` is its NumPy reference), so both backends draw bitwise-identical noise.

Example:
    >>> import numpy as np
    >>> z = standard_normal(7, (4, 64, 64))
    >>> bool(abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05)
    True
    >>> hash_u32(np.array([0, 1], np.uint32)).tolist()
    [0, 1753845952]
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

F32 = np.float32
U32 = np.uint32
GOLDEN = 0x9E3779B9
MAX_BLUR_RADIUS = 16


def hash_u32(x: np.ndarray) -> np.ndarray:
    """lowbias32 (C. Wellons): a bijective uint32 mixer with good avalanche."""
    x = np.asarray(x, dtype=U32).copy()
    x ^= x >> U32(16)
    x *= U32(0x7FEB352D)
    x ^= x >> U32(15)
    x *= U32(0x846CA68B)
    x ^= x >> U32(16)
    return x


def noise_key(seed: int) -> int:
    """The per-sample key mixed into every voxel's hash."""
    return int(hash_u32(np.array([(int(seed) ^ GOLDEN) & 0xFFFFFFFF], dtype=U32))[0])


@functools.lru_cache(maxsize=1)
def normal_table() -> np.ndarray:
    """65536 standard normal quantiles at (j + 0.5) / 65536, float32."""
    from scipy.special import ndtri

    t = ndtri((np.arange(65536, dtype=np.float64) + 0.5) / 65536.0).astype(F32)
    t.flags.writeable = False
    return t


@functools.lru_cache(maxsize=4)
def _index_hash(n: int) -> np.ndarray:
    h = hash_u32(np.arange(n, dtype=U32))
    h.flags.writeable = False
    return h


def standard_normal(seed: int, shape) -> np.ndarray:
    """Deterministic N(0, 1) float32 values of ``shape`` for ``seed`` (see the module docstring)."""
    n = int(np.prod(shape))
    h = hash_u32(_index_hash(n) ^ U32(noise_key(seed)))
    return normal_table()[h >> U32(16)].reshape(shape)


def add_noise(params, img: np.ndarray) -> np.ndarray:
    """``img + sigma * N(0, 1)`` in place (float32)."""
    if params.noise_sigma > 0:
        img += F32(params.noise_sigma) * standard_normal(params.noise_seed, img.shape)
    return img


@functools.lru_cache(maxsize=256)
def gaussian_weights(sigma: float) -> np.ndarray:
    """Normalised float32 taps of radius ``ceil(3 sigma)`` (at most 16); ``[1.0]`` for sigma 0."""
    if sigma <= 0:
        return np.ones(1, dtype=F32)
    r = min(MAX_BLUR_RADIUS, max(1, int(np.ceil(3.0 * sigma))))
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w = (w / w.sum()).astype(F32)
    w.flags.writeable = False
    return w


def gaussian_blur(params, img: np.ndarray) -> np.ndarray:
    """In-plane Gaussian blur of every section, reflect-101 borders (float32, in place)."""
    w = gaussian_weights(float(params.blur_sigma))
    if w.size == 1:
        return img
    for k in range(img.shape[0]):
        img[k] = cv2.sepFilter2D(img[k], cv2.CV_32F, w, w, borderType=cv2.BORDER_REFLECT_101)
    return img


def affine_gamma(params, v: np.ndarray, zsrc: np.ndarray) -> np.ndarray:
    """``clip(((v - 0.5) * scale + 0.5) + shift, 0, 1) ** gamma`` with per-section scale/shift."""
    if not params.intensity:
        return v
    sc = params.section_scale[zsrc][:, None, None]
    sh = params.section_shift[zsrc][:, None, None]
    v = ((v - F32(0.5)) * sc + F32(0.5)) + sh
    np.clip(v, F32(0), F32(1), out=v)
    if params.gamma != 1.0:
        np.power(v, F32(params.gamma), out=v)
    return v
