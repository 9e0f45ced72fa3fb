// The sgdcore._cuda module: the launchers of csrc/cuda/*_cuda.cu, which take device
// addresses and the caller's CUDA stream as integers (CuPy's `array.data.ptr` and
// `cupy.cuda.get_current_stream().ptr`), queue their kernels on that stream and return
// without waiting. `f64` picks the double or the float kernel. GEMMs are not here: the
// Python side runs them through CuPy (cuBLAS, on the same stream). See docs/GPU.md.
#include <pybind11/pybind11.h>

#include "cuda/kernels.h"

namespace py = pybind11;
using namespace sgdcore::cuda;

namespace {

template <class F32, class F64, class... Args>
void by_dtype(bool f64, F32 f32_fn, F64 f64_fn, Args... args) {
  if (f64)
    f64_fn(args...);
  else
    f32_fn(args...);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "sgdcore's CUDA kernels (device pointers and a stream handle in; see docs/GPU.md)";
  m.attr("LOSS_ONLY") = int(kLossOnly);
  m.attr("RESIDUAL") = int(kResidual);
  m.attr("PROBABILITIES") = int(kProbabilities);

  m.def(
      "output_residual",
      [](bool f64, ptr Z, ptr y, int64_t n, int64_t K, ptr ce, int mode, ptr stream) {
        by_dtype(f64, output_residual<float>, output_residual<double>, Z, y, n, K, ce, mode, stream);
      },
      py::arg("f64"), py::arg("Z"), py::arg("y"), py::arg("n"), py::arg("K"), py::arg("ce"),
      py::arg("mode"), py::arg("stream"),
      "Per-example cross-entropy into ce (double) and Z rewritten as mode says.");
  m.def(
      "bias_relu",
      [](bool f64, ptr A, ptr b, int64_t n, int64_t H, ptr stream) {
        by_dtype(f64, bias_relu<float>, bias_relu<double>, A, b, n, H, stream);
      },
      py::arg("f64"), py::arg("A"), py::arg("b"), py::arg("n"), py::arg("H"), py::arg("stream"),
      "A <- max(A + b, 0).");
  m.def(
      "relu_mask",
      [](bool f64, ptr D, ptr A, int64_t n, int64_t H, ptr stream) {
        by_dtype(f64, relu_mask<float>, relu_mask<double>, D, A, n, H, stream);
      },
      py::arg("f64"), py::arg("D"), py::arg("A"), py::arg("n"), py::arg("H"), py::arg("stream"),
      "D <- D * relu'(A).");
  m.def(
      "layer_sqnorms",
      [](bool f64, ptr delta, int64_t k, ptr a, int64_t d, int64_t n, ptr out, bool accumulate,
         ptr stream) {
        by_dtype(f64, layer_sqnorms<float>, layer_sqnorms<double>, delta, k, a, d, n, out,
                 accumulate, stream);
      },
      py::arg("f64"), py::arg("delta"), py::arg("k"), py::arg("a"), py::arg("d"), py::arg("n"),
      py::arg("out"), py::arg("accumulate"), py::arg("stream"),
      "out[i] (+)= |delta_i|^2 (|a_i|^2 + 1), double.");
  m.def(
      "row_dot_add",
      [](bool f64, ptr delta, ptr u, int64_t n, int64_t k, ptr s, ptr stream) {
        by_dtype(f64, row_dot_add<float>, row_dot_add<double>, delta, u, n, k, s, stream);
      },
      py::arg("f64"), py::arg("delta"), py::arg("u"), py::arg("n"), py::arg("k"), py::arg("s"),
      py::arg("stream"), "s[i] += delta_i . u_i (double).");
  m.def(
      "scale_rows",
      [](bool f64, ptr delta, ptr s, int64_t n, int64_t k, ptr out, ptr stream) {
        by_dtype(f64, scale_rows<float>, scale_rows<double>, delta, s, n, k, out, stream);
      },
      py::arg("f64"), py::arg("delta"), py::arg("s"), py::arg("n"), py::arg("k"), py::arg("out"),
      py::arg("stream"), "out[i, :] = delta[i, :] * s[i].");
  m.def(
      "output_curvature",
      [](bool f64, ptr Pm, ptr R, int64_t n, int64_t K, ptr stream) {
        by_dtype(f64, output_curvature<float>, output_curvature<double>, Pm, R, n, K, stream);
      },
      py::arg("f64"), py::arg("Pm"), py::arg("R"), py::arg("n"), py::arg("K"), py::arg("stream"),
      "R <- d2CE/dz2 R row by row.");
  m.def("logistic_hvp_partials", &logistic_hvp_partials, py::arg("n"), py::arg("D"),
        "Doubles of scratch that logistic_hvp needs.");
  m.def(
      "logistic_hvp",
      [](bool f64, ptr X, int64_t n, int64_t D, ptr theta, ptr Pm, ptr v, ptr partial, ptr out,
         ptr stream) {
        by_dtype(f64, logistic_hvp<float>, logistic_hvp<double>, X, n, D, theta, Pm, v, partial,
                 out, stream);
      },
      py::arg("f64"), py::arg("X"), py::arg("n"), py::arg("D"), py::arg("theta"), py::arg("Pm"),
      py::arg("v"), py::arg("partial"), py::arg("out"), py::arg("stream"),
      "Binary logistic Hessian-vector product in one pass over X.");
}
