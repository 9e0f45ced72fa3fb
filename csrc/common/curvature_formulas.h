// Second derivatives of the output layer, written once for the CPU loops and the CUDA
// kernels: the Hessian of the cross-entropy with respect to the logits, applied to a
// vector (sigmoid: p (1 - p) r; softmax: p * r - p (p . r)).
#pragma once
#include "common/formulas.h"

namespace sgdcore {

// d2 CE / dz2 of a sigmoid output with probability p = sigmoid(z).
template <class T> SGD_HD T sigmoid_curvature(T p) { return p * (T(1) - p); }

// out[c] = sum_c' (diag(p) - p p^T)[c, c'] r[c'] for one row of K softmax probabilities.
// out may alias r.
template <class T> SGD_HD void softmax_curvature_vp(const T* p, const T* r, long long K, T* out) {
  T pr = T(0);
  for (long long c = 0; c < K; ++c) pr += p[c] * r[c];
  for (long long c = 0; c < K; ++c) out[c] = p[c] * (r[c] - pr);
}

}  // namespace sgdcore
