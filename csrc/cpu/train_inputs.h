// The training engine's inputs and scratch (train_run.h): the first layer's layout (it
// may permute or transpose W1 and lay the inputs out its own way), the velocities, the
// threads' scratch, and the gather of a batch's rows for the GEMMs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

template <class T, class L>
inline void Run<T, L>::make_work(Work& w, int64_t hs) {
  w.idx.assign(B, 0);
  w.Xb.assign(nbuf * B * Dx, T(0));
  w.dld = L::dA_ld(hs);
  w.dA.assign(B * w.dld, T(0));
  w.Z.assign(B * Kout, T(0));
  w.g.assign(std::max<int64_t>(hs, Kout), T(0));
  w.A.assign(B * m.H, T(0));
  w.Zpart.assign(2 * zs, T(0));
}

template <class T, class L>
inline void Run<T, L>::setup() {
  Kout = m.K();
  const bool mlp = m.kind == Kind::MLP;
  Dx = Dt = m.D;  // the inputs as given, until the first layer says otherwise
  Xs = X;
  Xts = Xte;
  w1.setup(*this);
  nbuf = w1.buffers(*this);
  zs = (B * Kout + 15) / 16 * 16;
  velocity.resize(K);
  for (auto& v : velocity) {
    v.reset(static_cast<T*>(std::calloc(P, sizeof(T))));
    if (!v) throw std::bad_alloc();
  }
  units.reserve(K);
  for (int64_t k = 0; k < K; ++k)
    units.push_back(Unit{k, philox::BatchStream(seeds[k], n_train[k])});
  works.resize(plan.threads);  // a workspace per thread, lent to the model it runs
  for (Work& w : works) make_work(w, mlp ? m.H : 0);
  // Rows per evaluation chunk: from the data's sizes alone (not the group's n_train),
  // so that the chunked sums do not depend on the group.
  eval_rows = std::max<int64_t>(1, std::min<int64_t>(1024, std::max(M, N)));
  scratch.resize(plan.threads);
  for (auto& sc : scratch) sc.assign(eval_rows * (m.H + Kout) + Kout, T(0));
}

template <class T, class L>
inline void Run<T, L>::gather(Unit& u, int buf) {
  T* dst = u.w->Xb.data() + buf * B * Dx;
  const int64_t* idx = u.w->idx.data();
  for (int64_t j = 0; j < B; ++j) std::memcpy(dst + j * Dx, Xs + idx[j] * Dx, sizeof(T) * Dx);
}

}  // namespace sgdcore::cpu::sgd
