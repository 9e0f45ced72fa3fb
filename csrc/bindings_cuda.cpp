// The sgdcore._cuda module: the launchers of csrc/cuda/*_cuda.cu, which take device
// addresses and the caller's CUDA stream as integers (CuPy's `array.data.ptr` and
// `cupy.cuda.get_current_stream().ptr`), queue their kernels on that stream and return
// without waiting. Each launcher is bound twice, `<name>_f32` and `<name>_f64`, for the
// float and double kernels; the arguments are those of csrc/cuda/kernels.h. GEMMs are not
// here: the Python side runs them through CuPy (cuBLAS, on the same stream). See
// docs/GPU.md.
#include <pybind11/pybind11.h>

#include "cuda/kernels.h"

namespace sc = sgdcore::cuda;

#define SGDCORE_BIND_BOTH(name, doc)                \
  m.def(#name "_f32", &sc::name<float>, doc);       \
  m.def(#name "_f64", &sc::name<double>, doc)

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "sgdcore's CUDA kernels (device pointers and a stream handle in; see docs/GPU.md)";
  m.attr("LOSS_ONLY") = int(sc::kLossOnly);
  m.attr("RESIDUAL") = int(sc::kResidual);
  m.attr("PROBABILITIES") = int(sc::kProbabilities);
  SGDCORE_BIND_BOTH(output_residual,
                    "(Z, y, n, K, ce, mode, stream): per-example cross-entropy into ce (double) "
                    "and Z rewritten as mode says");
  SGDCORE_BIND_BOTH(bias_relu, "(A, b, n, H, stream): A <- max(A + b, 0)");
  SGDCORE_BIND_BOTH(relu_mask, "(D, A, n, H, stream): D <- D * relu'(A)");
  SGDCORE_BIND_BOTH(layer_sqnorms,
                    "(delta, k, a, d, n, out, accumulate, stream): "
                    "out[i] (+)= |delta_i|^2 (|a_i|^2 + 1), double");
  SGDCORE_BIND_BOTH(row_dot_add, "(delta, u, n, k, s, stream): s[i] += delta_i . u_i (double)");
  SGDCORE_BIND_BOTH(scale_rows, "(delta, s, n, k, out, stream): out[i, :] = delta[i, :] * s[i]");
  SGDCORE_BIND_BOTH(output_curvature, "(Pm, R, n, K, stream): R <- d2CE/dz2 R row by row");
  SGDCORE_BIND_BOTH(logistic_hvp,
                    "(X, n, D, theta, Pm, v, partial, out, stream): binary logistic "
                    "Hessian-vector product in one pass over X");
  m.def("logistic_hvp_partials", &sc::logistic_hvp_partials,
        "(n, D): doubles of scratch that logistic_hvp needs");
}
