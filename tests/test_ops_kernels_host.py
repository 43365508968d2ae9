"""The CUDA kernels of kernels/*.cu, checked without a GPU.

The sources are compiled as host C++ behind a small CUDA shim and every kernel is run one
thread at a time, in a shuffled thread order (each thread handles one item of the
grid-stride loop). That checks the kernels' indexing, stencils, union-find and numbering
against the CPU path (one of many possible interleavings; the GPU tests cover the rest).
Skipped where no C++ compiler is installed.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import cc3d
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.ops._kernels import kernels_dir
from neurons_jax.ops.remap import step_table

SHIM = r"""
#include <cstdint>
struct nj_dim3 { unsigned int x = 0, y = 0, z = 0; };
static nj_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
static inline int atomicCAS(int* a, int e, int d) { int o = *a; if (o == e) *a = d; return o; }
static inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long e,
                                           unsigned long long d) {
  unsigned long long o = *a; if (o == e) *a = d; return o;
}
#include "KDIR/ccl.cu"
#include "KDIR/remap.cu"
#include "KDIR/instances.cu"

template <typename F> static void each(long long n, const long long* order, F f) {
  blockIdx.x = 0; gridDim.x = 1; blockDim.x = (unsigned)n;
  for (long long k = 0; k < n; ++k) { threadIdx.x = (unsigned)order[k]; f(); }
}

template <typename T, typename I, int C>
static void ccl(const T* lab, unsigned* out, long long B, long long Z, long long Y, long long X,
                const long long* order) {
  const I n = (I)(B * Z * Y * X);
  I* parent = new I[n]; I* flag = new I[n]; I* csum = new I[n];
  each(n, order, [&] { ccl_init<T, I>(lab, parent, n); });
  each(n, order, [&] { ccl_merge<T, I, C>(lab, parent, (I)Z, (I)Y, (I)X, n); });
  each(n, order, [&] { ccl_flatten<I>(parent, flag, n); });
  I s = 0;
  for (I i = 0; i < n; ++i) { s += flag[i]; csum[i] = s; }
  each(n, order, [&] { ccl_finalize<I>(parent, csum, out, (I)(Z * Y * X), n); });
  delete[] parent; delete[] flag; delete[] csum;
}

#define CCL(NAME, T, I, C)                                                                   \
  extern "C" void NAME(const T* l, unsigned* o, long long b, long long z, long long y,       \
                       long long x, const long long* order) { ccl<T, I, C>(l, o, b, z, y, x, order); }
CCL(ccl_u8_i32_6, unsigned char, int, 6)
CCL(ccl_u8_i32_18, unsigned char, int, 18)
CCL(ccl_u8_i32_26, unsigned char, int, 26)
CCL(ccl_u64_i32_6, unsigned long long, int, 6)
CCL(ccl_u64_i64_18, unsigned long long, long long, 18)
CCL(ccl_u16_i64_26, unsigned short, long long, 26)

#define REMAP(NAME, T)                                                                        \
  extern "C" void NAME(const T* l, unsigned char* o, const T* e, const unsigned char* c,      \
                       int ne, long long n, const long long* order) {                         \
    each(n, order, [&] { union_remap<T>(l, o, e, c, ne, n); }); }
REMAP(remap_u64, unsigned long long)
REMAP(remap_i32, int)

#define GROW(NAME, C)                                                                         \
  extern "C" void NAME(const unsigned* ids, const long long* p, unsigned* cand, long long z,  \
                       long long y, long long x, long long n, const long long* order) {       \
    each(n, order, [&] { grow_candidates<C>(ids, p, cand, z, y, x, n); }); }
