"""Host build of kernels/augment_*.cu (g++ + a shim for the CUDA built-ins), for tests without a GPU.

Every kernel is a grid-stride loop, so a single "thread" (blockDim = gridDim = 1) walks the
whole range. ``kernel(file, expr)`` mirrors ``_gpu._cupy_kernel``: ``run_batch`` drives the
same packing and launch code on NumPy arrays.
"""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TI = ("unsigned char", "unsigned short", "float")
TL = ("unsigned char", "unsigned short", "unsigned int", "unsigned long long")
TM = ("unsigned char", "unsigned int")

SHIM = r"""
#include <math.h>
#include <algorithm>
using std::min; using std::max;
struct nj_dim3 { unsigned int x, y, z; };
static const nj_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
"""

WARP_WRAP = """
extern "C" void {name}(const {ti}* a0, float* a1, const {tl}* a2, {tl}* a3, const {tm}* a4, {tm}* a5,
    const float* a6, const int* a7, const float* a8, const float* a9, const float* a10, const int* a11,
    const float* a12, const int* a13, const float* a14, const int* a15, int b0, int b1, int b2, int b3,
    int b4, int b5, int b6, int b7, int b8, int b9, int b10, int b11, long long n) {{
  augment_warp<{ti}, {tl}, {tm}>(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
      b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, n);
}}
"""

IMAGE_WRAP = """
extern "C" void nj_pointwise(const float* a, float* b, const int* c, const float* d, const float* e,
    const float* f, const float* g, const int* h, const float* i, const int* j, int k, int l, int m,
    int n, int o, long long p) { augment_pointwise(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p); }
extern "C" void nj_motion(const float* a, float* b, const int* c, const int* d, const int* e, int f,
    int g, int h, int i, long long j) { augment_motion(a, b, c, d, e, f, g, h, i, j); }
extern "C" void nj_blur(const float* a, float* b, const float* c, const int* d, int e, int f, int g,
    int h, int i, long long j) { augment_blur(a, b, c, d, e, f, g, h, i, j); }
extern "C" void nj_noise(float* a, const float* b, const unsigned int* c, const float* d, long long e,
    long long f) { augment_noise(a, b, c, d, e, f); }
"""


def _warp_name(ti: str, tl: str, tm: str) -> str:
    return "nj_warp_" + "_".join(t.replace(" ", "") for t in (ti, tl, tm))


