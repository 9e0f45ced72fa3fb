// The output layer's fused step: per-example cross-entropy, and the residual
// dCE/dz = p - onehot(y) (or the probabilities) written in place of the logits, one
// thread per example. The formulas are csrc/common/formulas.h's, shared with the CPU.
#include "common/formulas.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace sgdcore::cuda {
namespace {

template <class T>
__global__ void output_residual_kernel(T* __restrict__ Z, const int64_t* __restrict__ y,
                                       int64_t n, int64_t K, double* __restrict__ ce, int mode) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T* z = Z + i * K;
  if (K == 1) {
    const T zi = z[0];
    if (mode != kProbabilities) {
      const long long yi = y[i];
      if (ce) ce[i] = double(binary_xent(zi, yi));
      if (mode == kResidual) z[0] = sigmoid(zi) - T(yi);
    } else {
      z[0] = sigmoid(zi);
    }
    return;
  }
  if (mode == kLossOnly) {
    // CE = logsumexp(z) - z[y] without touching z.
    T m = z[0];
    for (int64_t c = 1; c < K; ++c) m = z[c] > m ? z[c] : m;
    T s = T(0);
    for (int64_t c = 0; c < K; ++c) s += std::exp(z[c] - m);
    if (ce) ce[i] = double(m + std::log(s) - z[y[i]]);
    return;
  }
  const long long yi = mode == kResidual ? y[i] : 0;
  const T xent = softmax_xent(z, K, yi, z);  // z <- p
  if (mode == kResidual) {
    if (ce) ce[i] = double(xent);
    z[yi] -= T(1);
  }
}

}  // namespace

template <class T>
void output_residual(ptr Z, ptr y, int64_t n, int64_t K, ptr ce, int mode, ptr stream) {
  if (mode < kLossOnly || mode > kProbabilities)
    throw std::invalid_argument("sgdcore._cuda.output_residual: mode must be 0, 1 or 2");
  output_residual_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<T*>(Z), reinterpret_cast<const int64_t*>(y), n, K,
      reinterpret_cast<double*>(ce), mode);
  check_launch("output_residual");
}

template void output_residual<float>(ptr, ptr, int64_t, int64_t, ptr, int, ptr);
template void output_residual<double>(ptr, ptr, int64_t, int64_t, ptr, int, ptr);

}  // namespace sgdcore::cuda
