// The Gram matrix of the per-example gradients, out[i, j] = g_i . g_j, without forming
// them: a dense layer z = W a + b contributes (delta_i . delta_j)(a_i . a_j + 1), so the
// whole matrix is a sum of Hadamard products of four (MLP) or two (logistic) GEMMs.
// Memory O(N^2 + N (H + K)); used for the exact spectrum of the noise covariance.
#include "cpu/bind_data.h"
#include "cpu/per_example.h"

namespace sgdcore::cpu {
namespace {  // this file's kernels and binding helpers

// out (+)= (L L^T) o (In In^T + 1) for the layer with residual L [N, wl], input In [N, wi].
template <class T>
void layer_gram(int64_t N, const T* L, int64_t wl, const T* In, int64_t wi, T* S1, T* S2,
                T* out, bool accumulate) {
  blas::gemm<T>(false, true, N, N, wi, T(1), In, wi, In, wi, T(0), S1, N);
  blas::gemm<T>(false, true, N, N, wl, T(1), L, wl, L, wl, T(0), S2, N);
  const int64_t NN = N * N;
  if (accumulate)
    for (int64_t i = 0; i < NN; ++i) out[i] += S2[i] * (S1[i] + T(1));
  else
    for (int64_t i = 0; i < NN; ++i) out[i] = S2[i] * (S1[i] + T(1));
}

template <class T>
void grad_gram(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N, T* out) {
  if (N == 0) return;
  Residuals<T> w(m, N);
  residuals(m, theta, X, y, N, w.A.data(), w.R.data(), w.dA.data());
  std::vector<T> S1(N * N), S2(N * N);
  const int64_t K = m.K();
  if (m.kind == Kind::MLP) {
    layer_gram(N, w.dA.data(), m.H, X, m.D, S1.data(), S2.data(), out, false);
    layer_gram(N, w.R.data(), K, w.A.data(), m.H, S1.data(), S2.data(), out, true);
  } else {
    layer_gram(N, w.R.data(), K, X, m.D, S1.data(), S2.data(), out, false);
  }
}

}  // namespace

SGDCORE_BIND(grad_gram) {
  def_on_data(
      m, "grad_gram",
      [](const Model& mod, auto d, const py::array& out) {
        using T = typename decltype(d)::value_type;
        T* o = checked<T>(out, "out", {d.N, d.N}, true);
        py::gil_scoped_release release;
        grad_gram(mod, d.theta, d.X, d.y, d.N, o);
      },
      "Write the Gram matrix of the per-example gradients, g_i . g_j, into `out` [N, N].");
}

}  // namespace sgdcore::cpu
