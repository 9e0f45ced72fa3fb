// The sufficient statistics of gradient noise in one forward and one fused backward pass
// per chunk: the summed gradient sum_i g_i (the batch gradient, two weight GEMMs) and each
// example's squared norm |g_i|^2 from the same residuals (no N x P). The mean, tr F and
// B_simple are formed from these in sgdcore/grads.py.
#include "common/bind.h"
#include "cpu/per_example.h"

namespace sgdcore::cpu {
namespace {  // this file's kernels and binding helpers

// Returns |sum_i g_i|^2, accumulated in double.
template <class T>
double noise_stats(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                 T* grad, T* sqnorms) {
  const int64_t rows = chunk_rows(m, N), D = m.D;
  Residuals<T> w(m, rows);
  if (N == 0) std::fill(grad, grad + m.n_params(), T(0));
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    const T* x = X + s * D;
    forward(m, theta, x, n, w.A.data(), w.R.data());
    output_residual(m, w.R.data(), y + s, n, w.R.data());
    // backward() also leaves dA = relu'(a) * (R W2) in its scratch, used by the norms.
    backward(m, theta, x, n, w.A.data(), w.R.data(), w.dA.data(), grad, T(s ? 1 : 0));
    example_sqnorms(m, x, n, w.A.data(), w.R.data(), w.dA.data(), sqnorms + s);
  }
  return sqnorm(grad, m.n_params());
}

template <class T>
double call(const Model& m, const py::array& theta, const py::array& X, const py::array& y,
            const py::array& grad, const py::array& sqnorms) {
  const T* th = checked<T>(theta, "theta", {m.n_params()});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  T* g = checked<T>(grad, "grad", {m.n_params()}, true);
  T* q = checked<T>(sqnorms, "sqnorms", {N}, true);
  py::gil_scoped_release release;
  return noise_stats(m, th, x, lab, N, g, q);
}

}  // namespace

SGDCORE_BIND(gradient_noise) {
  m.def(
      "gradient_noise",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::array& grad, const py::array& sqnorms) {
        const Model mod = checked_model(kind, D, H, C);
        return is_float32(theta) ? call<float>(mod, theta, X, y, grad, sqnorms)
                                 : call<double>(mod, theta, X, y, grad, sqnorms);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("grad"), py::arg("sqnorms"),
      "Write sum_i dCE_i/dtheta into `grad` [P] and |dCE_i/dtheta|^2 into `sqnorms` [N]; "
      "returns |grad|^2 (float64).");
}

}  // namespace sgdcore::cpu
