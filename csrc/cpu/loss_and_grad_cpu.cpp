// Summed cross-entropy and its gradient for the three models, in chunks of examples so
// memory stays bounded for any N. The L2 term and the mean reduction are applied by the
// Python layer (sgdcore/losses.py).
#include "common/bind.h"
#include "common/checks.h"
#include "cpu/elementwise.h"
#include "cpu/forward_backward.h"
#include "cpu/memory.h"
#include "cpu/parallel.h"
#include "cpu/sparse_inputs.h"

namespace sgdcore::cpu {
namespace {

template <class T>
double loss_and_grad(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                     T* grad) {
  const int64_t rows = chunk_rows(m, N);
  std::vector<T> A(m.kind == Kind::MLP ? rows * m.H : 0), dA(grad ? A.size() : 0);
  std::vector<T> Z(rows * m.K());
  double loss = 0.0;
  if (grad && N == 0) std::fill(grad, grad + m.n_params(), T(0));
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    forward(m, theta, X + s * m.D, n, A.data(), Z.data());
    loss += output_residual(m, Z.data(), y + s, n, grad ? Z.data() : nullptr);
    if (grad) backward(m, theta, X + s * m.D, n, A.data(), Z.data(), dA.data(), grad, T(s ? 1 : 0));
  }
  return loss;
}

// The MLP on sparse inputs: the first layer's products on X's non-zeros
// (cpu/sparse_inputs.h), every other product by slices shared among the OpenMP team
// (the caller keeps BLAS on one thread).
template <class T>
double sparse_loss_and_grad(const Model& m, const T* theta, const T* X, const int64_t* y,
                            int64_t N, T* grad) {
  const int64_t D = m.D, H = m.H, C = m.C, ld = padded<T>(H), rows = chunk_rows(m, N);
  AlignedArray<T> own[4];
  T* W1T = reused_scratch<T>(0, D * ld, own[0]);
  T* G1T = grad ? reused_scratch<T>(2, D * ld, own[1]) : nullptr;
  T* A = reused_scratch<T>(3, rows * H, own[2]);
  T* dA = grad ? reused_scratch<T>(4, rows * ld, own[3]) : nullptr;
  std::vector<T> Z(rows * C);
  const T* W2 = theta + m.off_W2();
  split_rows(D, [&](int64_t d0, int64_t d1) {
    transpose_into(theta + m.off_W1(), H, D, d0, d1, W1T, ld);
    if (grad) std::fill(G1T + d0 * ld, G1T + d1 * ld, T(0));
  });
  if (grad && N == 0) std::fill(grad, grad + m.n_params(), T(0));
  FirstLayer<T> first;
  double loss = 0.0;
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    first.load(X, s, n, D);
    first.times(W1T, ld, H, A, H);
    split_rows(n, [&](int64_t r0, int64_t r1) {
      mlp_top(m, theta, A + r0 * H, r1 - r0, Z.data() + r0 * C);
    });
    loss += output_residual(m, Z.data(), y + s, n, grad ? Z.data() : nullptr);
    if (!grad) continue;
    const T beta = s ? T(1) : T(0);
    split_rows(H, [&](int64_t h0, int64_t h1) {  // sums over rows: slices of columns
      blas::gemm<T>(true, false, C, h1 - h0, n, T(1), Z.data(), C, A + h0, H, beta,
                    grad + m.off_W2() + h0, H);
    });
    colsum(Z.data(), n, C, beta, grad + m.off_b2());
    split_rows(n, [&](int64_t r0, int64_t r1) {
      blas::gemm<T>(false, false, r1 - r0, H, C, T(1), Z.data() + r0 * C, C, W2, H, T(0),
                    dA + r0 * ld, ld);
      relu_mask(dA + r0 * ld, ld, H, A + r0 * H, H, r1 - r0);
    });
    first.transpose_times_add(dA, ld, H, G1T, ld);
    split_rows(H, [&](int64_t h0, int64_t h1) {
      T* g = grad + m.off_b1();
      if (beta == T(0)) std::fill(g + h0, g + h1, T(0));  // grad may hold anything
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = h0; h < h1; ++h) g[h] += dA[i * ld + h];
    });
  }
  if (grad)
    split_rows(D, [&](int64_t d0, int64_t d1) {
      transpose_back(G1T, ld, H, D, d0, d1, grad + m.off_W1());
    });
  return loss;
}

template <class T>
double call(const Model& m, const py::array& theta, const py::array& X, const py::array& y,
            const py::object& grad, bool sparse) {
  const T* th = checked<T>(theta, "theta", {m.n_params()});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  T* g = grad.is_none() ? nullptr : checked<T>(grad.cast<py::array>(), "grad", {m.n_params()}, true);
  py::gil_scoped_release release;
  if (sparse && m.kind == Kind::MLP) return sparse_loss_and_grad(m, th, x, lab, N, g);
  return loss_and_grad(m, th, x, lab, N, g);
}

}  // namespace

SGDCORE_BIND(loss_and_grad) {
  m.def(
      "loss_and_grad",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::object& grad, bool sparse) {
        const Model mod = checked_model(kind, D, H, C);
        return is_float32(theta) ? call<float>(mod, theta, X, y, grad, sparse)
                                 : call<double>(mod, theta, X, y, grad, sparse);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("grad") = py::none(), py::arg("sparse") = false,
      "Summed cross-entropy over (X, y); writes its gradient into `grad` when given. sparse: "
      "the MLP's first layer on X's non-zeros (call with BLAS on one thread).");
}

}  // namespace sgdcore::cpu