GROW(grow_6, 6)
GROW(grow_18, 18)
GROW(grow_26, 26)
"""

P, LL, I32 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the host emulation of the CUDA kernels")
    d = tmp_path_factory.mktemp("kernels_host")
    src = d / "host.cpp"
    src.write_text(SHIM.replace("KDIR", str(kernels_dir())))
    so = d / "host.so"
    cmd = [cxx, "-std=c++14", "-O1", "-shared", "-fPIC", "-Wno-unknown-pragmas", str(src), "-o", str(so)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


def ptr(a: np.ndarray):
    assert a.flags.c_contiguous
    return a.ctypes.data_as(P)


def order(n: int, rng) -> np.ndarray:
    return rng.permutation(n).astype(np.int64)


@pytest.mark.parametrize(
    "name,dtype,conn,shape",
    [
        ("ccl_u8_i32_6", np.uint8, 6, (2, 7, 9, 8)),
        ("ccl_u8_i32_18", np.uint8, 18, (1, 6, 11, 7)),
        ("ccl_u8_i32_26", np.uint8, 26, (3, 5, 6, 9)),
        ("ccl_u64_i32_6", np.uint64, 6, (2, 5, 8, 7)),
        ("ccl_u64_i64_18", np.uint64, 18, (1, 9, 6, 5)),
        ("ccl_u16_i64_26", np.uint16, 26, (2, 1, 17, 15)),
    ],
)
def test_ccl_kernels_number_like_cc3d(lib, name, dtype, conn, shape):
    rng = np.random.default_rng(conn + len(name))
    values = np.array([0, 1, 2, 2**32 + 1 if dtype == np.uint64 else 3], dtype)
    for trial in range(3):
        labels = rng.choice(values, size=shape, p=[0.3, 0.3, 0.2, 0.2])
        if trial == 2:
            labels = np.where(rng.random(shape) < 0.9, values[1], 0).astype(dtype)  # big blobs
        out = np.empty(shape, np.uint32)
        f = getattr(lib, name)
        f.argtypes = [P, P, LL, LL, LL, LL, P]
        f(ptr(labels), ptr(out), *shape, ptr(order(labels.size, rng)))
        for b in range(shape[0]):
            ref = cc3d.connected_components(labels[b], connectivity=conn, out_dtype=np.uint32)
            np.testing.assert_array_equal(out[b], ref)


@pytest.mark.parametrize("name,dtype", [("remap_u64", np.uint64), ("remap_i32", np.int32)])
def test_remap_kernel_matches_the_cpu_path(lib, name, dtype):
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    pool = [v for v in (info.min, -1, 0, 1, 999_999, 10**6, 2 * 10**6 - 1, 2 * 10**6, 2**40,
                        info.max - 1, info.max) if info.min <= v <= info.max]
    labels = rng.choice(np.array(pool, dtype), size=500)
    f = getattr(lib, name)
    f.argtypes = [P, P, P, P, I32, LL, P]
    for kind, ignore in (("cremi3d", ()), ("mitoem2", ("mitochondria",)), ("snemi3d", ())):
        edges, cls = step_table(nj.rules.get_rule(kind), dtype, frozenset(
            nj.UNION_CLASSES.index(c) for c in ignore))
        out = np.empty(labels.size, np.uint8)
        f(ptr(labels), ptr(out), ptr(edges), ptr(cls), len(edges), labels.size, ptr(order(500, rng)))
        np.testing.assert_array_equal(out, nj.ops.union_semantic(labels, kind, ignore))


@pytest.mark.parametrize("conn,shape", [(6, (2, 6, 9, 10)), (18, (1, 7, 8, 6)), (26, (3, 1, 12, 14))])
def test_grow_kernel_steps_match_the_cpu_path(lib, conn, shape):
    rng = np.random.default_rng(conn)
    sem = rng.choice(np.array([0, 1, 2, 2, 2], np.uint8), size=shape)
    ids, _ = nj.ops.boundary_separated_instances(sem, connectivity=conn, grow=False)
    flat = np.ascontiguousarray(ids).reshape(-1)
    pending = np.flatnonzero(sem == 2).astype(np.int64)
    f = getattr(lib, f"grow_{conn}")
    f.argtypes = [P, P, P, LL, LL, LL, LL, P]
    while pending.size:  # the loop of instances._grow_gpu, with NumPy arrays
        cand = np.empty(pending.size, np.uint32)
        f(ptr(flat), ptr(pending), ptr(cand), *shape[1:], pending.size, ptr(order(pending.size, rng)))
        got = cand != 0
        if not got.any():
            break
        flat[pending[got]] = cand[got]
        pending = pending[~got]
    want, _ = nj.ops.boundary_separated_instances(sem, connectivity=conn)
    np.testing.assert_array_equal(flat.reshape(shape), want)
