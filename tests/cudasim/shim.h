// Host shim for CUDA C++ (the stand-in device of tests/cudasim): built-in variables, qualifiers,
// atomics, barriers and the float intrinsics the kernels use, for g++.
//
// A launch runs every block (in a shuffled order) and every thread of a block (shuffled). Plain
// mode runs each thread to completion; cooperative mode (the source uses __syncthreads, or the
// launch asks to interleave) gives each thread its own stack (ucontext) and switches threads at
// every __syncthreads and, when interleaving, before every atomic, so atomics really contend.
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <type_traits>
#include <utility>

struct nj_dim3 { unsigned int x, y, z; };
static nj_dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __launch_bounds__(...)

// ---- scheduler state (one launch at a time per process: the Python side holds a lock)
static int nj_coop = 0;          // threads are coroutines
static int nj_interleave = 0;    // switch threads before every atomic
static int nj_cur = 0;           // running thread of the block
static ucontext_t nj_sched;      // the scheduler's context
static ucontext_t* nj_ctx = 0;   // one per thread of the block
static int* nj_state = 0;        // 0 runnable, 1 at a barrier, 3 yielded at an atomic, 4 ended
static char nj_err[512];
static unsigned long long nj_cas_failed = 0;

static inline void nj_switch(int state) {
  nj_state[nj_cur] = state;
  swapcontext(&nj_ctx[nj_cur], &nj_sched);
}

static inline void __syncthreads() {
  if (!nj_coop) {
    snprintf(nj_err, sizeof nj_err, "__syncthreads outside a cooperative launch");
    return;
  }
  nj_switch(1);
}

static inline void __threadfence() {}
static inline void __threadfence_block() {}

// ---- atomics: exactly the overloads CUDA has (a missing one fails here as in NVRTC)
#define NJ_ATOMIC_PRE() if (nj_interleave) nj_switch(3)
static inline int atomicCAS(int* a, int e, int d) { NJ_ATOMIC_PRE(); int o = *a; if (o == e) *a = d; else ++nj_cas_failed; return o; }
static inline unsigned int atomicCAS(unsigned int* a, unsigned int e, unsigned int d) { NJ_ATOMIC_PRE(); unsigned int o = *a; if (o == e) *a = d; else ++nj_cas_failed; return o; }
static inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long e, unsigned long long d) { NJ_ATOMIC_PRE(); unsigned long long o = *a; if (o == e) *a = d; else ++nj_cas_failed; return o; }
static inline unsigned short atomicCAS(unsigned short* a, unsigned short e, unsigned short d) { NJ_ATOMIC_PRE(); unsigned short o = *a; if (o == e) *a = d; else ++nj_cas_failed; return o; }
#define NJ_RMW(NAME, T, EXPR) static inline T NAME(T* a, T v) { NJ_ATOMIC_PRE(); T o = *a; *a = (EXPR); return o; }
NJ_RMW(atomicAdd, int, o + v) NJ_RMW(atomicAdd, unsigned int, o + v) NJ_RMW(atomicAdd, unsigned long long, o + v)
NJ_RMW(atomicAdd, float, o + v) NJ_RMW(atomicAdd, double, o + v)
NJ_RMW(atomicSub, int, o - v) NJ_RMW(atomicSub, unsigned int, o - v)
NJ_RMW(atomicExch, int, v) NJ_RMW(atomicExch, unsigned int, v) NJ_RMW(atomicExch, unsigned long long, v) NJ_RMW(atomicExch, float, v)
NJ_RMW(atomicMin, int, v < o ? v : o) NJ_RMW(atomicMin, unsigned int, v < o ? v : o)
NJ_RMW(atomicMin, long long, v < o ? v : o) NJ_RMW(atomicMin, unsigned long long, v < o ? v : o)
NJ_RMW(atomicMax, int, v > o ? v : o) NJ_RMW(atomicMax, unsigned int, v > o ? v : o)
NJ_RMW(atomicMax, long long, v > o ? v : o) NJ_RMW(atomicMax, unsigned long long, v > o ? v : o)
NJ_RMW(atomicOr, int, o | v) NJ_RMW(atomicOr, unsigned int, o | v) NJ_RMW(atomicOr, unsigned long long, o | v)
NJ_RMW(atomicAnd, int, o & v) NJ_RMW(atomicAnd, unsigned int, o & v) NJ_RMW(atomicAnd, unsigned long long, o & v)

