"""Every kernel instantiation the GPU glue can request compiles with NVRTC, with CuPy's options.

NVRTC (the ``nvidia-cuda-nvrtc-cu12`` wheel of the dev extra, or a CUDA toolkit) runs without a
GPU, so CI checks what the stand-in cannot: that the device compiler accepts the sources. The
options are ours (``_kernels.compile_options()``: ``OPTIONS`` and ``-I`` of the kernels folder,
where the shared headers such as ``stencil.cuh`` are found) plus the ``-ftz=true`` CuPy adds
and an architecture."""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
from pathlib import Path

import pytest

from neurons_jax.augment import _gpu
from neurons_jax.ops import _kernels

ARCHS = ("compute_80", "compute_90")
UNSIGNED = ("unsigned char", "unsigned short", "unsigned int", "unsigned long long")
INDEX = ("int", "long long")
CONNS = (6, 18, 26)


def expressions() -> dict[str, list[str]]:
    """file -> every name expression the glue builds (ops/*.py, augment/_gpu.py, targets/*.py)."""
    ctypes_all = sorted(set(_kernels._CTYPES.values()))
    ccl = [f"ccl_init<{t}, {i}>" for t in UNSIGNED for i in INDEX]
    ccl += [f"ccl_merge<{t}, {i}, {c}>" for t in UNSIGNED for i in INDEX for c in CONNS]
    ccl += [f"ccl_flatten<{i}>" for i in INDEX] + [f"ccl_finalize<{i}>" for i in INDEX]
    warp = [f"augment_warp<{ti}, {tl}, {tm}>" for ti, tl, tm in itertools.product(
        _gpu.IMAGE_CTYPES.values(), _gpu._CTYPES.values(), _gpu._CTYPES.values())]
    return {
        "ccl.cu": ccl,
        "remap.cu": [f"union_remap<{t}>" for t in ctypes_all],
        "instances.cu": [f"grow_step<{c}>" for c in CONNS],
        "renumber.cu": ["renumber_first"],
        "augment_warp.cu": warp,
        "augment_image.cu": ["augment_pointwise", "augment_motion", "augment_blur", "augment_noise"],
        "targets_affinities.cu": [f"target_affinities<{t}>" for t in UNSIGNED],
        "targets_boundaries.cu": [f"target_boundaries<{t}>" for t in UNSIGNED],
        "targets_distance.cu": [f"edt_pass<{t}>" for t in UNSIGNED] + ["segment_max"],
        "targets_lsd.cu": ["lsd_boxes", "lsd_pass_z", "lsd_pass"],
    }


def _find_nvrtc() -> str | None:
    cands = []
    try:
        import nvidia.cuda_nvrtc

        cands += glob.glob(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], "lib", "libnvrtc.so*"))
    except ImportError:
        pass
    for root in filter(None, (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), *glob.glob("/usr/local/cuda*"))):
        cands += glob.glob(os.path.join(root, "lib64", "libnvrtc.so*"))
    cands = [c for c in cands if "builtins" not in c and "alt" not in Path(c).name]
    return cands[0] if cands else None


@pytest.fixture(scope="module")
def nvrtc():
    path = _find_nvrtc()
    if path is None:
        pytest.skip("NVRTC not found: pip install nvidia-cuda-nvrtc-cu12 (the dev extra has it) or a CUDA toolkit")
    lib = ctypes.CDLL(path)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def _compile(lib, name: str, code: str, exprs: list[str], arch: str,
             options: tuple[str, ...] | None = None) -> dict[str, str]:
    prog = ctypes.c_void_p()

    def check(rc, what):
        assert rc == 0, f"{name}: {what}: {lib.nvrtcGetErrorString(rc).decode()}"

    check(lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), name.encode(), 0, None, None), "create")
    try:
        for e in exprs:
            check(lib.nvrtcAddNameExpression(prog, e.encode()), f"name expression {e}")
        base = _kernels.compile_options() if options is None else options
        opts = [*base, "-ftz=true", f"-arch={arch}"]
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        assert rc == 0, f"{name} ({arch}) does not compile with NVRTC {opts}:\n{log.value.decode()[-4000:]}"
        lowered = {}
        for e in exprs:
            out = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, e.encode(), ctypes.byref(out)), f"lowered name of {e}")
            lowered[e] = out.value.decode()
        return lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(expressions()))
def test_every_instantiation_compiles_with_nvrtc(nvrtc, name, arch):
    exprs = expressions()[name]
    lowered = _compile(nvrtc, name, _kernels.source(name), exprs, arch)
    assert len(set(lowered.values())) == len(exprs)  # one kernel per expression


def test_a_device_compile_error_is_reported(nvrtc):
    with pytest.raises(AssertionError, match="does not compile with NVRTC"):
        _compile(nvrtc, "bad.cu", "__global__ void k(int* a) { a[0] = undefined_name; }", ["k"], ARCHS[0])


def test_the_neighbour_stencil_is_written_once_in_a_shared_header():
    for name in ("ccl.cu", "instances.cu"):
        assert _kernels.headers(name) == ["stencil.cuh"]
    defined = [p.name for p in _kernels.kernels_dir().glob("*.cu*") if "bool in_stencil" in p.read_text()]
    assert defined == ["stencil.cuh"]
    # the compile caches key on the source text: it carries the header's digest
    assert "stencil.cuh " in _kernels.source("ccl.cu").splitlines()[-1]


def test_headers_resolve_only_through_the_include_option(nvrtc):
    exprs = expressions()["instances.cu"]
    _compile(nvrtc, "instances.cu", _kernels.source("instances.cu"), exprs, ARCHS[0])
    with pytest.raises(AssertionError, match="stencil.cuh"):
        _compile(nvrtc, "instances.cu", _kernels.source("instances.cu"), exprs, ARCHS[0],
                 options=_kernels.OPTIONS)
