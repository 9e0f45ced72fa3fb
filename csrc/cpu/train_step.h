// One SGD step of one model of the training engine (train_run.h), written once for
// either first layer (L): the residual, the second layer and the biases here; W1's update
// and the next step's forward in L (train_first_layer_dense.h, train_first_layer_sparse.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/formulas.h"
#include "cpu/elementwise.h"
#include "cpu/forward_backward.h"
#include "cpu/train_products.h"
#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

// Zpart[par] = the logits of the current batch.
template <class T, class L>
inline void Run<T, L>::batch_logits(Unit& u, int par, int buf) {
  T* zp = u.Zpart + par * zs;
  const T* t = th(u.k);
  if (m.kind == Kind::MLP) {
    mm<T>(false, true, B, Kout, m.H, T(1), u.A, m.H, t + m.off_W2(), m.H, T(0), zp, Kout);
    const T* b2 = t + m.off_b2();
    for (int64_t j = 0; j < B; ++j)
      for (int64_t c = 0; c < Kout; ++c) zp[j * Kout + c] += b2[c];
    return;
  }
  mm<T>(false, true, B, Kout, m.D, T(1), u.w->Xb.data() + buf * B * Dx, Dx, t, m.D, T(0), zp,
        Kout);
  const T* b = t + m.off_b1();
  for (int64_t j = 0; j < B; ++j)
    for (int64_t c = 0; c < Kout; ++c) zp[j * Kout + c] += b[c];
}

// W1's velocity buffer starts as u = m v - c W1 with v = 0 (see step).
template <class T, class L>
inline void Run<T, L>::init_velocity(Unit& u) {
  if (m.kind != Kind::MLP) return;
  w1.init_velocity(*this, u.k, T(lr[u.k] * l2[u.k] / double(n_train[u.k])));
}

// Batch, inputs and logits of step t (the first step of a run or of a chunk).
template <class T, class L>
inline void Run<T, L>::prepare(Unit& u, int64_t t) {
  const int par = int(t & 1), buf = nbuf == 2 ? par : 0;
  u.stream.next(B, u.w->idx.data());
  if (m.kind == Kind::MLP)
    w1.forward(*this, u, t, buf);
  else
    gather(u, buf);
  batch_logits(u, par, buf);
}

// v = m v - a G - c w; w += v over n elements, G already folded into v by the GEMM.
template <class T, class L>
inline void Run<T, L>::apply(T* w, T* v, int64_t n, T c) {
  if (c != T(0))
    for (int64_t i = 0; i < n; ++i) {
      v[i] -= c * w[i];
      w[i] += v[i];
    }
  else
    for (int64_t i = 0; i < n; ++i) w[i] += v[i];
}

// Small strided variant: v[r, :n] for `rows` rows with leading dimension ld.
template <class T, class L>
inline void Run<T, L>::apply2d(T* w, T* v, int64_t rows, int64_t n, int64_t ld, T c) {
  for (int64_t r = 0; r < rows; ++r) apply(w + r * ld, v + r * ld, n, c);
}

// Bias: v = m v - a g - c b; b += v.
template <class T, class L>
inline void Run<T, L>::apply_bias(T* b, T* v, const T* g, int64_t n, T mom, T a, T c) {
  for (int64_t i = 0; i < n; ++i) {
    v[i] = mom * v[i] - a * g[i] - c * b[i];
    b[i] += v[i];
  }
}

// One SGD step of one model at step t; the batch, its inputs and logits are ready. When
// `next` (step t + 1 follows in this chunk) it also prepares step t + 1's.
template <class T, class L>
inline void Run<T, L>::step(Unit& u, int64_t t, bool next) {
  if (u.frozen) return;
  const int64_t k = u.k, D = m.D, H = m.H;
  const int par = int(t & 1);
  const bool last = t + 1 == steps;  // no later step: the velocity need not be prepared
  Work& wk = *u.w;
  T* t_ = th(k);
  T* v = velocity[k].get();
  const T mom = T(this->mom[k]), a = T(lr[k] / double(B)),
          c = T(lr[k] * l2[k] / double(n_train[k]));
  // Logits of the batch, residual, loss.
  T* Z = wk.Z.data();
  std::memcpy(Z, u.Zpart + par * zs, sizeof(T) * B * Kout);
  const int64_t* y = Y + k * N;
  const int64_t* idx = wk.idx.data();
  const double loss =
      residual_sum<double>(Kout, Z, [y, idx](int64_t j) { return y[idx[j]]; }, B, Z, Z);
  if (!std::isfinite(loss)) {
    u.frozen = true;
    div_step[k] = t;
    return;
  }
  const T* R = Z;
  T* g = wk.g.data();
  if (m.kind != Kind::MLP) {
    // W [Kout, D], b [Kout].
    mm<T>(true, false, Kout, D, B, -a, R, Kout, wk.Xb.data(), Dx, mom, v, D);
    apply(t_, v, Kout * D, c);
    std::fill(g, g + Kout, T(0));
    for (int64_t j = 0; j < B; ++j)
      for (int64_t q = 0; q < Kout; ++q) g[q] += R[j * Kout + q];
    apply_bias(t_ + m.off_b1(), v + m.off_b1(), g, Kout, mom, a, c);
    if (next) {
      u.stream.next(B, wk.idx.data());
      gather(u, 0);
      batch_logits(u, 1 - par, 0);
    }
    return;
  }
  const int64_t C = m.C;
  const T* A = u.A;
  T* W2 = t_ + m.off_W2();
  T* vW2 = v + m.off_W2();
  // dA = (R W2) * (A > 0), with W2 before its update.
  T* dA = wk.dA.data();
  const int64_t dld = wk.dld;
  mm<T>(false, false, B, H, C, T(1), R, C, W2, H, T(0), dA, dld);
  relu_mask(dA, dld, H, A, H, B);
  // W2 and b2.
  mm<T>(true, false, C, H, B, -a, R, C, A, H, mom, vW2, H);
  apply2d(W2, vW2, C, H, H, c);
  std::fill(g, g + C, T(0));
  for (int64_t j = 0; j < B; ++j)
    for (int64_t q = 0; q < C; ++q) g[q] += R[j * C + q];
  apply_bias(t_ + m.off_b2(), v + m.off_b2(), g, C, mom, a, c);
  // b1.
  std::fill(g, g + H, T(0));
  for (int64_t j = 0; j < B; ++j)
    for (int64_t h = 0; h < H; ++h) g[h] += dA[j * dld + h];
  apply_bias(t_ + m.off_b1(), v + m.off_b1(), g, H, mom, a, c);
  // W1, and the next step's batch and forward.
  const int nb = w1.step(*this, u, t, dA, a, mom, c, last, next);
  if (next) batch_logits(u, 1 - par, nb);
}

}  // namespace sgdcore::cpu::sgd
