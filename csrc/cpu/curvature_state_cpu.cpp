// The forward state that curvature products reuse across many directions: the MLP's
// hidden activations A [N, H] and the output probabilities P [N, K] (K = 1, sigmoid, for
// the binary model). HessianOperator caches it when it fits its memory budget.
#include "cpu/bind_data.h"
#include "cpu/curvature.h"

namespace sgdcore::cpu::curv {

template <class T>
void call_state(const Model& m, const py::array& theta, const py::array& X,
                const py::object& A, const py::array& Pm, bool sparse) {
  const Data<T> d = checked_data<T>(m, theta, X);
  const int64_t N = d.N;
  T* p = sgdcore::checked<T>(Pm, "state_P", {N, m.K()}, true);
  T* a = nullptr;
  py::array keep;
  if (m.kind == Kind::MLP) {
    SGD_CHECK(!A.is_none(), "the MLP's forward state needs state_A");
    keep = A.cast<py::array>();
    a = sgdcore::checked<T>(keep, "state_A", {N, m.H}, true);
    SGD_CHECK(!overlaps(keep, Pm), "state_A and state_P must not share memory");
  } else {
    SGD_CHECK(A.is_none(), "logistic models take no state_A");
  }
  py::gil_scoped_release release;
  forward_state(m, d.theta, d.X, N, a, p, sparse);
}

SGDCORE_BIND(curvature_state) {
  m.def(
      "curvature_state",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::object& state_A, const py::array& state_P, bool sparse) {
        const Model mod = checked_model(kind, D, H, C);
        by_dtype(theta, [&](auto t) {
          call_state<decltype(t)>(mod, theta, X, state_A, state_P, sparse);
        });
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("state_A"), py::arg("state_P"), py::arg("sparse") = false,
      "Write relu(X W1^T + b1) into state_A (MLP; None otherwise) and the output "
      "probabilities into state_P; sparse: the first layer on X's non-zeros (call with BLAS "
      "on one thread: the work is shared among the OpenMP team).");
}

}  // namespace sgdcore::cpu::curv
