// What every CUDA kernel file shares: the caller's stream, grid sizes, launch checks and
// a deterministic warp sum. Included by the .cu files only (nvcc).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace sgdcore::cuda {

constexpr int kThreads = 256;

// The CUstream / cudaStream_t handle the caller passed as an integer (CuPy's
// `cupy.cuda.get_current_stream().ptr`; 0 is the legacy default stream).
inline cudaStream_t stream_of(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

inline unsigned blocks_for(int64_t work, int threads = kThreads) {
  const int64_t b = (work + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// Raises if the launch just made failed (bad configuration, no device). Does not wait
// for the kernel: errors raised while it runs surface at the caller's next synchronising
// call, as with every asynchronous CUDA library.
inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("sgdcore._cuda.") + what + ": " + cudaGetErrorString(err));
}

// Sum over the 32 lanes of a warp, the same tree every time (so results are bitwise
// reproducible); every lane gets the total.
__device__ inline double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

}  // namespace sgdcore::cuda
