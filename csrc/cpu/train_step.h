// One SGD step of one unit of the training engine (train_run.h), and the forward of the
// step after it. W1 is updated in blocks: one GEMM (beta = 1) into its velocity buffer,
// which holds m v - c W1 between steps, one fused pass (W1 += v, next m v - c W1), and
// the next step's forward on the hot block. Sparse inputs (most pixels 0) take the path
// of cpu/sparse_inputs.h instead of the first layer's GEMMs.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/blas.h"
#include "common/formulas.h"
#include "common/multiversion.h"
#include "cpu/elementwise.h"
#include "cpu/forward_backward.h"
#include "cpu/train_run.h"

namespace sgdcore::cpu::sgd {

// The element-wise loops of a step are compiled for AVX-512, AVX2 and baseline x86-64 and
// picked at load time (SGD_MULTIVERSION, GCC function multiversioning), since the build
// itself targets baseline x86-64.

// W1 block after its GEMM: w += v, then v = m v - c w (the next step's u), or only
// w += v on the last step.
#define SGD_DEFINE_UPDATE(T)                                                             \
  [[maybe_unused]] SGD_MULTIVERSION static void update_block(T* __restrict w, T* __restrict v, int64_t n, T mom, \
                                     T c, bool last) {                                   \
    if (last) {                                                                          \
      for (int64_t i = 0; i < n; ++i) w[i] += v[i];                                      \
    } else if (c != T(0)) {                                                              \
      for (int64_t i = 0; i < n; ++i) {                                                  \
        const T wi = w[i] + v[i];                                                        \
        w[i] = wi;                                                                       \
        v[i] = mom * v[i] - c * wi;                                                      \
      }                                                                                  \
    } else {                                                                             \
      for (int64_t i = 0; i < n; ++i) {                                                  \
        w[i] += v[i];                                                                    \
        v[i] *= mom;                                                                     \
      }                                                                                  \
    }                                                                                    \
  }
SGD_DEFINE_UPDATE(float)
SGD_DEFINE_UPDATE(double)
#undef SGD_DEFINE_UPDATE

// C[M, N] = alpha op(A) op(B) + beta C; up to SGD_GEMV_ROWS rows of A as GEMVs.
#ifndef SGD_GEMV_ROWS
#define SGD_GEMV_ROWS 8
#endif
template <class T>
void mm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
        const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= SGD_GEMV_ROWS && !ta) {
    // Row by row, c_i = alpha op(B)^T a_i + beta c_i: no packing of B, which a GEMM this
    // thin would copy once for a few rows of work.
    for (int64_t i = 0; i < M; ++i) {
      if (tb)
        blas::gemv<T>(false, N, K, alpha, B, ldb, A + i * lda, beta, C + i * ldc);
      else
        blas::gemv<T>(true, K, N, alpha, B, ldb, A + i * lda, beta, C + i * ldc);
    }
    return;
  }
  if (M == 1 && lda == 1) {
    if (tb)
      blas::gemv<T>(false, N, K, alpha, B, ldb, A, beta, C);
    else
      blas::gemv<T>(true, K, N, alpha, B, ldb, A, beta, C);
    return;
  }
  blas::gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// A[:, h0:h1] = relu(Xb W1[h0:h1]^T + b1) for rows [r0, r1) of W1.
template <class T>
inline void Run<T>::forward_rows(Unit& u, int buf, int64_t r0, int64_t r1) {
  const int64_t D = m.D, H = m.H;
  const T* t = th(u.k);
  T* A = u.A;
  mm<T>(false, true, B, r1 - r0, Dx, T(1), u.w->Xb.data() + buf * B * Dx, Dx, t + r0 * D, D,
        T(0), A + r0, H);
  bias_relu(A, H, t + m.off_b1(), B, r0, r1);
}

// The unit's whole forward, in the blocks of rows the fused update computes it in
// (step), so that a batch's activations are the same whichever of the two computes them.
template <class T>
inline void Run<T>::forward_blocks(Unit& u, int buf) {
  const int64_t br = std::max<int64_t>(1, plan.block_rows);
  for (int64_t r0 = u.h0; r0 < u.h1; r0 += br) forward_rows(u, buf, r0, std::min(u.h1, r0 + br));
}

// Zpart[par][s] = this unit's share of the logits of the current batch.
template <class T>
inline void Run<T>::partial_logits(Unit& u, int par, int buf) {
  T* zp = u.Zpart + (par * S + u.s) * zs;
  const T* t = th(u.k);
  if (m.kind == Kind::MLP) {
    mm<T>(false, true, B, Kout, u.h1 - u.h0, T(1), u.A + u.h0, m.H,
          t + m.off_W2() + u.h0, m.H, T(0), zp, Kout);
    if (u.s == 0) {
      const T* b2 = t + m.off_b2();
      for (int64_t j = 0; j < B; ++j)
        for (int64_t c = 0; c < Kout; ++c) zp[j * Kout + c] += b2[c];
    }
    return;
  }
  mm<T>(false, true, B, Kout, m.D, T(1), u.w->Xb.data() + buf * B * Dx, Dx, t, m.D, T(0), zp,
        Kout);
  const T* b = t + m.off_b1();
  for (int64_t j = 0; j < B; ++j)
    for (int64_t c = 0; c < Kout; ++c) zp[j * Kout + c] += b[c];
}