def build(tmp: Path):
    """Compile the host library into ``tmp``; None when no C++ compiler is available."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        return None
    src = [SHIM]
    for name in ("augment_warp.cu", "augment_image.cu"):
        src.append((ROOT / "kernels" / name).read_text())
    for ti, tl, tm in itertools.product(TI, TL, TM):
        src.append(WARP_WRAP.format(name=_warp_name(ti, tl, tm), ti=ti, tl=tl, tm=tm))
    src.append(IMAGE_WRAP)
    cpp = tmp / "augment_host.cpp"
    cpp.write_text("\n".join(src))
    lib = tmp / "augment_host.so"
    cmd = [cxx, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-x", "c++", str(cpp), "-o", str(lib)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"host build of the augment kernels failed:\n{res.stderr[-4000:]}")
    return ctypes.CDLL(str(lib))


def _arg(a):
    if isinstance(a, np.ndarray):
        assert a.flags.c_contiguous, "kernel arrays must be C-contiguous"
        return ctypes.c_void_p(a.ctypes.data)
    if isinstance(a, np.int32):
        return ctypes.c_int(int(a))
    if isinstance(a, np.int64):
        return ctypes.c_longlong(int(a))
    raise TypeError(f"unexpected kernel argument {type(a)}")


def kernel_factory(lib):
    """``kernel(file, expression) -> run(n, args)`` calling the host library."""
    names = {"augment_pointwise": "nj_pointwise", "augment_motion": "nj_motion",
             "augment_blur": "nj_blur", "augment_noise": "nj_noise"}

    def kernel(file: str, expression: str):
        if expression.startswith("augment_warp<"):
            ti, tl, tm = (t.strip() for t in expression[len("augment_warp<"):-1].split(","))
            fn = getattr(lib, _warp_name(ti, tl, tm))
        else:
            fn = getattr(lib, names[expression])
        fn.restype = None

        def run(n, args):
            fn(*(_arg(a) for a in args))

        return run

    return kernel


# ---- parity cases shared by test_augment_kernels.py (host build) and test_augment_gpu.py (CuPy)

SINGLE = (
    "flip_prob", "rot90_prob", "transpose_xy_prob", "transpose_z_prob", "rotate_prob", "rotate_3d_prob",
    "scale_prob", "elastic_prob", "misalign_prob", "missing_section_prob", "low_contrast_prob", "line_prob",
    "charging_prob", "motion_blur_prob", "missing_part_prob", "contrast_prob", "brightness_prob",
    "gamma_prob", "section_intensity_prob", "blur_prob", "noise_prob",
)
IMAGE_DTYPES = (np.uint8, np.float32, np.uint16)
LABEL_DTYPES = (np.uint64, np.uint32, np.uint16, np.uint8, np.int32, np.int64)


def _config(field: str | None):
    from neurons_jax.augment import AugmentConfig

    if field is None:  # everything at 0.5
        return AugmentConfig(
            rotate_3d_prob=0.5, missing_section_prob=0.5, low_contrast_prob=0.5, line_prob=0.5,
            charging_prob=0.5, motion_blur_prob=0.5, missing_part_prob=0.5, blur_prob=0.5,
            misalign_prob=0.5,
        )
    if field == "flip_prob":
        return AugmentConfig.off(flip_prob=(1.0, 1.0, 1.0))
    return AugmentConfig.off(**{field: 1.0})


def parity_cases():
    """``(name, params_list, images, labels, masks)``: each transform alone and full random configs,
    anisotropic (planar) and isotropic cubes (z transposes, 3D path), several dtypes."""
    from neurons_jax import augment

    fields = [*SINGLE, None, None, None]
    n = 0
    for vs, patch in (((40, 4, 4), (5, 36, 36)), ((10, 10, 10), (12, 12, 12)), ((30, 6, 6), (1, 33, 29))):
        for field in fields:
            rng = np.random.default_rng(n)
            cfg = _config(field)
            params = [augment.draw(cfg, rng, patch, vs) for _ in range(3)]
            ctx = params[0].context_shape
            idt, ldt = IMAGE_DTYPES[n % 3], LABEL_DTYPES[n % 6]
            if idt == np.float32:
                img = rng.random((3, *ctx), dtype=np.float32)
            else:
                img = rng.integers(0, np.iinfo(idt).max, (3, *ctx), dtype=idt)
            top = np.iinfo(ldt).max
            ids = np.array([0, 1, 2, 3, top // 2, top - 1], dtype=ldt)
            lab = ids[rng.integers(0, len(ids), (3, *ctx))]
            mask = rng.random((3, *ctx)) < 0.5
            yield f"{field or 'all'}-{vs[0]}nm-{patch}", params, img, lab, mask
            n += 1


def assert_parity(ref, got, name: str) -> None:
    """Labels and masks bitwise, images within 1e-5."""
    img, lab, mask = (None if a is None else np.asarray(a) for a in got)
    assert img.dtype == np.float32 and img.shape == ref[0].shape, name
    assert np.abs(img - ref[0]).max() <= 1e-5, (name, float(np.abs(img - ref[0]).max()))
    assert lab.dtype == ref[1].dtype and np.array_equal(lab, ref[1]), name
    assert mask.dtype == ref[2].dtype and np.array_equal(mask, ref[2]), name


def border_params():
    """Params whose source coordinates fall just below 0 (in-plane, then in z)."""
    from neurons_jax.augment.params import identity

    p = identity((3, 8, 8))
    p.misalign = np.full((3, 2), -0.5, np.float32)  # every section half a voxel up and left
    q = identity((3, 8, 8))
    q.affine = np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1]], np.float32)  # z = k + 0.1 (y - 3.5)
    assert p.planar and not q.planar
    return p, q
