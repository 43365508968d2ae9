// Instance contours, dense over the batch.
//
// ids (B, Z, Y, X) flattened in C order. out[v] = 1 iff some voxel u of v's sample with
// |u - v|_1 <= width (dz = 0 when planar) holds an id other than ids[v] (mode thick), and for
// mode inner also ids[v] != 0. Voxels outside the sample are not neighbours. The NumPy path of
// neurons_jax/targets/boundaries.py is the reference (skimage find_boundaries at width 1).

template <typename T>
__global__ void target_boundaries(const T* __restrict__ ids, unsigned char* __restrict__ out,
                                  int width, int planar, int inner, long long Z, long long Y,
                                  long long X, long long total) {
  const long long YX = Y * X;
  const int wz = planar ? 0 : width;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long x = i % X;
    const long long t = i / X;
    const long long y = t % Y;
    const long long z = (t / Y) % Z;
    const T own = ids[i];
    unsigned char b = 0;
    if (!(inner && own == (T)0)) {
      for (int dz = -wz; dz <= wz && !b; ++dz) {
        if (z + dz < 0 || z + dz >= Z) continue;
        const int rz = width - (dz < 0 ? -dz : dz);
        for (int dy = -rz; dy <= rz && !b; ++dy) {
          if (y + dy < 0 || y + dy >= Y) continue;
          const int ry = rz - (dy < 0 ? -dy : dy);
          for (int dx = -ry; dx <= ry; ++dx) {
            if (x + dx < 0 || x + dx >= X) continue;
            if (ids[i + dz * YX + dy * X + dx] != own) {
              b = 1;
              break;
            }
          }
        }
      }
    }
    out[i] = b;
  }
}
