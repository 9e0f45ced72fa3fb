// Generalised Gauss-Newton-vector products sum_i J_i^T H_out,i J_i v for a block of k
// directions: the R-operator of hvp_cpu.cpp without the cross-layer terms (for logistic
// regression the two coincide).
#include "common/bind.h"
#include "cpu/curvature.h"

namespace sgdcore::cpu::curv {

SGDCORE_BIND(ggn_vp) {
  m.def(
      "ggn_vp",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::array& V, const py::array& out, const py::object& state_A,
         const py::object& state_P, bool sparse) {
        const Model mod = checked_model(kind, D, H, C);
        if (is_float32(theta))
          call_products<float>(mod, theta, X, y, V, out, state_A, state_P, false, sparse);
        else
          call_products<double>(mod, theta, X, y, V, out, state_A, state_P, false, sparse);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("V"), py::arg("out"), py::arg("state_A") = py::none(),
      py::arg("state_P") = py::none(), py::arg("sparse") = false,
      "out[j] = sum_i J_i^T H_out,i J_i V[j] for each row of V [k, P].");
}

}  // namespace sgdcore::cpu::curv
