// First voxel of every distinct id, for renumber on the GPU.
//
// pos[i] is the rank of voxel i's id among the sorted distinct ids; first[] starts at n (past
// the end) and ends as the smallest linear index of each id (an atomic minimum).

__global__ void renumber_first(const long long* __restrict__ pos, unsigned long long* first,
                               long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)blockDim.x * gridDim.x) {
    atomicMin(&first[pos[i]], (unsigned long long)i);
  }
}
