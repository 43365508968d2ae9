// Fused augmentation warp: one launch samples image, labels and mask of a whole batch.
//
// Batch (B, PZ, PY, PX) of outputs from inputs (B, SZ, SY, SX), C order: row b holds a box of
// sample b's context (shape C_b) at its low corner, the box [origin_b, origin_b + box_b) (the
// whole context when origin = 0 and box = C = S; the rest of the row is padding, never read).
// For output voxel o of sample b (neurons_jax/augment/grid.py is the reference; every step below
// repeats it):
//   k_a = flip_a ? P_a - 1 - o[perm_a] : o[perm_a]            exact symmetry (canonical index)
//   q_a = float(k_a) - (P_a - 1) / 2
//   s_a = ((c_a + ((A[a,0] q_z + A[a,1] q_y) + A[a,2] q_x)) + d_a) + t_a
// with d the cubic B-spline of the control grid (summed along x, then y, then z, left to right)
// and t the misalignment of canonical section k_z (y, x only). Every multiply and add of the
// coordinates uses __fmul_rn / __fadd_rn: no contraction into FMA, so the float32 result is
// bitwise the NumPy one and nearest-neighbour labels agree bitwise between the backends.
// Image: bilinear in the section (planar params) or trilinear, lerp(a, b, f) = a (1 - f) + b f;
// labels and mask: the voxel at rint(s) (round half to even, like cv2 INTER_NEAREST), bits copied.
//
// fpar (B, 12): affine row-major (9), unused (3).
// ipar (B, 8): perm (3), flip (3), planar, flags (1: elastic grid, 2: misalignment).
// gpar (B, 9): context shape C (3), box origin (3), box shape (3). Positions are computed in the
// full-context frame (centre c = (C - 1) / 2); every tap is an integer there (floor, +1, rint),
// then the origin is subtracted and the tap clamped to the box: no float rounding is added, so a
// box holding every tap gives the full context's output exactly.
// TI: the image type, read as float(v) / float(max of the type), the scaling of
// neurons_jax/stage.py to_float_image: unsigned char (/255), unsigned short (/65535), unsigned int
// (/4294967296.0f, float32 of 2**32 - 1), signed char (/127), short (/32767), int
// (/2147483648.0f, float32 of 2**31 - 1); float as given. TL, TM: unsigned label and mask types
// (a dummy 1-element array when absent: has_* = 0).

#define NJ_MUL(a, b) __fmul_rn((a), (b))
#define NJ_ADD(a, b) __fadd_rn((a), (b))
#define NJ_SUB(a, b) __fsub_rn((a), (b))

template <typename TI>
__device__ __forceinline__ float nj_load(const TI* p, long long i);

template <>
__device__ __forceinline__ float nj_load<float>(const float* p, long long i) {
  return p[i];
}

template <>
__device__ __forceinline__ float nj_load<unsigned char>(const unsigned char* p, long long i) {
  return (float)p[i] / 255.0f;
}

template <>
__device__ __forceinline__ float nj_load<unsigned short>(const unsigned short* p, long long i) {
  return (float)p[i] / 65535.0f;
}

template <>
__device__ __forceinline__ float nj_load<unsigned int>(const unsigned int* p, long long i) {
  return (float)p[i] / 4294967296.0f;  // (float)4294967295: rounds to 2**32, as NumPy's float32
}

template <>
__device__ __forceinline__ float nj_load<signed char>(const signed char* p, long long i) {
  return (float)p[i] / 127.0f;
}

template <>
__device__ __forceinline__ float nj_load<short>(const short* p, long long i) {
  return (float)p[i] / 32767.0f;
}

template <>
__device__ __forceinline__ float nj_load<int>(const int* p, long long i) {
  return (float)p[i] / 2147483648.0f;  // (float)2147483647: rounds to 2**31, as NumPy's float32
}

