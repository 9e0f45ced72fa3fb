// The training engine's inputs as its steps read them (train_run.h). Input columns
// (pixels) that are zero in every training row are left out of the GEMMs, with W1's
// columns permuted to match; sparse inputs get their non-zeros by row and W1 held
// transposed. Both layouts are undone when the run ends, so theta comes back in the
// model's own layout.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu/memory.h"
#include "cpu/sparse_inputs.h"
#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

// Decide the column layout; permute W1's columns of every model when it pays. The
// layout depends on the data alone (all N training rows, not the group's n_train), so
// a model's arithmetic does not depend on the group it runs in.
template <class T>
inline void Run<T>::setup_columns() {
  const int64_t D = m.D, n_pool = *std::max_element(n_train, n_train + K);
  if (m.kind != Kind::MLP) return;
  std::vector<char> tr(D, 0), te(D, 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) tr[d] |= X[i * D + d] != T(0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t d = 0; d < D; ++d) te[d] |= Xte[i * D + d] != T(0);
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
  Dx = d1;
  Dt = std::max<int64_t>(d2, 1);
  Xp.resize(n_pool * Dx);
  for (int64_t i = 0; i < n_pool; ++i)
    for (int64_t j = 0; j < Dx; ++j) Xp[i * Dx + j] = X[i * D + order[j]];
  Xtp.resize(M * Dt);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < Dt; ++j) Xtp[i * Dt + j] = Xte[i * D + order[j]];
  Xs = Xp.data();
  Xts = Xtp.data();
  permute_W1(false);
}

// W1[:, j] <- W1[:, order[j]] (forward) or back (inverse), every model.
template <class T>
inline void Run<T>::permute_W1(bool inverse) {
  if (order.empty()) return;
  const int64_t D = m.D;
  std::vector<T> row(D);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t h = 0; h < m.H; ++h) {
      T* w = th(k) + h * D;
      std::copy(w, w + D, row.begin());
      for (int64_t j = 0; j < D; ++j) {
        if (inverse)
          w[order[j]] = row[j];
        else
          w[j] = row[order[j]];
      }
    }
}

template <class T>
inline void Run<T>::make_work(Work& w, int64_t hs, bool own_shared) {
  w.idx.assign(B, 0);
  w.Xb.assign(nbuf * B * Dx, T(0));
  w.dld = sparse ? padded<T>(hs) : hs;
  w.dA.assign(B * w.dld, T(0));
  w.Z.assign(B * Kout, T(0));
  w.g.assign(std::max<int64_t>(hs, Kout), T(0));
  if (own_shared) {
    w.A.assign(B * m.H, T(0));
    w.Zpart.assign(2 * S * zs, T(0));
  }
}

template <class T>
inline void Run<T>::setup() {
  Kout = m.K();
  const bool mlp = m.kind == Kind::MLP;
  S = mlp ? std::max<int64_t>(1, std::min<int64_t>(plan.slices, std::max<int64_t>(1, m.H / 16)))
          : 1;
  sparse = plan.sparse && mlp && S == 1;
  Dx = Dt = m.D;  // the inputs as given, until a layout says otherwise
  Xs = X;
  Xts = Xte;
  if (sparse)
    setup_sparse();
  else
    setup_columns();
  nbuf = (mlp && plan.fuse && !sparse) ? 2 : 1;
  zs = (B * Kout + 15) / 16 * 16;
  velocity.resize(K);
  for (auto& v : velocity) {
    v.reset(static_cast<T*>(std::calloc(P, sizeof(T))));
    if (!v) throw std::bad_alloc();
  }
  units.reserve(K * S);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t s = 0; s < S; ++s) {
      int64_t h0 = 0, h1 = 0;
      if (mlp) {  // slice boundaries on multiples of 16 columns (no false sharing)
        auto edge = [&](int64_t q) {
          return q == S ? m.H : std::min<int64_t>(m.H, (q * m.H / S) / 16 * 16);
        };
        h0 = edge(s);
        h1 = edge(s + 1);
      }
      units.push_back(Unit{k, s, h0, h1, philox::BatchStream(seeds[k], n_train[k])});
    }
  if (S > 1) {  // lockstep: a workspace per unit, activations and logits per model
    works.resize(units.size());
    shared_A.resize(K);
    shared_Z.resize(K);
    for (int64_t k = 0; k < K; ++k) {
      shared_A[k].assign(B * m.H, T(0));
      shared_Z[k].assign(2 * S * zs, T(0));
    }
    for (size_t q = 0; q < units.size(); ++q) {
      Unit& u = units[q];
      make_work(works[q], u.h1 - u.h0, false);
      u.w = &works[q];
      u.A = shared_A[u.k].data();
      u.Zpart = shared_Z[u.k].data();
    }
  } else {  // dynamic: a workspace per thread, lent to the model it runs
    works.resize(plan.threads);
    for (Work& w : works) {
      make_work(w, mlp ? m.H : 0, true);
      if (sparse) w.cols.reserve(m.D, B * xtr.max_row);
    }
  }
  // Rows per evaluation chunk: from the data's sizes alone (not the group's n_train),
  // so that the chunked sums do not depend on the group.
  eval_rows = std::max<int64_t>(1, std::min<int64_t>(1024, std::max(M, N)));
  scratch.resize(plan.threads);
  for (auto& sc : scratch) sc.assign(eval_rows * (m.H + Kout) + Kout, T(0));
}

