// The Gram matrix of the per-example gradients, out[i, j] = g_i . g_j, without forming
// them: a dense layer z = W a + b contributes (delta_i . delta_j)(a_i . a_j + 1), so the
// whole matrix is a sum of Hadamard products of four (MLP) or two (logistic) GEMMs.
// Memory O(N^2 + N (H + K)); used for the exact spectrum of the noise covariance.
#include "common/bind.h"
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

template <class T>
void call(const Model& m, const py::array& theta, const py::array& X, const py::array& y,
          const py::array& out) {
  const T* th = checked<T>(theta, "theta", {m.n_params()});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  T* o = checked<T>(out, "out", {N, N}, true);
  py::gil_scoped_release release;
  grad_gram(m, th, x, lab, N, o);
}

}  // namespace

SGDCORE_BIND(grad_gram) {
  m.def(
      "grad_gram",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::array& out) {
        const Model mod = checked_model(kind, D, H, C);
        is_float32(theta) ? call<float>(mod, theta, X, y, out)
                          : call<double>(mod, theta, X, y, out);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("out"),
      "Write the Gram matrix of the per-example gradients, g_i . g_j, into `out` [N, N].");
}

}  // namespace sgdcore::cpu
