// Image-only augmentation of a batch (B, PZ, PY, PX) float32, one launch per operation.
// neurons_jax/augment/defects.py and intensity.py are the CPU references.
//
//   augment_pointwise  source section (missing section filled from a neighbour), low contrast
//                      m + (v - m) f, contrast/brightness ((v - .5) s + .5) + b, clip, gamma,
//                      blank sections, dark lines / charging bands, blobs set to a constant
//   augment_motion     mean of the listed integer taps (edge-clamped) in flagged sections
//   augment_blur       one in-plane axis of a separable Gaussian, reflect-101 borders
//   augment_noise      v += sigma * table[lowbias32(lowbias32(i) ^ key) >> 16], i the flat index
//                      of the voxel in its patch (bitwise the NumPy noise)
//
// Tables per sample b: zsrc (B, PZ) int; sec (B, PZ, 4) = low-contrast factor, scale, shift,
// blank; spar (B, 4) = intensity flag, gamma, missing value, unused; lines (B, NL, 8) =
// z, cy, cx, ny, nx, width, strength, kind; blobs (B, NB, 7) = z, cy, cx, a, b2, c, value.

#define NJ_MUL(a, b) __fmul_rn((a), (b))
#define NJ_ADD(a, b) __fadd_rn((a), (b))
#define NJ_SUB(a, b) __fsub_rn((a), (b))

__global__ void augment_pointwise(const float* __restrict__ in, float* __restrict__ out,
                                  const int* __restrict__ zsrc, const float* __restrict__ sec,
                                  const float* __restrict__ means, const float* __restrict__ spar,
                                  const float* __restrict__ lines, const int* __restrict__ nlines,
                                  const float* __restrict__ blobs, const int* __restrict__ nblobs,
                                  int pz, int py, int px, int nl_max, int nb_max, long long total) {
  const long long svox = (long long)py * px;
  const long long pvox = pz * svox;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long b = i / pvox;
    const unsigned int r = (unsigned int)(i - b * pvox);  // a patch has < 2**31 voxels
    const unsigned int rs = r % (unsigned int)svox;      // index within the section
    const int z = (int)(r / (unsigned int)svox);
    const int y = (int)(rs / (unsigned int)px);
    const int x = (int)(rs % (unsigned int)px);
    const int zs = zsrc[b * pz + z];
    const float* sc = sec + (b * pz + zs) * 4;
    float v = in[(b * pz + zs) * svox + rs];
    if (sc[0] != 1.0f) {
      const float m = means[b * pz + zs];
      v = m + (v - m) * sc[0];
    }
    const float* sp = spar + b * 4;
    if (sp[0] != 0.0f) {
      v = ((v - 0.5f) * sc[1] + 0.5f) + sc[2];
      v = fminf(fmaxf(v, 0.0f), 1.0f);
      if (sp[1] != 1.0f) v = powf(v, sp[1]);
    }
    if (sec[(b * pz + z) * 4 + 3] != 0.0f) v = sp[2];
    const float yf = (float)y, xf = (float)x;
    for (int l = 0; l < nlines[b]; ++l) {
      const float* row = lines + (b * nl_max + l) * 8;
      if ((int)row[0] != z) continue;
      const float d = (yf - row[1]) * row[3] + (xf - row[2]) * row[4];
      if (row[7] == 0.0f) {
        const float g = d / row[5];
        v = v * (1.0f - row[6] * expf(-0.5f * g * g));
      } else {
        v = v + row[6] * expf(-fabsf(d) / row[5]);
      }
    }
    for (int l = 0; l < nblobs[b]; ++l) {
      const float* row = blobs + (b * nb_max + l) * 7;
      if ((int)row[0] != z) continue;
      const float dy = NJ_SUB(yf, row[1]), dx = NJ_SUB(xf, row[2]);
      const float t = NJ_ADD(NJ_ADD(NJ_MUL(NJ_MUL(row[3], dy), dy), NJ_MUL(NJ_MUL(row[4], dy), dx)),
                             NJ_MUL(NJ_MUL(row[5], dx), dx));
      if (t <= 1.0f) v = row[6];
    }
    out[i] = v;
  }
}

// sec_taps (B, PZ): index of the tap set of a section, -1 for none; taps (NT, maxt, 2) = dy, dx.
__global__ void augment_motion(const float* __restrict__ in, float* __restrict__ out,
                               const int* __restrict__ sec_taps, const int* __restrict__ taps,
                               const int* __restrict__ ntaps, int maxt, int pz, int py, int px,
                               long long total) {
  const long long svox = (long long)py * px;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long bz = i / svox;  // b * pz + z
    const int t = sec_taps[bz];
    if (t < 0) {
      out[i] = in[i];
      continue;
    }
    const unsigned int r = (unsigned int)(i - bz * svox);
    const int y = (int)(r / (unsigned int)px), x = (int)(r % (unsigned int)px);
    const float* sec = in + bz * svox;
    const int* tp = taps + (long long)t * maxt * 2;
    const int n = ntaps[t];
    float acc = 0.0f;
    for (int j = 0; j < n; ++j) {
      const int yy = min(max(y + tp[2 * j], 0), py - 1);
      const int xx = min(max(x + tp[2 * j + 1], 0), px - 1);
      const float v = sec[(long long)yy * px + xx];
      acc = j == 0 ? v : acc + v;
    }
    out[i] = acc / (float)n;
  }
}

__device__ __forceinline__ int nj_reflect101(int p, int len) {
  if (len == 1) return 0;
  while (p < 0 || p >= len) p = p < 0 ? -p : 2 * (len - 1) - p;
  return p;
}

// w (B, 2 rmax + 1) centred taps, radius (B,) (0: copy). axis 1: y, 2: x.
__global__ void augment_blur(const float* __restrict__ in, float* __restrict__ out,
                             const float* __restrict__ w, const int* __restrict__ radius, int rmax,
                             int axis, int pz, int py, int px, long long total) {
  const long long svox = (long long)py * px;
  const long long pvox = pz * svox;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long b = i / pvox;
    const int rad = radius[b];
    if (rad == 0) {
      out[i] = in[i];
      continue;
    }
    const unsigned int r = (unsigned int)(i - b * pvox) % (unsigned int)svox;
    const int y = (int)(r / (unsigned int)px), x = (int)(r % (unsigned int)px);
    const int len = axis == 1 ? py : px;
    const int pos = axis == 1 ? y : x;
    const long long stride = axis == 1 ? px : 1;
    const long long base = i - (long long)pos * stride;
    const float* wb = w + b * (2 * rmax + 1) + rmax;
    float acc = 0.0f;
    for (int t = -rad; t <= rad; ++t) {
      acc += wb[t] * in[base + (long long)nj_reflect101(pos + t, len) * stride];
    }
    out[i] = acc;
  }
}

__device__ __forceinline__ unsigned int nj_lowbias32(unsigned int x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// In place; sigma (B,) (0: untouched), keys (B,) = lowbias32(seed ^ 0x9E3779B9), table (65536,).
__global__ void augment_noise(float* __restrict__ img, const float* __restrict__ sigma,
                              const unsigned int* __restrict__ keys,
                              const float* __restrict__ table, long long pvox, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long b = i / pvox;
    const float s = sigma[b];
    if (s == 0.0f) continue;
    const unsigned int h = nj_lowbias32(nj_lowbias32((unsigned int)(i - b * pvox)) ^ keys[b]);
    img[i] = img[i] + s * table[h >> 16];
  }
}