// ---- device math (round-to-nearest intrinsics are plain IEEE ops; build with -ffp-contract=off)
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }
template <typename T> static inline T __ldg(const T* p) { return *p; }
#define NJ_MINMAX(T) static inline T min(T a, T b) { return a < b ? a : b; } static inline T max(T a, T b) { return a > b ? a : b; }
NJ_MINMAX(int) NJ_MINMAX(unsigned int) NJ_MINMAX(long long) NJ_MINMAX(unsigned long long) NJ_MINMAX(float) NJ_MINMAX(double)

// ---- kernel signature, as the driver sees it: one descriptor per parameter
struct nj_param { int size; char kind; int pointee_size; char pointee_kind; int pointee_const; };

template <typename T> static constexpr char nj_kind() {
  return std::is_pointer<T>::value ? 'p'
         : std::is_same<T, bool>::value ? 'b'
         : std::is_floating_point<T>::value ? 'f'
         : std::is_signed<T>::value ? 'i' : 'u';
}

template <typename T> static void nj_describe_one(nj_param* p) {
  typedef typename std::remove_pointer<T>::type P;
  typedef typename std::remove_cv<P>::type Q;
  p->size = (int)sizeof(T);
  p->kind = nj_kind<T>();
  p->pointee_size = std::is_pointer<T>::value && !std::is_void<Q>::value ? (int)sizeof(typename std::conditional<std::is_void<Q>::value, char, Q>::type) : 0;
  p->pointee_kind = std::is_pointer<T>::value ? nj_kind<Q>() : 0;
  p->pointee_const = std::is_const<P>::value ? 1 : 0;
}

template <typename... A> static int nj_describe(void (*)(A...), nj_param* out, int cap) {
  int n = (int)sizeof...(A);
  if (n > cap) return -n;
  int i = 0;
  int dummy[] = {0, (nj_describe_one<A>(&out[i++]), 0)...};
  (void)dummy;
  return n;
}

// ---- launch
struct nj_cfg { unsigned int grid[3], block[3]; unsigned long long seed; int coop, interleave; };

static unsigned long long nj_rng;
static inline unsigned int nj_rand(unsigned int n) {  // xorshift64*, uniform enough for a shuffle
  nj_rng ^= nj_rng >> 12; nj_rng ^= nj_rng << 25; nj_rng ^= nj_rng >> 27;
  return (unsigned int)(((nj_rng * 2685821657736338717ULL) >> 32) % n);
}
static void nj_shuffle(unsigned int* v, unsigned int n) {
  for (unsigned int i = 0; i < n; ++i) v[i] = i;
  for (unsigned int i = n; i > 1; --i) { unsigned int j = nj_rand(i); unsigned int t = v[i - 1]; v[i - 1] = v[j]; v[j] = t; }
}

