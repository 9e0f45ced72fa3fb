// Summed cross-entropy and its gradient for the three models, in chunks of examples so
// memory stays bounded for any N; the MLP's first layer through either implementation of
// cpu/first_layer.h. The L2 term and the mean reduction are applied by the Python layer
// (sgdcore/losses.py).
#include "cpu/bind_data.h"
#include "cpu/elementwise.h"
#include "cpu/first_layer.h"

namespace sgdcore::cpu {
namespace {

// The loss over N rows, and (grad given) its gradient, the product with X through `first`.
// The MLP's other products run on first.by_rows's slices: sums over rows by slices of
// columns, row-wise products by slices of rows.
template <class T, class FL>
double loss_and_grad(FL& first, const Model& m, const T* theta, const T* X, const int64_t* y,
                     int64_t N, T* grad) {
  if (N == 0) {
    if (grad) std::fill(grad, grad + m.n_params(), T(0));
    return 0.0;
  }
  const bool mlp = m.kind == Kind::MLP;
  const int64_t H = m.H, K = m.K(), rows = chunk_rows(m, N), ld = first.hidden_ld();
  first.weights(theta);
  AlignedArray<T> own_A, own_dA;
  T* A = mlp ? reused_scratch<T>(3, rows * H, own_A) : nullptr;
  T* dA = mlp && grad ? reused_scratch<T>(4, rows * ld, own_dA) : nullptr;
  std::vector<T> Z(rows * K);
  const T* W2 = theta + m.off_W2();
  double loss = 0.0;
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    first.load(X, s, n);
    first.forward(theta, A, Z.data());
    loss += output_residual(m, Z.data(), y + s, n, grad ? Z.data() : nullptr);
    if (!grad) continue;
    const T beta = s ? T(1) : T(0);
    // The residual the first layer's gradient takes: dA = relu'(a) (R W2) for the MLP (its
    // output layer's gradient on the way), R itself for the logistic models.
    const T* G = Z.data();
    int64_t lg = K;
    if (mlp) {
      first.by_rows(H, [&](int64_t h0, int64_t h1) {
        blas::gemm<T>(true, false, K, h1 - h0, n, T(1), Z.data(), K, A + h0, H, beta,
                      grad + m.off_W2() + h0, H);
      });
      colsum(Z.data(), n, K, beta, grad + m.off_b2());
      first.by_rows(n, [&](int64_t r0, int64_t r1) {
        blas::gemm<T>(false, false, r1 - r0, H, K, T(1), Z.data() + r0 * K, K, W2, H, T(0),
                      dA + r0 * ld, ld);
        relu_mask(dA + r0 * ld, ld, H, A + r0 * H, H, r1 - r0);
      });
      G = dA;
      lg = ld;
    }
    first.add_grad(G, lg, grad, beta);
    first.by_rows(mlp ? H : K, [&](int64_t c0, int64_t c1) {  // the first layer's bias
      T* g = grad + m.off_b1();
      if (beta == T(0)) std::fill(g + c0, g + c1, T(0));  // grad may hold anything
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = c0; c < c1; ++c) g[c] += G[i * lg + c];
    });
  }
  if (grad) first.finish_grad(grad);
  return loss;
}

}  // namespace

SGDCORE_BIND(loss_and_grad) {
  m.def(
      "loss_and_grad",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::object& grad, bool sparse) {
        const Model mod = checked_model(kind, D, H, C);
        return by_dtype(theta, [&](auto t) {
          using T = decltype(t);
          const Data<T> d = checked_data<T>(mod, theta, X, &y);
          T* g = grad.is_none() ? nullptr
                                : checked<T>(grad.cast<py::array>(), "grad", {mod.n_params()}, true);
          py::gil_scoped_release release;
          return with_first_layer<T>(mod, sparse, [&](auto& first) {
            return loss_and_grad<T>(first, mod, d.theta, d.X, d.y, d.N, g);
          });
        });
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("grad") = py::none(), py::arg("sparse") = false,
      "Summed cross-entropy over (X, y); writes its gradient into `grad` when given. sparse: "
      "the MLP's first layer on X's non-zeros (call with BLAS on one thread).");
}

}  // namespace sgdcore::cpu
