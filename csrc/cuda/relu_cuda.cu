// The hidden layer's elementwise steps around its GEMMs: bias + ReLU on the forward pass,
// and the ReLU mask on the backward and R-passes (relu / relu_grad from
// csrc/common/formulas.h, shared with the CPU).
#include "common/formulas.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace sgdcore::cuda {
namespace {

template <class T>
__global__ void bias_relu_kernel(T* __restrict__ A, const T* __restrict__ b, int64_t n,
                                 int64_t H) {
  const int64_t total = n * H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x)
    A[e] = relu(A[e] + b[e % H]);
}

template <class T>
__global__ void relu_mask_kernel(T* __restrict__ D, const T* __restrict__ A, int64_t total) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x)
    D[e] *= relu_grad(A[e]);
}

// Grid-stride loops over at most this many blocks.
inline unsigned capped_blocks(int64_t total) {
  const unsigned b = blocks_for(total);
  return b < 65535u ? b : 65535u;
}

}  // namespace

template <class T> void bias_relu(ptr A, ptr b, int64_t n, int64_t H, ptr stream) {
  bias_relu_kernel<T><<<capped_blocks(n * H), kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<T*>(A), reinterpret_cast<const T*>(b), n, H);
  check_launch("bias_relu");
}

template <class T> void relu_mask(ptr D, ptr A, int64_t n, int64_t H, ptr stream) {
  relu_mask_kernel<T><<<capped_blocks(n * H), kThreads, 0, stream_of(stream)>>>(
      reinterpret_cast<T*>(D), reinterpret_cast<const T*>(A), n * H);
  check_launch("relu_mask");
}

template void bias_relu<float>(ptr, ptr, int64_t, int64_t, ptr);
template void bias_relu<double>(ptr, ptr, int64_t, int64_t, ptr);
template void relu_mask<float>(ptr, ptr, int64_t, int64_t, ptr);
template void relu_mask<double>(ptr, ptr, int64_t, int64_t, ptr);

}  // namespace sgdcore::cuda
