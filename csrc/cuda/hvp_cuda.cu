// The output step of the R-pass (Hessian- and Gauss-Newton-vector products): the
// directional derivative of the logits, R z, multiplied by the cross-entropy's Hessian
// with respect to the logits, one thread per example (sigmoid_curvature /
// softmax_curvature_vp from csrc/common/curvature_formulas.h, shared with the CPU).
#include "common/curvature_formulas.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace sgdcore::cuda {
namespace {

template <class T>
__global__ void output_curvature_kernel(const T* __restrict__ Pm, T* __restrict__ R, int64_t n,
                                        int64_t K) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  if (K == 1) {
    R[i] *= sigmoid_curvature(Pm[i]);
    return;
  }
  softmax_curvature_vp(Pm + i * K, R + i * K, K, R + i * K);
}

}  // namespace

template <class T> void output_curvature(ptr Pm, ptr R, int64_t n, int64_t K, ptr stream) {
  output_curvature_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<const T*>(Pm), reinterpret_cast<T*>(R), n, K);
  check_launch("output_curvature");
}

template void output_curvature<float>(ptr, ptr, int64_t, int64_t, ptr);
template void output_curvature<double>(ptr, ptr, int64_t, int64_t, ptr);

}  // namespace sgdcore::cuda