__device__ __forceinline__ int nj_clamp(int v, int hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

__device__ __forceinline__ float nj_lerp(float a, float b, float f) {
  return NJ_ADD(NJ_MUL(a, NJ_SUB(1.0f, f)), NJ_MUL(b, f));
}

// One displacement component of the cubic B-spline grid G (gz, gy, gx) at canonical (kz, ky, kx).
__device__ __forceinline__ float nj_spline(const float* G, int gy, int gx, const float* wz,
                                           const int* iz, const float* wy, const int* iy,
                                           const float* wx, const int* ix, int kz, int ky,
                                           int kx) {
  const float* wzk = wz + 4 * kz;
  const float* wyk = wy + 4 * ky;
  const float* wxk = wx + 4 * kx;
  const int z0 = iz[kz], y0 = iy[ky], x0 = ix[kx];
  float acc_z = 0.0f;
  for (int a = 0; a < 4; ++a) {
    float acc_y = 0.0f;
    for (int b = 0; b < 4; ++b) {
      const float* row = G + ((long long)(z0 + a) * gy + (y0 + b)) * gx + x0;
      float acc_x = NJ_MUL(wxk[0], row[0]);
      acc_x = NJ_ADD(acc_x, NJ_MUL(wxk[1], row[1]));
      acc_x = NJ_ADD(acc_x, NJ_MUL(wxk[2], row[2]));
      acc_x = NJ_ADD(acc_x, NJ_MUL(wxk[3], row[3]));
      acc_y = b == 0 ? NJ_MUL(wyk[0], acc_x) : NJ_ADD(acc_y, NJ_MUL(wyk[b], acc_x));
    }
    acc_z = a == 0 ? NJ_MUL(wzk[0], acc_y) : NJ_ADD(acc_z, NJ_MUL(wzk[a], acc_y));
  }
  return acc_z;
}

template <typename TI>
__device__ __forceinline__ float nj_bilinear(const TI* src, int by, int bx, int oy, int ox,
                                             int sx, float sy_, float sx_) {
  const float fy = floorf(sy_), fx = floorf(sx_);
  const float ty = NJ_SUB(sy_, fy), tx = NJ_SUB(sx_, fx);
  // each tap clamped on its own: a border voxel is replicated (cv2 BORDER_REPLICATE), also
  // for a coordinate just below 0, whose lower tap is -1; box frame = context frame - origin
  const int y0 = nj_clamp((int)fy - oy, by - 1), x0 = nj_clamp((int)fx - ox, bx - 1);
  const int y1 = nj_clamp((int)fy + 1 - oy, by - 1), x1 = nj_clamp((int)fx + 1 - ox, bx - 1);
  const float v0 = nj_lerp(nj_load(src, (long long)y0 * sx + x0), nj_load(src, (long long)y0 * sx + x1), tx);
  const float v1 = nj_lerp(nj_load(src, (long long)y1 * sx + x0), nj_load(src, (long long)y1 * sx + x1), tx);
  return nj_lerp(v0, v1, ty);
}

template <typename TI, typename TL, typename TM>
__global__ void augment_warp(const TI* __restrict__ img, float* __restrict__ img_out,
                             const TL* __restrict__ lab, TL* __restrict__ lab_out,
                             const TM* __restrict__ msk, TM* __restrict__ msk_out,
                             const float* __restrict__ fpar, const int* __restrict__ ipar,
                             const float* __restrict__ elastic, const float* __restrict__ misalign,
                             const float* __restrict__ wz, const int* __restrict__ iz,
                             const float* __restrict__ wy, const int* __restrict__ iy,
                             const float* __restrict__ wx, const int* __restrict__ ix,
                             const int* __restrict__ gpar, int pz, int py, int px, int sz,
                             int sy, int sx, int gz, int gy, int gx, int has_img, int has_lab,
                             int has_msk, long long total) {
  const long long pvox = (long long)pz * py * px;
  const long long svox = (long long)sz * sy * sx;
  const long long gvox = (long long)gz * gy * gx;
  const int P[3] = {pz, py, px};
  const int S[3] = {sz, sy, sx};
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const long long b = i / pvox;
    const unsigned int r = (unsigned int)(i - b * pvox);  // a patch has < 2**31 voxels
    const unsigned int upx = (unsigned int)px;
    const int o[3] = {(int)(r / (upx * (unsigned int)py)), (int)((r / upx) % (unsigned int)py), (int)(r % upx)};
    const int* ip = ipar + b * 8;
    const float* A = fpar + b * 12;
    const int* C = gpar + b * 9;  // context shape, then box origin (C + 3), box shape (C + 6)
    const int* O = C + 3;
    const int* X = C + 6;
    const int planar = ip[6], flags = ip[7];
    int k[3];
    float q[3];
    for (int a = 0; a < 3; ++a) {
      const int v = o[ip[a]];
      k[a] = ip[3 + a] ? P[a] - 1 - v : v;
      q[a] = NJ_SUB((float)k[a], 0.5f * (float)(P[a] - 1));
    }
    float s[3];
    for (int a = 0; a < 3; ++a) {
      const float off = NJ_ADD(NJ_ADD(NJ_MUL(A[3 * a], q[0]), NJ_MUL(A[3 * a + 1], q[1])),
                               NJ_MUL(A[3 * a + 2], q[2]));
      s[a] = NJ_ADD(0.5f * (float)(C[a] - 1), off);
    }
    if (flags & 1) {
      const float* G = elastic + b * 3 * gvox;
      for (int a = planar ? 1 : 0; a < 3; ++a) {
        s[a] = NJ_ADD(s[a], nj_spline(G + a * gvox, gy, gx, wz, iz, wy, iy, wx, ix, k[0], k[1], k[2]));
      }
    }
    if (flags & 2) {
      const float* t = misalign + ((long long)b * pz + k[0]) * 2;
      s[1] = NJ_ADD(s[1], t[0]);
      s[2] = NJ_ADD(s[2], t[1]);
    }
    if (has_img) {
      const TI* src = img + b * svox;
      const long long sec = (long long)sy * sx;
      float v;
      if (planar) {
        const int z = nj_clamp((int)rintf(s[0]) - O[0], X[0] - 1);
        v = nj_bilinear(src + z * sec, X[1], X[2], O[1], O[2], sx, s[1], s[2]);
      } else {
        const float fz = floorf(s[0]);
        const float tz = NJ_SUB(s[0], fz);
        const int z0 = nj_clamp((int)fz - O[0], X[0] - 1);
        const int z1 = nj_clamp((int)fz + 1 - O[0], X[0] - 1);
        const float v0 = nj_bilinear(src + z0 * sec, X[1], X[2], O[1], O[2], sx, s[1], s[2]);
        const float v1 = nj_bilinear(src + z1 * sec, X[1], X[2], O[1], O[2], sx, s[1], s[2]);
        v = nj_lerp(v0, v1, tz);
      }
      img_out[i] = v;
    }
    if (has_lab || has_msk) {
      long long n = 0;
      for (int a = 0; a < 3; ++a) n = n * S[a] + nj_clamp((int)rintf(s[a]) - O[a], X[a] - 1);
      if (has_lab) lab_out[i] = lab[b * svox + n];
      if (has_msk) msk_out[i] = msk[b * svox + n];
    }
  }
}
