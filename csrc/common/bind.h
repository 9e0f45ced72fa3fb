// Each operation's file registers its own Python bindings with SGDCORE_BIND, so adding an
// operation touches no shared file: bindings_cpu.cpp calls every registered binder.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

namespace sgdcore {
using BindFn = void (*)(pybind11::module_&);
std::vector<BindFn>& binders();
struct Binder {
  explicit Binder(BindFn f) { binders().push_back(f); }
};
}  // namespace sgdcore

#define SGDCORE_BIND(name)                                              \
  static void sgdcore_bind_##name(pybind11::module_& m);                \
  static ::sgdcore::Binder sgdcore_binder_##name(&sgdcore_bind_##name); \
  static void sgdcore_bind_##name(pybind11::module_& m)