// Sparse inputs: the non-zeros of the training rows in use and of the test set, W1
// transposed in every model, every row current at step 0.
template <class T>
inline void Run<T>::setup_sparse() {
  const int64_t D = m.D, n_pool = *std::max_element(n_train, n_train + K);
  xtr.build(X, 0, n_pool, D);
  xchunk.resize(plan.threads);
  transpose_W1(false);
  snap.resize(plan.threads);
  snap_u.assign(plan.threads, std::vector<T>(m.H));
  w1_eval.assign(K, nullptr);
  row_clock.assign(K, std::vector<int64_t>(D, 0));
  powers.resize(K);
  for (int64_t k = 0; k < K; ++k)
    powers[k].reset(double(T(mom[k])), double(T(lr[k] * l2[k] / double(n_train[k]))));
}

// theta's W1 [H, D] -> W1T [D, ldw1] (the run's copy), or back, every model.
template <class T>
inline void Run<T>::transpose_W1(bool back) {
  const int64_t D = m.D, H = m.H;
  if (!back) {
    ldw1 = padded<T>(H);
    w1t.resize(K);
    v1t.resize(K);
  }
  for (int64_t k = 0; k < K; ++k) {
    T* w = th(k) + m.off_W1();
    if (!back) {
      w1t[k] = aligned_array<T>(D * ldw1);
      v1t[k] = aligned_array<T>(D * ldw1);  // written by init_velocity
      for (int64_t d = 0; d < D; ++d) std::fill_n(w1t[k].get() + d * ldw1 + H, ldw1 - H, T(0));
    }
    if (back)
      transpose_back(w1t[k].get(), ldw1, H, D, 0, D, w);
    else
      transpose_into(w, H, D, 0, D, w1t[k].get(), ldw1);
  }
}

// Rows `pixels` (all D rows when null) of model k's W1T and velocity, brought from the
// step they are current at to step `to` by the idle-step map.
template <class T>
inline void Run<T>::catch_up(int64_t k, const int32_t* pixels, int64_t n, int64_t to) {
  const int64_t H = m.H;
  T* w = w1t[k].get();
  T* u = v1t[k].get();
  int64_t* at = row_clock[k].data();
  for (int64_t q = 0; q < n; ++q) {
    const int64_t p = pixels ? pixels[q] : q;
    const int64_t j = to - at[p];
    if (j == 0) continue;
    const double* P2 = powers[k].at(j);
    rows_catch_up(w + p * ldw1, u + p * ldw1, H, T(P2[0]), T(P2[1]), T(P2[2]), T(P2[3]));
    at[p] = to;
  }
}

// Model k's W1T with every row brought to step `to` (as catch_up would), written into
// thread tid's snapshot, which its evaluations then read; the run's rows are left as
// they are.
template <class T>
inline void Run<T>::snapshot(int64_t k, int64_t to, int tid) {
  const int64_t D = m.D, H = m.H;
  if (!snap[tid]) snap[tid] = aligned_array<T>(D * ldw1);
  T* out = snap[tid].get();
  T* uh = snap_u[tid].data();
  const T* w = w1t[k].get();
  const T* u = v1t[k].get();
  const int64_t* at = row_clock[k].data();
  for (int64_t p = 0; p < D; ++p) {
    T* o = out + p * ldw1;
    std::copy(w + p * ldw1, w + (p + 1) * ldw1, o);
    const int64_t j = to - at[p];
    if (j == 0) continue;
    std::copy(u + p * ldw1, u + p * ldw1 + H, uh);
    const double* P2 = powers[k].at(j);
    rows_catch_up(o, uh, H, T(P2[0]), T(P2[1]), T(P2[2]), T(P2[3]));
  }
  w1_eval[k] = out;
}

template <class T>
inline void Run<T>::gather(Unit& u, int buf) {
  T* dst = u.w->Xb.data() + buf * B * Dx;
  const int64_t* idx = u.w->idx.data();
  for (int64_t j = 0; j < B; ++j) std::memcpy(dst + j * Dx, Xs + idx[j] * Dx, sizeof(T) * Dx);
}

}  // namespace sgdcore::cpu::sgd
