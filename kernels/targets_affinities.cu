// Affinities of instance ids for C offsets, one launch for every channel of the batch.
//
// ids (B, Z, Y, X) flattened in C order; offsets (C, 3) int (dz, dy, dx); mask (same layout as
// ids, 0/1) is read only when has_mask. For voxel v and channel c with u = v + offsets[c]:
//   aff[v, c]  = 1 iff u lies in v's sample and ids[v] == ids[u] != 0 (gunpowder's
//                seg_to_affgraph: the value sits at v, the voxel the offset starts from);
//   mask[v, c] = 1 iff u lies in v's sample and mask[v] and mask[u] (both labels known).
// Outputs are (B, Z, Y, X, C) uint8, channels last. The NumPy path is the reference.

template <typename T>
__global__ void target_affinities(const T* __restrict__ ids, const unsigned char* __restrict__ mask,
                                  int has_mask, const int* __restrict__ offsets, int C,
                                  unsigned char* __restrict__ aff,
                                  unsigned char* __restrict__ aff_mask, long long Z, long long Y,
                                  long long X, long long total) {
  const long long YX = Y * X;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long x = i % X;
    const long long t = i / X;
    const long long y = t % Y;
    const long long z = (t / Y) % Z;
    const T own = ids[i];
    const unsigned char own_known = has_mask ? mask[i] : (unsigned char)1;
    for (int c = 0; c < C; ++c) {
      const long long dz = offsets[3 * c], dy = offsets[3 * c + 1], dx = offsets[3 * c + 2];
      unsigned char a = 0, m = 0;
      if (z + dz >= 0 && z + dz < Z && y + dy >= 0 && y + dy < Y && x + dx >= 0 && x + dx < X) {
        const long long j = i + dz * YX + dy * X + dx;
        a = (own != (T)0 && ids[j] == own) ? 1 : 0;
        m = (own_known && (has_mask ? mask[j] : (unsigned char)1)) ? 1 : 0;
      }
      aff[i * C + c] = a;
      aff_mask[i * C + c] = m;
    }
  }
}
