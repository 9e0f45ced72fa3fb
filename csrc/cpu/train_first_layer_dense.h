// The training engine's first layer by GEMMs (DenseTrainW1), one of the two
// implementations of the members train_run.h lists (the other:
// train_first_layer_sparse.h); also the layer of the logistic models' runs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/blas.h"
#include "common/model.h"
#include "common/multiversion.h"
#include "cpu/elementwise.h"
#include "cpu/train_products.h"
#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

// The element-wise loops of a step are compiled for AVX-512, AVX2 and baseline x86-64 and
// picked at load time (SGD_MULTIVERSION, GCC function multiversioning), since the build
// itself targets baseline x86-64.

// W1 block after its GEMM: w += v, then v = m v - c w (the next step's u), or only
// w += v on the last step.
namespace body {

template <class T>
SGD_INLINE void update_block(T* __restrict w, T* __restrict v, int64_t n, T mom, T c, bool last) {
  if (last) {
    for (int64_t i = 0; i < n; ++i) w[i] += v[i];
  } else if (c != T(0)) {
    for (int64_t i = 0; i < n; ++i) {
      const T wi = w[i] + v[i];
      w[i] = wi;
      v[i] = mom * v[i] - c * wi;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      w[i] += v[i];
      v[i] *= mom;
    }
  }
}

}  // namespace body

// The entry points: each template above compiled for AVX-512, AVX2 and baseline
// x86-64 per element type (common/multiversion.h).
#define SGD_CLONES(T)                                                                           \
  [[maybe_unused]] SGD_MULTIVERSION static void update_block(T* __restrict w,                   \
      T* __restrict v, int64_t n, T mom, T c, bool last) {                                      \
    body::update_block<T>(w, v, n, mom, c, last);                                               \
  }
SGD_CLONES(float)
SGD_CLONES(double)
#undef SGD_CLONES

// W1 [H, D] lives in theta and is updated in blocks of rows: one GEMM (beta = 1) into its
// velocity buffer, which holds m v - c W1 between steps, one fused pass (W1 += v, next
// m v - c W1), and the next step's forward on the hot block (two batch buffers). Input
// columns (pixels) that are zero in every training row are left out of the GEMMs, with
// W1's columns permuted to match for the run.
template <class T>
class DenseTrainW1 {
 public:
  using value_type = T;
  using R = Run<T, DenseTrainW1>;

  void setup(R& r);  // trims all-zero columns, permuting W1's columns to match
  int64_t buffers(const R& r) const { return r.m.kind == Kind::MLP && r.plan.fuse ? 2 : 1; }
  static int64_t dA_ld(int64_t hs) { return hs; }
  void init_velocity(R& r, int64_t k, T c) const {
    const T* w = r.th(k);
    T* vw = r.velocity[k].get();
    for (int64_t i = 0; i < r.m.H * r.m.D; ++i) vw[i] = -c * w[i];
  }
  void forward(R& r, TrainUnit<T>& u, int64_t, int buf) const {
    r.gather(u, buf);
    forward_blocks(r, u, buf);
  }
  int step(R& r, TrainUnit<T>& u, int64_t t, const T* dA, T a, T mom, T c, bool last,
           bool next) const;
  void to_date(R&, int64_t, int64_t, int) const {}
  void eval_forward(R& r, const EvalItem& it, int, T* A) const {
    const int64_t ld = it.kind == 0 ? r.Dt : r.Dx;
    const T* Xc = (it.kind == 0 ? r.Xts : r.Xs) + it.start * ld;
    blas::gemm<T>(false, true, it.len, r.m.H, ld, T(1), Xc, ld, r.th(it.k) + r.m.off_W1(),
                  r.m.D, T(0), A, r.m.H);
  }
  bool finite(R&, int64_t) const { return true; }  // W1 lives in theta, checked with it
  void finish(R& r) const { permute(r, true); }

 private:
  void permute(R& r, bool inverse) const;
  void forward_rows(R& r, TrainUnit<T>& u, int buf, int64_t r0, int64_t r1) const;
  void forward_blocks(R& r, TrainUnit<T>& u, int buf) const;

  std::vector<int64_t> order_;  // position j of the permuted layout holds column order_[j]
  std::vector<T> Xp_, Xtp_;     // the permuted, trimmed copies of X and X_test when used
};

