// The part of the bindings every operation on a model's data shares: the checked
// (theta, X, y) of a call, the choice of float or double by theta's dtype, and the
// binding of an operation that writes one output, name(kind, D, H, C, theta, X, y, out).
#pragma once
#include <cstdint>

#include "common/bind.h"
#include "common/checks.h"
#include "common/model.h"

namespace sgdcore::cpu {

// theta [P] and X [N, D] checked (common/checks.h), with N; y [N] the labels when given.
template <class T>
struct Data {
  using value_type = T;
  const T* theta;
  const T* X;
  int64_t N;
  const int64_t* y;
};

template <class T>
Data<T> checked_data(const Model& m, const py::array& theta, const py::array& X,
                     const py::array* y = nullptr) {
  const T* th = checked<T>(theta, "theta", {m.n_params()});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  return {th, x, N, y ? checked_labels(*y, N, m.C) : nullptr};
}

// f(T()) with T = float for float32 theta, else double (checked_data refuses the others).
template <class F>
auto by_dtype(const py::array& theta, F&& f) {
  return is_float32(theta) ? f(float()) : f(double());
}

// Binds name(kind, D, H, C, theta, X, y, out) to f(model, Data<T>, out) for theta's dtype.
template <class F>
void def_on_data(py::module_& m, const char* name, F f, const char* doc) {
  m.def(
      name,
      [f](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
          const py::array& y, const py::array& out) {
        const Model mod = checked_model(kind, D, H, C);
        return by_dtype(theta, [&](auto t) {
          return f(mod, checked_data<decltype(t)>(mod, theta, X, &y), out);
        });
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("out"), doc);
}

}  // namespace sgdcore::cpu
