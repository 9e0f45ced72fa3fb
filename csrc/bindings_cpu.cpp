// The sgdcore._cpu module: loads SciPy's BLAS, then runs every binder that the
// operation files registered with SGDCORE_BIND.
#include <pybind11/pybind11.h>

#include "common/bind.h"
#include "common/blas.h"

namespace py = pybind11;

namespace sgdcore {

std::vector<BindFn>& binders() {
  static std::vector<BindFn> list;
  return list;
}

namespace blas {
Table& table() {
  static Table t;
  return t;
}

void load() {
  py::dict capi = py::module_::import("scipy.linalg.cython_blas").attr("__pyx_capi__");
  auto ptr = [&](const char* name) {
    PyObject* cap = capi[name].ptr();
    void* p = PyCapsule_GetPointer(cap, PyCapsule_GetName(cap));
    if (!p) throw py::error_already_set();
    return p;
  };
  Table& t = table();
  t.sgemm = reinterpret_cast<sgemm_t>(ptr("sgemm"));
  t.dgemm = reinterpret_cast<dgemm_t>(ptr("dgemm"));
  t.sgemv = reinterpret_cast<sgemv_t>(ptr("sgemv"));
  t.dgemv = reinterpret_cast<dgemv_t>(ptr("dgemv"));
  t.ssyrk = reinterpret_cast<ssyrk_t>(ptr("ssyrk"));
  t.dsyrk = reinterpret_cast<dsyrk_t>(ptr("dsyrk"));
}
}  // namespace blas

}  // namespace sgdcore

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "sgdcore's C++ kernels (BLAS from scipy.linalg.cython_blas).";
  sgdcore::blas::load();
  for (auto bind : sgdcore::binders()) bind(m);
#ifdef SGDCORE_OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.attr("blas_source") = "scipy.linalg.cython_blas";
}
