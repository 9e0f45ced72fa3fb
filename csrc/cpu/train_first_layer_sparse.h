// The training engine's first layer on the inputs' non-zeros (SparseTrainW1), one of the
// two implementations of the members train_run.h lists (the other:
// train_first_layer_dense.h); MLP runs on inputs with many zeros.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/model.h"
#include "cpu/elementwise.h"
#include "cpu/memory.h"
#include "cpu/sparse_inputs.h"
#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

// The inputs' non-zeros by row (cpu/sparse_inputs.h); W1 and its velocity held
// transposed, [D, ldw1], during the run. A batch updates only the rows under its pixels;
// a row no batch touches is brought to date (the idle-step map of RowPowers) only when a
// batch next uses it, so every model keeps, per row, the step the row is current at.
template <class T>
class SparseTrainW1 {
 public:
  using value_type = T;
  using R = Run<T, SparseTrainW1>;

  void setup(R& r);  // the inputs' non-zeros; W1 and its velocity transposed
  int64_t buffers(const R&) const { return 1; }
  static int64_t dA_ld(int64_t hs) { return padded<T>(hs); }  // 64-byte aligned rows
  void init_velocity(R& r, int64_t k, T c) {
    const T* w = w1t_[k].get();
    T* vw = v1t_[k].get();
    for (int64_t i = 0; i < r.m.D * ldw1_; ++i) vw[i] = -c * w[i];
  }
  void forward(R& r, TrainUnit<T>& u, int64_t t, int buf);
  int step(R& r, TrainUnit<T>& u, int64_t t, const T* dA, T a, T mom, T c, bool last, bool next);
  void to_date(R& r, int64_t k, int64_t t, int tid);
  void eval_forward(R& r, const EvalItem& it, int tid, T* A);
  bool finite(R& r, int64_t k) const {
    bool ok = true;
    for (int64_t i = 0; i < r.m.D * ldw1_; ++i) ok &= std::isfinite(w1_eval_[k][i]);
    return ok;
  }
  void finish(R& r) {  // every row brought to the step its model stopped at
    for (int64_t k = 0; k < r.K; ++k) catch_up(r, k, nullptr, r.m.D, clock_[k]);
    transpose(r, true);
  }

 private:
  void transpose(R& r, bool back);
  void catch_up(R& r, int64_t k, const int32_t* pixels, int64_t n, int64_t to);

  Csr<T> xtr_;                             // training rows in use
  std::vector<Csr<T>> xchunk_;             // per thread: the test rows of an evaluation chunk
  std::vector<BatchColumns<T>> cols_;      // per thread: the batch's non-zeros by pixel
  std::vector<AlignedArray<T>> w1t_, v1t_;  // [K][D, ldw1]: W1T and its velocity
  int64_t ldw1_ = 0;
  std::vector<std::vector<int64_t>> row_clock_;  // [K][D]: the step each row is current at
  std::vector<int64_t> clock_;                   // [K]: the step the model's parameters hold
  std::vector<RowPowers> powers_;
  // An evaluation reads W1T with every row brought to the model's step in a copy (its
  // owner thread's), so that the run's own rows are only ever caught up when a batch uses
  // them: the trajectory does not depend on where evaluations fall.
  std::vector<AlignedArray<T>> snap_;    // per thread: [D, ldw1]
  std::vector<std::vector<T>> snap_u_;   // per thread: one velocity row [H]
  std::vector<const T*> w1_eval_;        // per model: the W1T its evaluation reads
};

// The non-zeros of the training rows in use, W1 transposed in every model, every row
// current at step 0.
template <class T>
inline void SparseTrainW1<T>::setup(R& r) {
  const int64_t D = r.m.D, K = r.K, n_pool = *std::max_element(r.n_train, r.n_train + K);
  xtr_.build(r.X, 0, n_pool, D);
  xchunk_.resize(r.plan.threads);
  cols_.resize(r.plan.threads);
  for (BatchColumns<T>& bc : cols_) bc.reserve(D, r.B * xtr_.max_row);
  transpose(r, false);
  snap_.resize(r.plan.threads);
  snap_u_.assign(r.plan.threads, std::vector<T>(r.m.H));
  w1_eval_.assign(K, nullptr);
  row_clock_.assign(K, std::vector<int64_t>(D, 0));
  clock_.assign(K, 0);
  powers_.resize(K);
  for (int64_t k = 0; k < K; ++k)
    powers_[k].reset(double(T(r.mom[k])), double(T(r.lr[k] * r.l2[k] / double(r.n_train[k]))));
}

// theta's W1 [H, D] -> W1T [D, ldw1] (the run's copy), or back, every model.
template <class T>
inline void SparseTrainW1<T>::transpose(R& r, bool back) {
  const int64_t D = r.m.D, H = r.m.H, K = r.K;
  if (!back) {
    ldw1_ = padded<T>(H);
    w1t_.resize(K);
    v1t_.resize(K);
  }
  for (int64_t k = 0; k < K; ++k) {
    T* w = r.th(k) + r.m.off_W1();
    if (!back) {
      w1t_[k] = aligned_array<T>(D * ldw1_);
      v1t_[k] = aligned_array<T>(D * ldw1_);  // written by init_velocity
      for (int64_t d = 0; d < D; ++d)
        std::fill_n(w1t_[k].get() + d * ldw1_ + H, ldw1_ - H, T(0));
    }
    if (back)
      transpose_back(w1t_[k].get(), ldw1_, H, D, 0, D, w);
    else
      transpose_into(w, H, D, 0, D, w1t_[k].get(), ldw1_);
  }
}