// W1's velocity buffer starts as u = m v - c W1 with v = 0 (see step).
template <class T>
inline void Run<T>::init_velocity(Unit& u) {
  if (m.kind != Kind::MLP) return;
  const T c = T(lr[u.k] * l2[u.k] / double(n_train[u.k]));
  if (sparse) {  // W1T and its velocity, [D, ldw1] (one unit per model)
    const T* w = w1t[u.k].get();
    T* vw = v1t[u.k].get();
    for (int64_t i = 0; i < m.D * ldw1; ++i) vw[i] = -c * w[i];
    return;
  }
  const T* w = th(u.k) + u.h0 * m.D;
  T* vw = velocity[u.k].get() + u.h0 * m.D;
  for (int64_t i = 0; i < (u.h1 - u.h0) * m.D; ++i) vw[i] = -c * w[i];
}

// Batch, inputs and logits of step t (the first step of a run or of a chunk).
template <class T>
inline void Run<T>::prepare(Unit& u, int64_t t) {
  const int par = int(t & 1), buf = nbuf == 2 ? par : 0;
  u.stream.next(B, u.w->idx.data());
  if (sparse) {
    BatchColumns<T>& bc = u.w->cols;
    bc.build(xtr, u.w->idx.data(), B);
    catch_up(u.k, bc.pixels.data(), int64_t(bc.pixels.size()), t);
    const T* t_ = th(u.k);
    sparse_forward(xtr, u.w->idx.data(), 0, B, w1t[u.k].get(), ldw1, u.h0, u.h1, u.A, m.H,
                   m.D);
    bias_relu(u.A, m.H, t_ + m.off_b1(), B, u.h0, u.h1);
    u.clock = t;
  } else {
    gather(u, buf);
    if (m.kind == Kind::MLP) forward_blocks(u, buf);
  }
  partial_logits(u, par, buf);
}

// v = m v - a G - c w; w += v over n elements, G already folded into v by the GEMM.
template <class T>
inline void Run<T>::apply(T* w, T* v, int64_t n, T c) {
  if (c != T(0))
    for (int64_t i = 0; i < n; ++i) {
      v[i] -= c * w[i];
      w[i] += v[i];
    }
  else
    for (int64_t i = 0; i < n; ++i) w[i] += v[i];
}

// Small strided variant: v[r, :n] for `rows` rows with leading dimension ld.
template <class T>
inline void Run<T>::apply2d(T* w, T* v, int64_t rows, int64_t n, int64_t ld, T c) {
  for (int64_t r = 0; r < rows; ++r) apply(w + r * ld, v + r * ld, n, c);
}

// Bias: v = m v - a g - c b; b += v.
template <class T>
inline void Run<T>::apply_bias(T* b, T* v, const T* g, int64_t n, T mom, T a, T c) {
  for (int64_t i = 0; i < n; ++i) {
    v[i] = mom * v[i] - a * g[i] - c * b[i];
    b[i] += v[i];
  }
}

