// One pass over an input array: whether every entry is finite, and how many are non-zero.
// The finiteness check of the Python layer (sgdcore/_validate.py) and the choice of the
// MLP's first layer on sparse inputs (sgdcore/kernels/_cpp/sparse.py) both need a pass
// over X; this is that pass, read once. Integer counts: the same for any thread count.
#include <cstdint>
#include <cstring>
#include <utility>

#include "common/bind.h"
#include "common/checks.h"

namespace sgdcore::cpu {
namespace {

// (entries whose exponent bits are all set: inf or NaN, entries other than +-0) of
// x[0:n], from the bits of each entry (U: the unsigned integer of T's width).
template <class T, class U>
std::pair<int64_t, int64_t> scan(const T* x, int64_t n) {
  static_assert(sizeof(T) == sizeof(U));
  constexpr U magnitude = ~(U(1) << (8 * sizeof(U) - 1));
  constexpr U exponent = sizeof(U) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  int64_t bad = 0, nonzero = 0;
  // Shared among the team only where the pass itself takes milliseconds (16 MiB of
  // float32): a team woken for less (a 636,010-parameter theta) leaves its threads spinning
  // against the caller's BLAS or Numba threads, which cost a 256-row per-example call 4 to
  // 11 ms here.
#pragma omp parallel for schedule(static) reduction(+ : bad, nonzero) if (n > (int64_t(1) << 22))
  for (int64_t i = 0; i < n; ++i) {
    U b;
    std::memcpy(&b, x + i, sizeof b);
    bad += (b & exponent) == exponent;
    nonzero += (b & magnitude) != 0;
  }
  return {bad, nonzero};
}

template <class T, class U>
py::tuple call(const py::array& a) {
  const T* x = static_cast<const T*>(a.data());
  const int64_t n = a.size();
  std::pair<int64_t, int64_t> r;
  {
    py::gil_scoped_release release;
    r = scan<T, U>(x, n);
  }
  return py::make_tuple(r.first == 0, r.second);
}

}  // namespace

SGDCORE_BIND(scan_inputs) {
  m.def(
      "scan_inputs",
      [](const py::array& a) {
        SGD_CHECK(a.flags() & py::array::c_style, "the array to scan must be C-contiguous");
        if (is_float32(a)) return call<float, uint32_t>(a);
        if (!a.dtype().equal(py::dtype::of<double>()))
          throw py::type_error(cat("the array to scan must be float32 or float64, got ",
                                   std::string(py::str(a.dtype()))));
        return call<double, uint64_t>(a);
      },
      py::arg("a"),
      "(whether every entry of `a` is finite, how many entries are non-zero), in one pass "
      "shared among the OpenMP team.");
}

}  // namespace sgdcore::cpu
