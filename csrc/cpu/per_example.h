// Building blocks of the per-example operations (gradients, their norms, noise
// statistics, covariance products, the gradient Gram matrix): the model check at the
// compiled boundary, the residual pass of a chunk (activations, dCE/dz and the
// backpropagated hidden residual) and the squared-norm identity of a dense layer.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/checks.h"
#include "cpu/forward_backward.h"

namespace sgdcore::cpu {


// Scratch for the residual pass over at most `rows` examples.
template <class T> struct Residuals {
  std::vector<T> A, R, dA;  // activations [rows, H], dCE/dz [rows, K], dCE/da [rows, H]
  Residuals(const Model& m, int64_t rows)
      : A(m.kind == Kind::MLP ? rows * m.H : 0), R(rows * m.K()), dA(A.size()) {}
};

// For examples X[n, D]: A = relu(X W1^T + b1) (MLP), R = dCE_i/dz_i and (MLP)
// dA = relu'(a) * (R W2), the residual of the hidden layer's pre-activation.
template <class T>
void residuals(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t n, T* A,
               T* R, T* dA) {
  forward(m, theta, X, n, A, R);
  output_residual(m, R, y, n, R);
  if (m.kind != Kind::MLP) return;
  const int64_t H = m.H;
  blas::gemm<T>(false, false, n, H, m.C, T(1), R, m.C, theta + m.off_W2(), H, T(0), dA, H);
  for (int64_t i = 0; i < n * H; ++i) dA[i] = A[i] > T(0) ? dA[i] : T(0);
}

// sum_j v[j]^2, accumulated in double (vectorised: the simd reduction may reorder).
template <class T> inline double sqnorm(const T* v, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += double(v[j]) * double(v[j]);
  return s;
}

// Squared norm of each example's gradient from the residual pass, without forming it:
// a dense layer z = W a + b contributes |dCE/dz|^2 (|a|^2 + 1). MLP: both layers.
template <class T>
void example_sqnorms(const Model& m, const T* X, int64_t n, const T* A, const T* R, const T* dA,
                     T* out) {
  const int64_t D = m.D, H = m.H, K = m.K();
  for (int64_t i = 0; i < n; ++i) {
    double s = sqnorm(R + i * K, K) * (sqnorm(m.kind == Kind::MLP ? A + i * H : X + i * D,
                                              m.kind == Kind::MLP ? H : D) + 1.0);
    if (m.kind == Kind::MLP) s += sqnorm(dA + i * H, H) * (sqnorm(X + i * D, D) + 1.0);
    out[i] = static_cast<T>(s);
  }
}

}  // namespace sgdcore::cpu