// One SGD step of one unit at step t; the batch, its inputs and logits are ready. When
// `next` (step t + 1 follows in this chunk) it also prepares step t + 1's.
template <class T>
inline void Run<T>::step(Unit& u, int64_t t, bool next) {
  if (u.frozen) return;
  const int64_t k = u.k, D = m.D, H = m.H;
  const int par = int(t & 1);
  const int cur = nbuf == 2 ? par : 0, nxt = nbuf == 2 ? 1 - par : 0;
  const bool last = t + 1 == steps;  // no later step: the velocity need not be prepared
  Work& wk = *u.w;
  T* t_ = th(k);
  T* v = velocity[k].get();
  const T mom = T(this->mom[k]), a = T(lr[k] / double(B)),
          c = T(lr[k] * l2[k] / double(n_train[k]));
  // Logits of the batch (sum of the slices' shares, in slice order), residual, loss.
  T* Z = wk.Z.data();
  const T* zp = u.Zpart + par * S * zs;
  std::memcpy(Z, zp, sizeof(T) * B * Kout);
  for (int64_t s = 1; s < S; ++s)
    for (int64_t i = 0; i < B * Kout; ++i) Z[i] += zp[s * zs + i];
  const int64_t* y = Y + k * N;
  const int64_t* idx = wk.idx.data();
  const double loss =
      residual_sum<double>(Kout, Z, [y, idx](int64_t j) { return y[idx[j]]; }, B, Z, Z);
  if (!std::isfinite(loss)) {
    u.frozen = true;
    if (u.s == 0) div_step[k] = t;
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
      partial_logits(u, 1 - par, 0);
    }
    return;
  }
  const int64_t h0 = u.h0, hs = u.h1 - u.h0, C = m.C;
  const T* A = u.A;
  T* W2 = t_ + m.off_W2();
  T* vW2 = v + m.off_W2();
  // dA = (R W2[:, slice]) * (A > 0), with W2 before its update.
  T* dA = wk.dA.data();
  const int64_t dld = wk.dld;
  mm<T>(false, false, B, hs, C, T(1), R, C, W2 + h0, H, T(0), dA, dld);
  relu_mask(dA, dld, hs, A + h0, H, B);
  // W2[:, slice] and b2 (slice 0).
  mm<T>(true, false, C, hs, B, -a, R, C, A + h0, H, mom, vW2 + h0, H);
  apply2d(W2 + h0, vW2 + h0, C, hs, H, c);
  if (u.s == 0) {
    std::fill(g, g + C, T(0));
    for (int64_t j = 0; j < B; ++j)
      for (int64_t q = 0; q < C; ++q) g[q] += R[j * C + q];
    apply_bias(t_ + m.off_b2(), v + m.off_b2(), g, C, mom, a, c);
  }
  // b1[slice].
  std::fill(g, g + hs, T(0));
  for (int64_t j = 0; j < B; ++j)
    for (int64_t h = 0; h < hs; ++h) g[h] += dA[j * dld + h];
  apply_bias(t_ + m.off_b1() + h0, v + m.off_b1() + h0, g, hs, mom, a, c);
  if (sparse) {
    sparse_W1_step(u, t, dA, a, mom, c, last);
    if (next) prepare(u, t + 1);
    return;
  }
  // The next batch: into the other buffer when fused (the current one is still needed).
  if (next && nbuf == 2) {
    u.stream.next(B, wk.idx.data());
    gather(u, nxt);
  }
  // W1[slice] block by block. Its velocity buffer holds u = m v - c W1 between steps,
  // so one GEMM (beta = 1) gives v = u - a dA^T Xb and one pass does W1 += v and
  // prepares the next u; the next step's forward reads the block while it is in cache.
  const T* Xb = wk.Xb.data() + cur * B * Dx;
  const int64_t br = std::max<int64_t>(1, plan.block_rows);
  for (int64_t r0 = h0; r0 < u.h1; r0 += br) {
    const int64_t r1 = std::min(u.h1, r0 + br), n = (r1 - r0) * D;
    T* w = t_ + r0 * D;
    T* vw = v + r0 * D;
    blas::gemm<T>(true, false, r1 - r0, Dx, B, -a, dA + (r0 - h0), dld, Xb, Dx, T(1), vw, D);
    if (Dx == D || c != T(0))
      update_block(w, vw, n, mom, c, last);
    else  // dropped columns: no gradient, no decay, v stays 0: nothing to do
      for (int64_t r = 0; r < r1 - r0; ++r) update_block(w + r * D, vw + r * D, Dx, mom, c, last);
    if (next && nbuf == 2) forward_rows(u, nxt, r0, r1);
  }
  if (!next) return;
  if (nbuf == 1) {
    u.stream.next(B, wk.idx.data());
    gather(u, 0);
    forward_blocks(u, 0);
  }
  partial_logits(u, 1 - par, nxt);
}

// W1T rows of the batch's pixels at step t (current, see prepare): v = u - a G with
// G[p, :] = sum_i x_ip dA[i, :], w += v, u = m v - c w; by column blocks so dA's block
// stays in L2.
template <class T>
inline void Run<T>::sparse_W1_step(Unit& u, int64_t t, const T* dA, T a, T mom, T c, bool last) {
  const int64_t h0 = u.h0, hs = u.h1 - u.h0;
  const BatchColumns<T>& bc = u.w->cols;
  const int64_t np = int64_t(bc.pixels.size());
  T* w = w1t[u.k].get();
  T* uv = v1t[u.k].get();
  T* g = u.w->g.data();
  const int64_t bw = column_block<T>(B);
  for (int64_t c0 = 0; c0 < hs; c0 += bw) {
    const int64_t n = std::min(hs, c0 + bw) - c0;
    for (int64_t q = 0; q < np; ++q) {
      const int64_t p = bc.pixels[q], s0 = bc.start[q];
      sparse_rows_dot(g, dA + c0, u.w->dld, bc.row.data() + s0, bc.val.data() + s0,
                       bc.start[q + 1] - s0, n);
      const int64_t off = p * ldw1 + h0 + c0;
      rows_step(w + off, uv + off, g, n, a, mom, c, last);
    }
  }
  int64_t* at = row_clock[u.k].data();
  for (int64_t q = 0; q < np; ++q) at[bc.pixels[q]] = t + 1;
  u.clock = t + 1;
}

}  // namespace sgdcore::cpu::sgd