// Rows `pixels` (all D rows when null) of model k's W1T and velocity, brought from the
// step they are current at to step `to` by the idle-step map.
template <class T>
inline void SparseTrainW1<T>::catch_up(R& r, int64_t k, const int32_t* pixels, int64_t n,
                                       int64_t to) {
  const int64_t H = r.m.H;
  T* w = w1t_[k].get();
  T* u = v1t_[k].get();
  int64_t* at = row_clock_[k].data();
  for (int64_t q = 0; q < n; ++q) {
    const int64_t p = pixels ? pixels[q] : q;
    const int64_t j = to - at[p];
    if (j == 0) continue;
    const double* P2 = powers_[k].at(j);
    rows_catch_up(w + p * ldw1_, u + p * ldw1_, H, T(P2[0]), T(P2[1]), T(P2[2]), T(P2[3]));
    at[p] = to;
  }
}

// Model k's W1T with every row brought to step `to` (as catch_up would), written into
// thread tid's snapshot, which its evaluations then read; the run's rows are left as
// they are.
template <class T>
inline void SparseTrainW1<T>::to_date(R& r, int64_t k, int64_t to, int tid) {
  const int64_t D = r.m.D, H = r.m.H;
  if (!snap_[tid]) snap_[tid] = aligned_array<T>(D * ldw1_);
  T* out = snap_[tid].get();
  T* uh = snap_u_[tid].data();
  const T* w = w1t_[k].get();
  const T* u = v1t_[k].get();
  const int64_t* at = row_clock_[k].data();
  for (int64_t p = 0; p < D; ++p) {
    T* o = out + p * ldw1_;
    std::copy(w + p * ldw1_, w + (p + 1) * ldw1_, o);
    const int64_t j = to - at[p];
    if (j == 0) continue;
    std::copy(u + p * ldw1_, u + p * ldw1_ + H, uh);
    const double* P2 = powers_[k].at(j);
    rows_catch_up(o, uh, H, T(P2[0]), T(P2[1]), T(P2[2]), T(P2[3]));
  }
  w1_eval_[k] = out;
}

// Step t's batch (drawn) by pixel, its rows of W1T brought to step t, its forward.
template <class T>
inline void SparseTrainW1<T>::forward(R& r, TrainUnit<T>& u, int64_t t, int) {
  const int64_t B = r.B, H = r.m.H;
  BatchColumns<T>& bc = cols_[u.tid];
  bc.build(xtr_, u.w->idx.data(), B);
  catch_up(r, u.k, bc.pixels.data(), int64_t(bc.pixels.size()), t);
  sparse_forward(xtr_, u.w->idx.data(), 0, B, w1t_[u.k].get(), ldw1_, 0, H, u.A, H, r.m.D);
  bias_relu(u.A, H, r.th(u.k) + r.m.off_b1(), B, 0, H);
  clock_[u.k] = t;
}

// W1T rows of the batch's pixels at step t (current, see forward): v = u - a G with
// G[p, :] = sum_i x_ip dA[i, :], w += v, u = m v - c w; by column blocks so dA's block
// stays in L2. Then step t + 1's batch and forward when `next`.
template <class T>
inline int SparseTrainW1<T>::step(R& r, TrainUnit<T>& u, int64_t t, const T* dA, T a, T mom, T c,
                                  bool last, bool next) {
  const int64_t hs = r.m.H, B = r.B;
  const BatchColumns<T>& bc = cols_[u.tid];
  const int64_t np = int64_t(bc.pixels.size());
  T* w = w1t_[u.k].get();
  T* uv = v1t_[u.k].get();
  T* g = u.w->g.data();
  const int64_t bw = column_block<T>(B);
  for (int64_t c0 = 0; c0 < hs; c0 += bw) {
    const int64_t n = std::min(hs, c0 + bw) - c0;
    for (int64_t q = 0; q < np; ++q) {
      const int64_t p = bc.pixels[q], s0 = bc.start[q];
      sparse_rows_dot(g, dA + c0, u.w->dld, bc.row.data() + s0, bc.val.data() + s0,
                      bc.start[q + 1] - s0, n);
      const int64_t off = p * ldw1_ + c0;
      rows_step(w + off, uv + off, g, n, a, mom, c, last);
    }
  }
  int64_t* at = row_clock_[u.k].data();
  for (int64_t q = 0; q < np; ++q) at[bc.pixels[q]] = t + 1;
  clock_[u.k] = t + 1;
  if (next) {
    u.stream.next(B, u.w->idx.data());
    forward(r, u, t + 1, 0);
  }
  return 0;
}

// A[n, H] = X_chunk W1^T for an evaluation chunk, from the W1T to_date wrote.
template <class T>
inline void SparseTrainW1<T>::eval_forward(R& r, const EvalItem& it, int tid, T* A) {
  const int64_t H = r.m.H;
  if (it.kind == 0) {
    Csr<T>& xc = xchunk_[tid];
    xc.build(r.Xte, it.start, it.len, r.m.D);
    sparse_forward(xc, nullptr, 0, it.len, w1_eval_[it.k], ldw1_, 0, H, A, H, r.m.D);
  } else {
    sparse_forward(xtr_, nullptr, it.start, it.len, w1_eval_[it.k], ldw1_, 0, H, A, H, r.m.D);
  }
}

}  // namespace sgdcore::cpu::sgd
