// Union remap: native label ids -> uint8 union classes through a sorted step table.
//
// edges[0] < edges[1] < ... < edges[ne-1] are the ids where the class changes; cls has ne + 1
// entries: cls[0] below edges[0], cls[j] for ids in [edges[j-1], edges[j]). A binary search
// counts the edges <= v; the table is tiny and stays in the L1 cache.
//
// T: the label type (the edges are given in the same type, so comparisons are exact for
// uint64 ids above 2**63 and for signed labels).

template <typename T>
__global__ void union_remap(const T* __restrict__ labels, unsigned char* __restrict__ out,
                            const T* __restrict__ edges, const unsigned char* __restrict__ cls,
                            int ne, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)blockDim.x * gridDim.x) {
    const T v = labels[i];
    int lo = 0, hi = ne;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (edges[mid] <= v) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    out[i] = cls[lo];
  }
}
