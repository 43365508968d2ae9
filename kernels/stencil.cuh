// Neighbour stencils of the 3D connectivities, shared by the label kernels (ccl.cu, instances.cu).
//
// A 2D input runs as one section (4 -> 6, 8 -> 26), so only 6, 18 and 26 exist here. An offset
// (dz, dy, dx) with entries in {-1, 0, 1} is a neighbour when it moves along at least one axis
// and at most along 1 (CONN 6), 2 (CONN 18) or 3 (CONN 26) axes: the offsets of
// neurons_jax.backend.stencil. Included through -I<kernels folder> (NVRTC and the CPU stand-in).

#pragma once

// Is (dz, dy, dx) in the stencil of the connectivity?
template <int CONN>
__device__ __forceinline__ bool in_stencil(int dz, int dy, int dx) {
  const int s = (dz != 0) + (dy != 0) + (dx != 0);
  if (s == 0) return false;
  if (CONN == 6) return s == 1;
  if (CONN == 18) return s <= 2;
  return true;
}
