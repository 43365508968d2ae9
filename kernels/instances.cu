// Growth step of boundary-separated instances, dense over the batch.
//
// src (B, Z, Y, X) flattened in C order holds instance ids (0 where none yet); pending marks the
// boundary voxels. One step writes dst: a pending voxel without an id takes the smallest
// non-zero id among its neighbours under the connectivity (6, 18 or 26) in src, every other
// voxel keeps its src value; *changed is set to 1 when any voxel got an id. Repeating the step
// (src and dst swapped) until a step changes nothing assigns each reachable boundary voxel to
// the instance nearest through boundary voxels in the stencil's metric, ties going to the
// smallest id: the rule of the NumPy path. Neighbours never cross a sample.
//
// CONN: 6, 18 or 26 (2D inputs run as one section, 4 -> 6, 8 -> 26).

#include "stencil.cuh"

template <int CONN>
__global__ void grow_step(const unsigned char* __restrict__ pending,
                          const unsigned int* __restrict__ src, unsigned int* __restrict__ dst,
                          int* __restrict__ changed, long long Z, long long Y, long long X,
                          long long total) {
  const long long YX = Y * X;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const unsigned int own = src[i];
    if (own != 0u || pending[i] == 0) {
      dst[i] = own;
      continue;
    }
    const long long x = i % X;
    const long long t = i / X;
    const long long y = t % Y;
    const long long z = (t / Y) % Z;
    unsigned int best = 0xFFFFFFFFu;
#pragma unroll
    for (int dz = -1; dz <= 1; ++dz) {
#pragma unroll
      for (int dy = -1; dy <= 1; ++dy) {
#pragma unroll
        for (int dx = -1; dx <= 1; ++dx) {
          if (!in_stencil<CONN>(dz, dy, dx)) continue;
          if (z + dz < 0 || z + dz >= Z || y + dy < 0 || y + dy >= Y || x + dx < 0 ||
              x + dx >= X)
            continue;
          const unsigned int v = src[i + dz * YX + dy * X + dx];
          if (v != 0u && v < best) best = v;
        }
      }
    }
    if (best != 0xFFFFFFFFu) {
      dst[i] = best;
      *changed = 1;  // every writer stores the same value
    } else {
      dst[i] = 0u;
    }
  }
}
