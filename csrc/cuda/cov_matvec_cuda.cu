// The fused steps of the gradient-covariance product F v (sgdcore/grads.py):
// s_i = g_i . v accumulated layer by layer as delta_i . (V_W a_i + v_b) (the GEMM
// V_W a_i is cuBLAS's), then the backward pass's residuals weighted by s_i.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace sgdcore::cuda {
namespace {

template <class T>
__global__ void row_dot_add_kernel(const T* __restrict__ delta, const T* __restrict__ u,
                                   int64_t n, int64_t k, double* __restrict__ s) {
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= n) return;
  double acc = 0.0;
  for (int64_t j = lane; j < k; j += 32) acc += double(delta[warp * k + j]) * double(u[warp * k + j]);
  acc = warp_sum(acc);
  if (lane == 0) s[warp] += acc;
}

template <class T>
__global__ void scale_rows_kernel(const T* __restrict__ delta, const double* __restrict__ s,
                                  int64_t n, int64_t k, T* __restrict__ out) {
  const int64_t total = n * k;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x)
    out[e] = delta[e] * T(s[e / k]);
}

}  // namespace

template <class T> void row_dot_add(ptr delta, ptr u, int64_t n, int64_t k, ptr s, ptr stream) {
  row_dot_add_kernel<T><<<blocks_for(n * 32), kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<const T*>(delta), reinterpret_cast<const T*>(u), n, k,
      reinterpret_cast<double*>(s));
  check_launch("row_dot_add");
}

template <class T> void scale_rows(ptr delta, ptr s, int64_t n, int64_t k, ptr out, ptr stream) {
  const unsigned b = blocks_for(n * k);
  scale_rows_kernel<T><<<b < 65535u ? b : 65535u, kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<const T*>(delta), reinterpret_cast<const double*>(s), n, k,
      reinterpret_cast<T*>(out));
  check_launch("scale_rows");
}

template void row_dot_add<float>(ptr, ptr, int64_t, int64_t, ptr, ptr);
template void row_dot_add<double>(ptr, ptr, int64_t, int64_t, ptr, ptr);
template void scale_rows<float>(ptr, ptr, int64_t, int64_t, ptr, ptr);
template void scale_rows<double>(ptr, ptr, int64_t, int64_t, ptr, ptr);

}  // namespace sgdcore::cuda
