// Exact Hessian-vector products of the summed cross-entropy for a block of k directions:
// logistic X~^T (H_out (X~ v)), MLP by Pearlmutter's R-operator including the cross-layer
// term. The L2 term and the mean reduction are added by sgdcore/curvature.
#include "common/bind.h"
#include "cpu/curvature.h"

namespace sgdcore::cpu::curv {

SGDCORE_BIND(hvp) {
  m.def(
      "hvp",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::array& V, const py::array& out, const py::object& state_A,
         const py::object& state_P, bool sparse) {
        const Model mod = checked_model(kind, D, H, C);
        if (is_float32(theta))
          call_products<float>(mod, theta, X, y, V, out, state_A, state_P, true, sparse);
        else
          call_products<double>(mod, theta, X, y, V, out, state_A, state_P, true, sparse);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("V"), py::arg("out"), py::arg("state_A") = py::none(),
      py::arg("state_P") = py::none(), py::arg("sparse") = false,
      "out[j] = sum_i H_i V[j] (Hessians of the cross-entropies) for each row of V [k, P]; "
      "state_A / state_P: the forward state from curvature_state, or None.");
}

}  // namespace sgdcore::cpu::curv