// kernel parameters arrive as the driver gets them: one pointer to each value
template <typename F> struct nj_kernel;
template <typename... A> struct nj_kernel<void (*)(A...)> {
  static void (*fn)(A...);
  static void** args;
  template <size_t... I> static void call(std::index_sequence<I...>) {
    fn(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
  }
  static void body() { call(std::index_sequence_for<A...>{}); }
};
template <typename... A> void (*nj_kernel<void (*)(A...)>::fn)(A...) = 0;
template <typename... A> void** nj_kernel<void (*)(A...)>::args = 0;

static void (*nj_thread_body)(void) = 0;
static void nj_entry() {
  nj_thread_body();
  nj_state[nj_cur] = 4;  // returns to nj_sched through uc_link
}

static void nj_set_thread(unsigned int t) {
  threadIdx.x = t % blockDim.x;
  threadIdx.y = (t / blockDim.x) % blockDim.y;
  threadIdx.z = t / (blockDim.x * blockDim.y);
}

// Runs body() for every thread of every block; returns 0, or -1 with nj_err set.
static int nj_run_grid(const nj_cfg* c, void (*body)(void)) {
  nj_err[0] = 0;
  nj_rng = c->seed * 0x9E3779B97F4A7C15ULL + 1;
  gridDim.x = c->grid[0]; gridDim.y = c->grid[1]; gridDim.z = c->grid[2];
  blockDim.x = c->block[0]; blockDim.y = c->block[1]; blockDim.z = c->block[2];
  const unsigned int nb = c->grid[0] * c->grid[1] * c->grid[2];
  const unsigned int nt = c->block[0] * c->block[1] * c->block[2];
  unsigned int* border = (unsigned int*)malloc(sizeof(unsigned int) * nb);
  unsigned int* torder = (unsigned int*)malloc(sizeof(unsigned int) * nt);
  nj_shuffle(border, nb);
  nj_coop = c->coop || c->interleave;
  nj_interleave = c->interleave;
  const size_t stack = 64 * 1024;
  char* stacks = 0;
  if (nj_coop) {
    nj_ctx = (ucontext_t*)malloc(sizeof(ucontext_t) * nt);
    nj_state = (int*)malloc(sizeof(int) * nt);
    stacks = (char*)malloc(stack * nt);
  }
  nj_thread_body = body;
  for (unsigned int k = 0; k < nb && !nj_err[0]; ++k) {
    const unsigned int b = border[k];
    blockIdx.x = b % gridDim.x; blockIdx.y = (b / gridDim.x) % gridDim.y; blockIdx.z = b / (gridDim.x * gridDim.y);
    nj_shuffle(torder, nt);
    if (!nj_coop) {
      for (unsigned int j = 0; j < nt; ++j) { nj_set_thread(torder[j]); body(); }
      continue;
    }
    for (unsigned int t = 0; t < nt; ++t) {
      getcontext(&nj_ctx[t]);
      nj_ctx[t].uc_stack.ss_sp = stacks + stack * t;
      nj_ctx[t].uc_stack.ss_size = stack;
      nj_ctx[t].uc_link = &nj_sched;
      makecontext(&nj_ctx[t], (void (*)())nj_entry, 0);
      nj_state[t] = 0;
    }
    unsigned int live = nt, ended = 0;
    while (live && !nj_err[0]) {
      // one phase: every runnable thread runs until it waits at a barrier, yields or ends
      nj_shuffle(torder, nt);
      unsigned int runnable = 0;
      for (unsigned int j = 0; j < nt; ++j) {
        const unsigned int t = torder[j];
        if (nj_state[t] != 0 && nj_state[t] != 3) continue;
        nj_cur = (int)t;
        nj_set_thread(t);
        nj_state[t] = 0;
        swapcontext(&nj_sched, &nj_ctx[t]);
        if (nj_state[t] == 4) { --live; ++ended; }
        else if (nj_state[t] == 3) ++runnable;
      }
      if (live && !runnable) {  // every live thread waits at the barrier: release it
        if (ended) {
          snprintf(nj_err, sizeof nj_err, "__syncthreads in block %u reached by %u threads while %u had returned (divergent barrier)", b, live, ended);
          break;
        }
        for (unsigned int t = 0; t < nt; ++t) if (nj_state[t] == 1) nj_state[t] = 0;
      }
    }
  }
  free(border); free(torder);
  if (nj_coop) { free(nj_ctx); free(nj_state); free(stacks); nj_ctx = 0; nj_state = 0; }
  nj_coop = 0; nj_interleave = 0;
  return nj_err[0] ? -1 : 0;
}

extern "C" const char* nj_error() { return nj_err; }
extern "C" unsigned long long nj_cas_failures() { return nj_cas_failed; }
