// The scalar formulas every backend shares: stable softplus / sigmoid, softmax
// cross-entropy of one row, ReLU. Templated on the scalar type and marked host+device so
// the CPU loops and the CUDA kernels compile the same lines.
#pragma once
#include <cmath>

#include "common/hostdevice.h"

namespace sgdcore {

// log(1 + exp(z)) without overflow.
template <class T> SGD_HD T softplus(T z) {
  return z > T(0) ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

template <class T> SGD_HD T sigmoid(T z) {
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  const T e = std::exp(z);
  return e / (T(1) + e);
}

// Binary cross-entropy of a sigmoid output with logit z and label y in {0, 1}:
// CE = softplus(z) - y z; dCE/dz = sigmoid(z) - y.
template <class T> SGD_HD T binary_xent(T z, long long y) {
  return softplus(z) - (y ? z : T(0));
}

// Softmax cross-entropy of one row of C logits. Writes the probabilities into p (may
// alias z) and returns CE = logsumexp(z) - z[y].
template <class T> SGD_HD T softmax_xent(const T* z, long long C, long long y, T* p) {
  T m = z[0];
  for (long long c = 1; c < C; ++c) m = z[c] > m ? z[c] : m;
  const T zy = z[y];
  T s = T(0);
  for (long long c = 0; c < C; ++c) {
    const T e = std::exp(z[c] - m);
    p[c] = e;
    s += e;
  }
  const T inv = T(1) / s;
  for (long long c = 0; c < C; ++c) p[c] *= inv;
  return m + std::log(s) - zy;
}

// max(z, 0), NaN kept (as NumPy's np.maximum and the Numba kernels do); -0 maps to +0.
template <class T> SGD_HD T relu(T z) { return z > T(0) ? z : (z == z ? T(0) : z); }
// Derivative of ReLU; 0 at z == 0 (the convention of reference.py).
template <class T> SGD_HD T relu_grad(T z) { return z > T(0) ? T(1) : T(0); }

}  // namespace sgdcore
