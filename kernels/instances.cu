// Growth step of boundary-separated instances.
//
// ids (B, Z, Y, X) flattened in C order holds the instance ids of the interior (0 elsewhere).
// pending lists the linear indices of boundary voxels that have no id yet. One step gives
// each pending voxel the smallest non-zero id among its neighbours under the connectivity
// (6, 18 or 26), read from ids as it was before the step (the host scatters the candidates
// after the kernel), or 0 when no neighbour has an id. Repeating the step until no voxel
// changes assigns each reachable boundary voxel to the instance nearest through boundary
// voxels in the stencil's metric, ties going to the smallest id; the NumPy path does the same.
//
// CONN: 6, 18 or 26 (2D inputs run as one section, 4 -> 6, 8 -> 26).

template <int CONN>
__device__ __forceinline__ bool grow_in_stencil(int dz, int dy, int dx) {
  int s = (dz != 0) + (dy != 0) + (dx != 0);
  if (s == 0) return false;
  if (CONN == 6) return s == 1;
  if (CONN == 18) return s <= 2;
  return true;
}

template <int CONN>
__global__ void grow_candidates(const unsigned int* __restrict__ ids,
                                const long long* __restrict__ pending,
                                unsigned int* __restrict__ cand, long long Z, long long Y,
                                long long X, long long count) {
  const long long YX = Y * X;
  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < count;
       k += (long long)blockDim.x * gridDim.x) {
    const long long i = pending[k];
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
          if (!grow_in_stencil<CONN>(dz, dy, dx)) continue;
          if (z + dz < 0 || z + dz >= Z || y + dy < 0 || y + dy >= Y || x + dx < 0 ||
              x + dx >= X)
            continue;
          const unsigned int v = ids[i + dz * YX + dy * X + dx];
          if (v != 0u && v < best) best = v;
        }
      }
    }
    cand[k] = best == 0xFFFFFFFFu ? 0u : best;
  }
}