// Decide the column layout; permute W1's columns of every model when it pays. Training
// GEMMs then use the leading Dx columns (ld D) and the test set's the leading Dt (MLP
// only; exact, since the dropped columns add exact zeros). The layout depends on the
// data alone (all N training rows, not the group's n_train), so a model's arithmetic
// does not depend on the group it runs in.
template <class T>
inline void DenseTrainW1<T>::setup(R& r) {
  const int64_t D = r.m.D, N = r.N, M = r.M;
  const int64_t n_pool = *std::max_element(r.n_train, r.n_train + r.K);
  if (r.m.kind != Kind::MLP) return;
  const T* X = r.X;
  const T* Xte = r.Xte;
  std::vector<char> tr(D, 0), te(D, 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) tr[d] |= X[i * D + d] != T(0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t d = 0; d < D; ++d) te[d] |= Xte[i * D + d] != T(0);
  std::vector<int64_t>& order = order_;
  order.clear();
  for (int64_t d = 0; d < D; ++d)
    if (tr[d]) order.push_back(d);
  const int64_t d1 = int64_t(order.size());
  for (int64_t d = 0; d < D; ++d)
    if (!tr[d] && te[d]) order.push_back(d);
  const int64_t d2 = int64_t(order.size());
  // Worth it when at least 1/16 of the columns go; keep at least one column.
  if (d1 == 0 || 16 * (D - d1) < D) {
    order.clear();
    return;
  }
  for (int64_t d = 0; d < D; ++d)
    if (!tr[d] && !te[d]) order.push_back(d);
  const int64_t Dx = d1, Dt = std::max<int64_t>(d2, 1);
  Xp_.resize(n_pool * Dx);
  for (int64_t i = 0; i < n_pool; ++i)
    for (int64_t j = 0; j < Dx; ++j) Xp_[i * Dx + j] = X[i * D + order[j]];
  Xtp_.resize(M * Dt);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < Dt; ++j) Xtp_[i * Dt + j] = Xte[i * D + order[j]];
  r.Dx = Dx;
  r.Dt = Dt;
  r.Xs = Xp_.data();
  r.Xts = Xtp_.data();
  permute(r, false);
}

// W1[:, j] <- W1[:, order[j]] (forward) or back (inverse), every model.
template <class T>
inline void DenseTrainW1<T>::permute(R& r, bool inverse) const {
  if (order_.empty()) return;
  const int64_t D = r.m.D;
  std::vector<T> row(D);
  for (int64_t k = 0; k < r.K; ++k)
    for (int64_t h = 0; h < r.m.H; ++h) {
      T* w = r.th(k) + h * D;
      std::copy(w, w + D, row.begin());
      for (int64_t j = 0; j < D; ++j) {
        if (inverse)
          w[order_[j]] = row[j];
        else
          w[j] = row[order_[j]];
      }
    }
}

// A[:, h0:h1] = relu(Xb W1[h0:h1]^T + b1) for rows [r0, r1) of W1.
template <class T>
inline void DenseTrainW1<T>::forward_rows(R& r, TrainUnit<T>& u, int buf, int64_t r0,
                                          int64_t r1) const {
  const int64_t D = r.m.D, H = r.m.H, B = r.B, Dx = r.Dx;
  const T* t = r.th(u.k);
  T* A = u.A;
  mm<T>(false, true, B, r1 - r0, Dx, T(1), u.w->Xb.data() + buf * B * Dx, Dx, t + r0 * D, D,
        T(0), A + r0, H);
  bias_relu(A, H, t + r.m.off_b1(), B, r0, r1);
}

// The model's whole forward, in the blocks of rows the fused update computes it in
// (step), so that a batch's activations are the same whichever of the two computes them.
template <class T>
inline void DenseTrainW1<T>::forward_blocks(R& r, TrainUnit<T>& u, int buf) const {
  const int64_t br = std::max<int64_t>(1, r.plan.block_rows);
  for (int64_t r0 = 0; r0 < r.m.H; r0 += br) forward_rows(r, u, buf, r0, std::min(r.m.H, r0 + br));
}

// W1 block by block. Its velocity buffer holds u = m v - c W1 between steps, so one GEMM
// (beta = 1) gives v = u - a dA^T Xb and one pass does W1 += v and prepares the next u;
// the next step's forward reads the block while it is in cache.
template <class T>
inline int DenseTrainW1<T>::step(R& r, TrainUnit<T>& u, int64_t t, const T* dA, T a, T mom, T c,
                                 bool last, bool next) const {
  const int64_t D = r.m.D, H = r.m.H, B = r.B, Dx = r.Dx;
  const int par = int(t & 1), nbuf = int(r.nbuf);
  const int cur = nbuf == 2 ? par : 0, nxt = nbuf == 2 ? 1 - par : 0;
  TrainWork<T>& wk = *u.w;
  T* t_ = r.th(u.k);
  T* v = r.velocity[u.k].get();
  // The next batch: into the other buffer when fused (the current one is still needed).
  if (next && nbuf == 2) {
    u.stream.next(B, wk.idx.data());
    r.gather(u, nxt);
  }
  const T* Xb = wk.Xb.data() + cur * B * Dx;
  const int64_t dld = wk.dld;
  const int64_t br = std::max<int64_t>(1, r.plan.block_rows);
  for (int64_t r0 = 0; r0 < H; r0 += br) {
    const int64_t r1 = std::min(H, r0 + br), n = (r1 - r0) * D;
    T* w = t_ + r0 * D;
    T* vw = v + r0 * D;
    blas::gemm<T>(true, false, r1 - r0, Dx, B, -a, dA + r0, dld, Xb, Dx, T(1), vw, D);
    if (Dx == D || c != T(0))
      update_block(w, vw, n, mom, c, last);
    else  // dropped columns: no gradient, no decay, v stays 0: nothing to do
      for (int64_t q = 0; q < r1 - r0; ++q) update_block(w + q * D, vw + q * D, Dx, mom, c, last);
    if (next && nbuf == 2) forward_rows(r, u, nxt, r0, r1);
  }
  if (next && nbuf == 1) {
    u.stream.next(B, wk.idx.data());
    forward(r, u, t + 1, 0);
  }
  return nxt;
}

}  // namespace sgdcore::cpu::sgd
