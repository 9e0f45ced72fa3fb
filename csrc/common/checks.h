// Input checks at the compiled boundary: every array that reaches a kernel has been
// checked here for dtype, shape, C-contiguity and writability, and labels for range.
// A failed check raises ValueError / TypeError with a sentence that names the argument.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/model.h"

namespace sgdcore {
namespace py = pybind11;

template <class... A> std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}

#define SGD_CHECK(cond, ...) \
  do { if (!(cond)) throw std::invalid_argument(::sgdcore::cat(__VA_ARGS__)); } while (0)

inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// Pointer to the data of `a` after checking dtype T, the expected shape (-1: any) and
// C-contiguity; `writable` for outputs.
template <class T>
T* checked(const py::array& a, const char* name, std::vector<py::ssize_t> shape,
           bool writable = false) {
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(cat(name, " must have dtype ", std::string(py::str(py::dtype::of<T>())),
                             ", got ", std::string(py::str(a.dtype()))));
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
  if (!ok) {
    std::ostringstream want;
    want << "(";
    for (size_t i = 0; i < shape.size(); ++i)
      want << (i ? ", " : "") << (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
    want << (shape.size() == 1 ? ",)" : ")");
    throw std::invalid_argument(cat(name, " must have shape ", want.str(), ", got ", shape_str(a)));
  }
  SGD_CHECK(a.flags() & py::array::c_style, name, " must be C-contiguous");
  if (writable) SGD_CHECK(a.writeable(), name, " must be writable");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

// Labels: int64 [n], each in [0, n_classes).
inline const int64_t* checked_labels(const py::array& y, py::ssize_t n, long long n_classes) {
  const int64_t* p = checked<int64_t>(y, "y", {n});
  for (py::ssize_t i = 0; i < n; ++i)
    SGD_CHECK(p[i] >= 0 && p[i] < n_classes, "y[", i, "] = ", p[i], " is out of range [0, ",
              n_classes, ")");
  return p;
}

inline bool is_float32(const py::array& a) { return a.dtype().equal(py::dtype::of<float>()); }

// The model described by (kind, D, H, C), checked at the compiled boundary.
inline Model checked_model(int kind, int64_t D, int64_t H, int64_t C) {
  SGD_CHECK(kind >= 0 && kind <= 2, "unknown model kind ", kind);
  SGD_CHECK(D >= 1 && C >= 2 && (kind != 2 || H >= 1), "invalid model widths D=", D, " H=", H,
            " C=", C);
  return Model{static_cast<Kind>(kind), D, kind == 2 ? H : 0, C};
}

}  // namespace sgdcore
