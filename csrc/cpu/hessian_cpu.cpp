// Dense Hessian of the summed cross-entropy of logistic regression in closed form,
// X~^T diag(p (1 - p)) X~ (one SYRK per chunk) or its softmax block form. Other models
// build their dense Hessian from blocks of hvp in Python.
#include "common/bind.h"
#include "cpu/curvature.h"

namespace sgdcore::cpu::curv {

template <class T>
void call_hessian(const Model& m, const py::array& theta, const py::array& X,
                  const py::array& out) {
  const int64_t P = m.n_params();
  const T* th = sgdcore::checked<T>(theta, "theta", {P});
  const T* x = sgdcore::checked<T>(X, "X", {-1, m.D});
  T* o = sgdcore::checked<T>(out, "out", {P, P}, true);
  SGD_CHECK(!overlaps(out, theta) && !overlaps(out, X), "out must not share memory with theta or X");
  py::gil_scoped_release release;
  logistic_hessian(m, th, x, X.shape(0), o);
}

SGDCORE_BIND(logistic_hessian) {
  m.def(
      "logistic_hessian",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& out) {
        const Model mod = checked_model(kind, D, H, C);
        SGD_CHECK(mod.kind != Kind::MLP,
                  "logistic_hessian is the closed form for logistic regression; "
                  "the MLP's dense Hessian is built from hvp");
        if (is_float32(theta))
          call_hessian<float>(mod, theta, X, out);
        else
          call_hessian<double>(mod, theta, X, out);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("out"), "Write sum_i J_i^T H_out,i J_i (the cross-entropy Hessian) into out [P, P].");
}

}  // namespace sgdcore::cpu::curv
