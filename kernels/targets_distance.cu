// Exact multi-label anisotropic Euclidean distance transform, one axis per launch, and a
// segment maximum for the per-instance normalisation.
//
// The distance at a labelled voxel v is min over voxels u of v's sample with ids[u] != ids[v]
// of |u - v| in nm (background included; outside the array is no voxel: edt's
// black_border=False); 0 at background. Separable: pass x gives f1[v] = squared distance along
// x to the nearest voxel of another id; pass y gives f2[v] = min over w on v's y-line of
// dy^2 + f(w), where f(w) = f1[w] for w in v's run of ids[v] along y and 0 at the first voxel of
// another id that ends the run (farther voxels cannot be nearer); pass z likewise, then sqrt.
// Each thread scans outwards from its voxel and stops once dy^2 reaches the best value so far.
//
// ids and the float buffers are (B, Z, Y, X) flattened in C order; an axis is given by its
// length n and stride (1 for x, X for y, Y*X for z); a2 is the squared voxel size on it.

template <typename T>
__global__ void edt_pass(const T* __restrict__ ids, const float* __restrict__ in, int has_in,
                         float* __restrict__ out, long long n, long long stride, float a2,
                         int take_sqrt, long long total) {
  const float inf = __uint_as_float(0x7f800000u);
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const T own = ids[i];
    if (own == (T)0) {
      out[i] = 0.0f;
      continue;
    }
    const long long p = (i / stride) % n;
    float best = has_in ? in[i] : inf;
    bool ldone = false, rdone = false;
    for (long long k = 1; !(ldone && rdone); ++k) {
      const float d = (float)k * (float)k * a2;
      if (d >= best) break;
      if (!ldone) {
        if (p - k < 0) {
          ldone = true;
        } else {
          const long long j = i - k * stride;
          if (ids[j] != own) {
            best = d;  // d < best here
            ldone = true;
          } else if (has_in) {
            const float c = d + in[j];
            if (c < best) best = c;
          }
        }
      }
      if (!rdone) {
        if (p + k >= n) {
          rdone = true;
        } else {
          const long long j = i + k * stride;
          if (ids[j] != own) {
            if (d < best) best = d;
            rdone = true;
          } else if (has_in) {
            const float c = d + in[j];
            if (c < best) best = c;
          }
        }
      }
    }
    out[i] = take_sqrt ? sqrtf(best) : best;
  }
}

// out[index[i]] = max over i of values[i] (values >= 0: their bits order as unsigned ints);
// out must start at 0.
__global__ void segment_max(const float* __restrict__ values, const long long* __restrict__ index,
                            unsigned int* __restrict__ out, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    atomicMax(out + index[i], __float_as_uint(values[i]));
  }
}
