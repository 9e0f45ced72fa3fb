// Squared norms of the per-example gradients without forming them: one forward pass and
// the backpropagated residuals per chunk, then |g_i|^2 = sum over dense layers of
// |delta_i|^2 (|a_i|^2 + 1). Memory O(chunk * (H + K)), never O(N * P).
#include "common/bind.h"
#include "cpu/per_example.h"

namespace sgdcore::cpu {
namespace {  // this file's kernels and binding helpers

template <class T>
void grad_sqnorms(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                  T* out) {
  const int64_t rows = chunk_rows(m, N), D = m.D;
  Residuals<T> w(m, rows);
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    residuals(m, theta, X + s * D, y + s, n, w.A.data(), w.R.data(), w.dA.data());
    example_sqnorms(m, X + s * D, n, w.A.data(), w.R.data(), w.dA.data(), out + s);
  }
}

template <class T>
void call(const Model& m, const py::array& theta, const py::array& X, const py::array& y,
          const py::array& out) {
  const T* th = checked<T>(theta, "theta", {m.n_params()});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  T* o = checked<T>(out, "out", {N}, true);
  py::gil_scoped_release release;
  grad_sqnorms(m, th, x, lab, N, o);
}

}  // namespace

SGDCORE_BIND(per_example_grad_sqnorms) {
  m.def(
      "per_example_grad_sqnorms",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::array& out) {
        const Model mod = checked_model(kind, D, H, C);
        is_float32(theta) ? call<float>(mod, theta, X, y, out)
                          : call<double>(mod, theta, X, y, out);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("out"),
      "Write |dCE_i/dtheta|^2 of each example into `out` [N], without forming the gradients.");
}

}  // namespace sgdcore::cpu
