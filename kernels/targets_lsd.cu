// Window sums of the local shape descriptors over every (label, box voxel) pair of a batch.
//
// Each label (segment s of one sample) is filtered over its bounding box grown by the window
// radius: box[s] = (b, z0, z1, y0, y1, x0, x1), its nz * ny * nx voxels are the items
// starts[s] .. starts[s + 1] - 1 of the flat buffers, in C order within the box. Per channel c
// (0: 1, 1-3: z, y, x, 4-9: zz, yy, xx, zy, zx, yx, float32 products of the coordinates):
// lsd_pass_z writes the z pass of mask_s * f_c into a; lsd_pass (axis 1: y, axis 2: x) filters
// a box buffer along y into another, or (final) along x into sums[v * 10 + c] at the voxels v of
// the label only. Every pass is scipy.ndimage.correlate1d's symmetric loop: double accumulation
// o = in[p] w[r], then o += (in[p - j] + in[p + j]) w[r - j] for j = r .. 1, rounded to float32;
// __dadd_rn / __dmul_rn keep the compiler from fusing them into FMAs (the host build of the
// tests' stand-in compiles with -ffp-contract=off instead).
//
// seg (B * Z * Y * X) int: segment of every voxel; boxes int64 (nseg, 7); starts int64 (nseg + 1).

#if defined(__CUDACC__)
#define NJ_DADD(a, b) __dadd_rn((a), (b))
#define NJ_DMUL(a, b) __dmul_rn((a), (b))
#else
#define NJ_DADD(a, b) ((a) + (b))
#define NJ_DMUL(a, b) ((a) * (b))
#endif

__device__ __forceinline__ long long lsd_segment(const long long* starts, long long nseg,
                                                 long long t) {
  long long lo = 0, hi = nseg;  // the last s with starts[s] <= t
  while (hi - lo > 1) {
    const long long mid = (lo + hi) / 2;
    if (starts[mid] <= t) lo = mid; else hi = mid;
  }
  return lo;
}

__device__ __forceinline__ float lsd_moment(int c, const float* cz, const float* cy,
                                            const float* cx, long long z, long long y,
                                            long long x) {
  switch (c) {
    case 0: return 1.0f;
    case 1: return cz[z];
    case 2: return cy[y];
    case 3: return cx[x];
    case 4: return __fmul_rn(cz[z], cz[z]);
    case 5: return __fmul_rn(cy[y], cy[y]);
    case 6: return __fmul_rn(cx[x], cx[x]);
    case 7: return __fmul_rn(cz[z], cy[y]);
    case 8: return __fmul_rn(cz[z], cx[x]);
    default: return __fmul_rn(cy[y], cx[x]);
  }
}

__global__ void lsd_boxes(const int* __restrict__ seg, int* __restrict__ lo,
                          int* __restrict__ hi, long long Z, long long Y, long long X,
                          long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long s = seg[i];
    const int x = (int)(i % X), y = (int)((i / X) % Y), z = (int)((i / (X * Y)) % Z);
    atomicMin(lo + 3 * s, z); atomicMin(lo + 3 * s + 1, y); atomicMin(lo + 3 * s + 2, x);
    atomicMax(hi + 3 * s, z); atomicMax(hi + 3 * s + 1, y); atomicMax(hi + 3 * s + 2, x);
  }
}

__global__ void lsd_pass_z(const int* __restrict__ seg, const long long* __restrict__ boxes,
                           const long long* __restrict__ starts, long long nseg,
                           const float* __restrict__ cz, const float* __restrict__ cy,
                           const float* __restrict__ cx, const double* __restrict__ w, int r,
                           int c, float* __restrict__ out, long long Z, long long Y, long long X,
                           long long items) {
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < items;
       t += (long long)blockDim.x * gridDim.x) {
    const long long s = lsd_segment(starts, nseg, t);
    const long long* bx = boxes + 7 * s;
    const long long nz = bx[2] - bx[1], ny = bx[4] - bx[3], nx = bx[6] - bx[5];
    const long long loc = t - starts[s];
    const long long i = loc % nx, j = (loc / nx) % ny, k = loc / (nx * ny);
    (void)nz;
    const long long y = bx[3] + j, x = bx[5] + i;
    const long long base = bx[0] * Z * Y * X + y * X + x;
    // the value of the masked moment at box row k + d (0 outside the box)
#define LSD_IN(kk) ((kk) < 0 || (kk) >= nz || seg[base + (bx[1] + (kk)) * Y * X] != (int)s \
                        ? 0.0 : (double)lsd_moment(c, cz, cy, cx, bx[1] + (kk), y, x))
    double o = NJ_DMUL(LSD_IN(k), w[r]);
    for (int d = -r; d < 0; ++d)
      o = NJ_DADD(o, NJ_DMUL(NJ_DADD(LSD_IN(k + d), LSD_IN(k - d)), w[r + d]));
#undef LSD_IN
    out[t] = (float)o;
  }
}

__global__ void lsd_pass(const float* __restrict__ in, const long long* __restrict__ boxes,
                         const long long* __restrict__ starts, long long nseg,
                         const double* __restrict__ w, int r, int axis, int final_pass,
                         const int* __restrict__ seg, int c, float* __restrict__ out,
                         long long Z, long long Y, long long X, long long items) {
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < items;
       t += (long long)blockDim.x * gridDim.x) {
    const long long s = lsd_segment(starts, nseg, t);
    const long long* bx = boxes + 7 * s;
    const long long ny = bx[4] - bx[3], nx = bx[6] - bx[5];
    const long long loc = t - starts[s];
    const long long i = loc % nx, j = (loc / nx) % ny, k = loc / (nx * ny);
    const long long v = bx[0] * Z * Y * X + (bx[1] + k) * Y * X + (bx[3] + j) * X + (bx[5] + i);
    if (final_pass && seg[v] != (int)s) continue;
    const long long n = axis == 1 ? ny : nx, p = axis == 1 ? j : i, step = axis == 1 ? nx : 1;
    double o = NJ_DMUL((double)in[t], w[r]);
    for (int d = -r; d < 0; ++d) {
      const double a = (p + d >= 0) ? (double)in[t + d * step] : 0.0;
      const double b = (p - d < n) ? (double)in[t - d * step] : 0.0;
      o = NJ_DADD(o, NJ_DMUL(NJ_DADD(a, b), w[r + d]));
    }
    if (final_pass) out[v * 10 + c] = (float)o;
    else out[t] = (float)o;
  }
}
