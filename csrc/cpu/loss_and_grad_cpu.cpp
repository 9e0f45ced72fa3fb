// Summed cross-entropy and its gradient for the three models, in chunks of examples so
// memory stays bounded for any N. The L2 term and the mean reduction are applied by the
// Python layer (sgdcore/losses.py).
#include "common/bind.h"
#include "common/checks.h"
#include "cpu/forward_backward.h"

namespace sgdcore::cpu {
namespace {

template <class T>
double loss_and_grad(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                     T* grad) {
  const int64_t rows = chunk_rows(m, N);
  std::vector<T> A(m.kind == Kind::MLP ? rows * m.H : 0), dA(grad ? A.size() : 0);
  std::vector<T> Z(rows * m.K());
  double loss = 0.0;
  if (grad && N == 0) std::fill(grad, grad + m.n_params(), T(0));
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    forward(m, theta, X + s * m.D, n, A.data(), Z.data());
    loss += output_residual(m, Z.data(), y + s, n, grad ? Z.data() : nullptr);
    if (grad) backward(m, theta, X + s * m.D, n, A.data(), Z.data(), dA.data(), grad, T(s ? 1 : 0));
  }
  return loss;
}


template <class T>
double call(const Model& m, const py::array& theta, const py::array& X, const py::array& y,
            const py::object& grad) {
  const T* th = checked<T>(theta, "theta", {m.n_params()});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  T* g = grad.is_none() ? nullptr : checked<T>(grad.cast<py::array>(), "grad", {m.n_params()}, true);
  py::gil_scoped_release release;
  return loss_and_grad(m, th, x, lab, N, g);
}

}  // namespace

SGDCORE_BIND(loss_and_grad) {
  m.def(
      "loss_and_grad",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::object& grad) {
        const Model mod = checked_model(kind, D, H, C);
        return is_float32(theta) ? call<float>(mod, theta, X, y, grad)
                                 : call<double>(mod, theta, X, y, grad);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("grad") = py::none(),
      "Summed cross-entropy over (X, y); writes its gradient into `grad` when given.");
}

}  // namespace sgdcore::cpu
