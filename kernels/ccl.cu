// Multilabel connected components on the GPU: union-find that stays on the device.
//
// The volume is a batch (B, Z, Y, X) flattened in C order; neighbours never cross a sample
// (bounds are checked on z, y, x). Two voxels join when they are neighbours under the
// connectivity (6, 18 or 26) and carry the same non-zero label.
//
//   ccl_init      parent[i] = i for a labelled voxel, -1 for background
//   ccl_merge     union with every earlier neighbour of equal label; a root is always linked
//                 under the smaller root (atomicCAS), so the root of a component is its
//                 smallest linear index, i.e. its first voxel in C-raster order
//   ccl_flatten   parent[i] = root(i); flag[i] = 1 where i is a root
//   (host)        csum = inclusive prefix sum of flag (cupy.cumsum)
//   ccl_finalize  out[i] = csum[root] - roots before the sample: ids 1..n per sample in raster
//                 order of each component's first voxel, the numbering cc3d gives
//
// T: label type (unsigned 8..64 bit; signed labels are passed as their unsigned view).
// I: index type (int, or long long above 2**31 voxels). CONN: 6, 18 or 26.
// Every kernel is a grid-stride loop, so any grid size covers the volume.

#include "stencil.cuh"

template <typename I>
__device__ __forceinline__ I atomic_cas(I* addr, I expected, I desired);

template <>
__device__ __forceinline__ int atomic_cas<int>(int* addr, int expected, int desired) {
  return atomicCAS(addr, expected, desired);
}

template <>
__device__ __forceinline__ long long atomic_cas<long long>(long long* addr, long long expected,
                                                           long long desired) {
  return (long long)atomicCAS((unsigned long long*)addr, (unsigned long long)expected,
                              (unsigned long long)desired);
}

// Root of x with path halving. Parent pointers only ever move to smaller indices of the same
// tree, so a stale read is still an ancestor; roots are changed only by atomic_cas.
template <typename I>
__device__ __forceinline__ I find_root(I* parent, I x) {
  while (true) {
    I p = parent[x];
    if (p == x) return x;
    I gp = parent[p];
    if (gp != p) parent[x] = gp;
    x = gp;
  }
}

template <typename I>
__device__ __forceinline__ void unite(I* parent, I a, I b) {
  a = find_root(parent, a);
  b = find_root(parent, b);
  while (a != b) {
    if (a < b) {
      I t = a;
      a = b;
      b = t;
    }
    // link the larger root a under the smaller root b, if a is still a root
    const I old = atomic_cas(&parent[a], a, b);
    if (old == a) return;
    // a stopped being a root: continue from the parent the CAS returned (never re-read it
    // with a plain load, which may still see the stale value)
    a = find_root(parent, old);
    b = find_root(parent, b);
  }
}

template <typename T, typename I>
__global__ void ccl_init(const T* __restrict__ labels, I* __restrict__ parent, I total) {
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)blockDim.x * gridDim.x) {
    parent[i] = labels[i] != (T)0 ? i : (I)-1;
  }
}

template <typename T, typename I, int CONN>
__global__ void ccl_merge(const T* __restrict__ labels, I* parent, I Z, I Y, I X, I total) {
  const I YX = Y * X;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)blockDim.x * gridDim.x) {
    const T v = labels[i];
    if (v == (T)0) continue;
    const I x = i % X;
    const I t = i / X;
    const I y = t % Y;
    const I z = (t / Y) % Z;
#pragma unroll
    for (int dz = -1; dz <= 0; ++dz) {
#pragma unroll
      for (int dy = -1; dy <= 1; ++dy) {
#pragma unroll
        for (int dx = -1; dx <= 1; ++dx) {
          // earlier neighbours only: (dz, dy, dx) before (0, 0, 0) in C order
          const bool earlier = dz < 0 || (dy < 0 || (dy == 0 && dx < 0));
          if (!earlier || !in_stencil<CONN>(dz, dy, dx)) continue;
          if (z + dz < 0 || y + dy < 0 || y + dy >= Y || x + dx < 0 || x + dx >= X) continue;
          const I n = i + (I)dz * YX + (I)dy * X + (I)dx;
          if (labels[n] == v) unite(parent, i, n);
        }
      }
    }
  }
}

template <typename I>
__global__ void ccl_flatten(I* parent, I* __restrict__ flag, I total) {
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)blockDim.x * gridDim.x) {
    I p = parent[i];
    if (p < 0) {
      flag[i] = 0;
      continue;
    }
    I r = p;
    while (true) {
      I q = parent[r];
      if (q == r) break;
      r = q;
    }
    parent[i] = r;
    flag[i] = r == i ? 1 : 0;
  }
}

template <typename I>
__global__ void ccl_finalize(const I* __restrict__ parent, const I* __restrict__ csum,
                             unsigned int* __restrict__ out, I sample, I total) {
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)blockDim.x * gridDim.x) {
    const I p = parent[i];
    if (p < 0) {
      out[i] = 0u;
      continue;
    }
    const I start = (i / sample) * sample;
    const I before = start > 0 ? csum[start - 1] : (I)0;
    out[i] = (unsigned int)(csum[p] - before);
  }
}
