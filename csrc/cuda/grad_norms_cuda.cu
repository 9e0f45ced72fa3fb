// Per-example squared gradient norms of one dense layer from its two factors:
// |g_i|^2 = |delta_i|^2 (|a_i|^2 + 1), one warp per example, double accumulation in a
// fixed order. No per-example gradient is formed: memory is O(n), not O(n P).
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace sgdcore::cuda {
namespace {

template <class T>
__device__ inline double row_sumsq(const T* __restrict__ r, int64_t len, int lane) {
  double s = 0.0;
  for (int64_t j = lane; j < len; j += 32) {
    const double v = double(r[j]);
    s += v * v;
  }
  return warp_sum(s);
}

template <class T>
__global__ void layer_sqnorms_kernel(const T* __restrict__ delta, int64_t k,
                                     const T* __restrict__ a, int64_t d, int64_t n,
                                     double* __restrict__ out, bool accumulate) {
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= n) return;  // whole warps leave together: n is per warp
  const double dd = row_sumsq(delta + warp * k, k, lane);
  const double aa = row_sumsq(a + warp * d, d, lane);
  if (lane == 0) {
    const double v = dd * (aa + 1.0);
    out[warp] = accumulate ? out[warp] + v : v;
  }
}

}  // namespace

template <class T>
void layer_sqnorms(ptr delta, int64_t k, ptr a, int64_t d, int64_t n, ptr out, bool accumulate,
                   ptr stream) {
  layer_sqnorms_kernel<T><<<blocks_for(n * 32), kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<const T*>(delta), k, reinterpret_cast<const T*>(a), d, n,
      reinterpret_cast<double*>(out), accumulate);
  check_launch("layer_sqnorms");
}

template void layer_sqnorms<float>(ptr, int64_t, ptr, int64_t, int64_t, ptr, bool, ptr);
template void layer_sqnorms<double>(ptr, int64_t, ptr, int64_t, int64_t, ptr, bool, ptr);

}  // namespace sgdcore::cuda
