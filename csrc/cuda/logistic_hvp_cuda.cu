// Hessian-vector product of the binary logistic model's cross-entropy in one pass over X:
// for each row, z_i = x_i . w + b and r_i = x_i . v + v_b are formed together, then
// c_i = p_i (1 - p_i) r_i (sigmoid_curvature, shared with the CPU) and c_i [x_i, 1] is
// added to the block's partial sum while the row is still in cache. Each block owns a
// fixed range of rows and every sum runs in a fixed order, so the result does not depend
// on the device or the launch; a second kernel adds the blocks' partials in order.
#include "common/curvature_formulas.h"
#include "common/formulas.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace sgdcore::cuda {
namespace {

constexpr int64_t kRowsPerBlock = 64;

// Sum of one value per thread over the block (kThreads threads), in a fixed order;
// every thread gets the total. `scratch` holds kThreads / 32 doubles.
__device__ inline double block_sum(double v, double* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // scratch may still be read from the previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kThreads / 32; ++w) total += scratch[w];
  return total;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    logistic_hvp_rows(const T* __restrict__ X, int64_t n, int64_t D, const T* __restrict__ theta,
                      const T* __restrict__ Pm, const T* __restrict__ v,
                      double* __restrict__ partial) {
  __shared__ double scratch_z[kThreads / 32], scratch_r[kThreads / 32];
  double* acc = partial + blockIdx.x * (D + 1);
  for (int64_t c = threadIdx.x; c <= D; c += kThreads) acc[c] = 0.0;
  const int64_t first = blockIdx.x * kRowsPerBlock;
  const int64_t last = first + kRowsPerBlock < n ? first + kRowsPerBlock : n;
  for (int64_t i = first; i < last; ++i) {
    const T* x = X + i * D;
    double zs = 0.0, rs = 0.0;
    for (int64_t c = threadIdx.x; c < D; c += kThreads) {
      const double xc = double(x[c]);
      rs += xc * double(v[c]);
      if (!Pm) zs += xc * double(theta[c]);
    }
    const double r = block_sum(rs, scratch_r) + double(v[D]);
    const T p = Pm ? Pm[i] : sigmoid(T(block_sum(zs, scratch_z) + double(theta[D])));
    const double ci = double(sigmoid_curvature(p)) * r;
    for (int64_t c = threadIdx.x; c < D; c += kThreads) acc[c] += ci * double(x[c]);
    if (threadIdx.x == 0) acc[D] += ci;
  }
}

template <class T>
__global__ void add_partials(const double* __restrict__ partial, int64_t blocks, int64_t width,
                             T* __restrict__ out) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= width) return;
  double s = 0.0;
  for (int64_t b = 0; b < blocks; ++b) s += partial[b * width + c];
  out[c] = T(s);
}

int64_t row_blocks(int64_t n) { return (n + kRowsPerBlock - 1) / kRowsPerBlock; }

}  // namespace

int64_t logistic_hvp_partials(int64_t n, int64_t D) { return row_blocks(n) * (D + 1); }

template <class T>
void logistic_hvp(ptr X, int64_t n, int64_t D, ptr theta, ptr Pm, ptr v, ptr partial, ptr out,
                  ptr stream) {
  const int64_t blocks = row_blocks(n);
  if (blocks > 2147483647LL)
    throw std::invalid_argument("sgdcore._cuda.logistic_hvp: too many rows for one launch");
  const cudaStream_t s = stream_of(stream);
  logistic_hvp_rows<T><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(
      reinterpret_cast<const T*>(X), n, D, reinterpret_cast<const T*>(theta),
      reinterpret_cast<const T*>(Pm), reinterpret_cast<const T*>(v),
      reinterpret_cast<double*>(partial));
  check_launch("logistic_hvp");
  add_partials<T><<<blocks_for(D + 1), kThreads, 0, s>>>(
      reinterpret_cast<const double*>(partial), blocks, D + 1, reinterpret_cast<T*>(out));
  check_launch("logistic_hvp");
}

template void logistic_hvp<float>(ptr, int64_t, int64_t, ptr, ptr, ptr, ptr, ptr, ptr);
template void logistic_hvp<double>(ptr, int64_t, int64_t, ptr, ptr, ptr, ptr, ptr, ptr);

}  // namespace sgdcore::cuda
