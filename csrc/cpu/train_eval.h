// Evaluations of the training engine (train_run.h): test accuracy, test and training
// cross-entropy of one model, in chunks of rows that any thread may take, reduced in a
// fixed order so the metrics do not depend on who computed which chunk.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/blas.h"
#include "common/formulas.h"
#include "cpu/elementwise.h"
#include "cpu/forward_backward.h"
#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

// Cross-entropy sum and correct count of model k on rows [s, s+n) of (Xs, ys).
template <class T, class L>
inline void Run<T, L>::eval_chunk(Item& it, T* sc, int tid) {
  const T* t_ = th(it.k);
  if (it.kind == 2) {
    bool ok = true;
    for (int64_t i = 0; i < P; ++i) ok &= std::isfinite(t_[i]);
    ok &= w1.finite(*this, it.k);  // W1, where the first layer keeps it during the run
    it.finite = ok;
    return;
  }
  const int64_t* ys = it.kind == 0 ? yte : Y + it.k * N;
  T* A = sc;
  T* Z = sc + eval_rows * m.H;
  T* p = Z + eval_rows * Kout;
  const int64_t n = it.len;
  if (m.kind == Kind::MLP) {
    const int64_t H = m.H, C = m.C;
    w1.eval_forward(*this, it, tid, A);
    bias_relu(A, H, t_ + m.off_b1(), n, 0, H);
    blas::gemm<T>(false, true, n, C, H, T(1), A, H, t_ + m.off_W2(), H, T(0), Z, C);
    const T* b2 = t_ + m.off_b2();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < C; ++c) Z[i * C + c] += b2[c];
  } else {
    const T* Xc = (it.kind == 0 ? Xts : Xs) + it.start * m.D;  // logistic: all D columns
    forward(m, t_, Xc, n, A, Z);
  }
  double ce = 0.0;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* z = Z + i * Kout;
    const int64_t lab = ys[it.start + i];
    if (Kout == 1) {
      ce += double(binary_xent(z[0], lab));
      correct += int64_t(z[0] > T(0)) == lab;
    } else {
      ce += double(softmax_xent(z, Kout, lab, p));
      int64_t best = 0;
      for (int64_t q = 1; q < Kout; ++q)
        if (z[q] > z[best]) best = q;
      correct += best == lab;
    }
  }
  it.ce = ce;
  it.correct = correct;
}

// Evaluation items of model k: test chunks, training chunks, the parameter check.
template <class T, class L>
inline void Run<T, L>::add_eval_items(int64_t k, std::vector<Item>& items) const {
  for (int64_t s = 0; s < M; s += eval_rows)
    items.push_back(Item{k, 0, s, std::min(eval_rows, M - s), 0.0, 0, true});
  for (int64_t s = 0; s < n_train[k]; s += eval_rows)
    items.push_back(Item{k, 1, s, std::min(eval_rows, n_train[k] - s), 0.0, 0, true});
  items.push_back(Item{k, 2, 0, 0, 0.0, 0, true});
}

// Writes evaluation e of model k from its items (fixed order); NaN metrics when its
// parameters are not finite. Only a non-finite mini-batch loss stops a model (see
// step): evaluations never change a run.
template <class T, class L>
inline void Run<T, L>::reduce_eval(int64_t k, const Item* items, int64_t n_items, int64_t e) {
  double test_ce = 0.0, train_ce = 0.0;
  int64_t correct = 0;
  bool finite = true;
  for (int64_t i = 0; i < n_items; ++i) {
    const Item& it = items[i];
    if (it.k != k) continue;
    if (it.kind == 0) {
      test_ce += it.ce;
      correct += it.correct;
    } else if (it.kind == 1) {
      train_ce += it.ce;
    } else {
      finite = it.finite;
    }
  }
  double* out = metrics + (k * E + e) * 3;
  out[0] = double(correct) / double(M);
  out[1] = test_ce / double(M);
  out[2] = train_ce / double(n_train[k]);
  if (!finite) std::fill(out, out + 3, double(NAN));
}

}  // namespace sgdcore::cpu::sgd
