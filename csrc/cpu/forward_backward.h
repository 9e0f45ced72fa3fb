// The forward and backward passes of the three models over one chunk of examples, as
// BLAS calls plus fused element-wise loops. Every CPU operation (loss and gradient,
// per-example gradients, noise statistics, curvature, training) is built from these.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/blas.h"
#include "common/formulas.h"
#include "common/model.h"
#include "cpu/narrow_products.h"

namespace sgdcore::cpu {

// Rows per chunk so that one [rows, max(H, K)] scratch holds about 4 Mi elements.
inline int64_t chunk_rows(const Model& m, int64_t n) {
  const int64_t width = std::max<int64_t>(std::max(m.H, m.K()), 1);
  return std::max<int64_t>(1, std::min<int64_t>(n, std::max<int64_t>(256, (int64_t(1) << 22) / width)));
}

// The MLP above its first layer's product: A[n, H] <- relu(A + b1) in place, then the
// logits Z[n, C] = A W2^T + b2.
template <class T>
void mlp_top(const Model& m, const T* theta, T* A, int64_t n, T* Z) {
  const int64_t H = m.H, C = m.C;
  const T* b1 = theta + m.off_b1();
  const T* b2 = theta + m.off_b2();
  for (int64_t i = 0; i < n; ++i) {
    T* a = A + i * H;
    for (int64_t j = 0; j < H; ++j) a[j] = relu(a[j] + b1[j]);
  }
  narrow_times_t(A, H, n, theta + m.off_W2(), H, C, H, T(0), Z, C);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) Z[i * C + c] += b2[c];
}

// Z[n, K] = logits of X[n, D]. For the MLP also A[n, H] = relu(X W1^T + b1) (A > 0 is
// the ReLU mask, so pre-activations need not be kept).
template <class T>
void forward(const Model& m, const T* theta, const T* X, int64_t n, T* A, T* Z) {
  const int64_t D = m.D, K = m.K();
  if (m.kind == Kind::MLP) {
    blas::gemm<T>(false, true, n, m.H, D, T(1), X, D, theta + m.off_W1(), D, T(0), A, m.H);
    mlp_top(m, theta, A, n, Z);
    return;
  }
  const T* b = theta + m.off_b1();
  if (K == 1) {
    blas::gemv<T>(false, n, D, T(1), X, D, theta, T(0), Z);
    for (int64_t i = 0; i < n; ++i) Z[i] += b[0];
  } else {
    blas::gemm<T>(false, true, n, K, D, T(1), X, D, theta, D, T(0), Z, K);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < K; ++c) Z[i * K + c] += b[c];
  }
}

// Summed cross-entropy, accumulated in Acc, of logits Z[n, K] whose labels label(i)
// gives; when R is given, writes dCE_i/dz_i into R (sigmoid(z) - y, or softmax(z) -
// onehot(y)); R may alias Z. p: scratch for one row of K probabilities (used without R).
template <class Acc, class T, class Label>
Acc residual_sum(int64_t K, const T* Z, Label label, int64_t n, T* R, T* p) {
  Acc loss = Acc(0);
  if (K == 1) {
    for (int64_t i = 0; i < n; ++i) {
      const T z = Z[i];
      const int64_t y = label(i);
      loss += Acc(binary_xent(z, y));
      if (R) R[i] = sigmoid(z) - T(y);
    }
    return loss;
  }
  for (int64_t i = 0; i < n; ++i) {
    T* out = R ? R + i * K : p;
    const int64_t y = label(i);
    loss += Acc(softmax_xent(Z + i * K, K, y, out));
    if (R) out[y] -= T(1);
  }
  return loss;
}

// Summed cross-entropy of logits Z[n, K] of the examples labelled y[n] (residual_sum).
template <class T>
T output_residual(const Model& m, const T* Z, const int64_t* y, int64_t n, T* R) {
  std::vector<T> p(R ? 0 : m.K());
  return residual_sum<T>(m.K(), Z, [y](int64_t i) { return y[i]; }, n, R, p.data());
}

// Column sums of M[n, k] into g (g = beta * g + sum).
template <class T> void colsum(const T* M, int64_t n, int64_t k, T beta, T* g) {
  for (int64_t c = 0; c < k; ++c) g[c] = beta == T(0) ? T(0) : beta * g[c];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < k; ++c) g[c] += M[i * k + c];
}

// g = beta * g + sum over the chunk of dCE_i/dtheta, from the residual R[n, K] and (MLP)
// the activations A[n, H]. dA[n, H] is scratch (MLP only).
template <class T>
void backward(const Model& m, const T* theta, const T* X, int64_t n, const T* A, const T* R,
              T* dA, T* g, T beta) {
  const int64_t D = m.D, K = m.K();
  if (m.kind == Kind::MLP) {
    const int64_t H = m.H, C = m.C;
    blas::gemm<T>(true, false, C, H, n, T(1), R, C, A, H, beta, g + m.off_W2(), H);
    colsum(R, n, C, beta, g + m.off_b2());
    blas::gemm<T>(false, false, n, H, C, T(1), R, C, theta + m.off_W2(), H, T(0), dA, H);
    for (int64_t i = 0; i < n * H; ++i) dA[i] = A[i] > T(0) ? dA[i] : T(0);
    blas::gemm<T>(true, false, H, D, n, T(1), dA, H, X, D, beta, g + m.off_W1(), D);
    colsum(dA, n, H, beta, g + m.off_b1());
    return;
  }
  if (K == 1)
    blas::gemv<T>(true, n, D, T(1), X, D, R, beta, g);
  else
    blas::gemm<T>(true, false, K, D, n, T(1), R, K, X, D, beta, g, D);
  colsum(R, n, K, beta, g + m.off_b1());
}

}  // namespace sgdcore::cpu
