// Products with a narrow output layer (C of a few classes): Z = A W^T with W [C, H]; and
// the binary logistic model's Hessian-vector product, a dot and an axpy per row.
// A GEMM of that shape spends more time packing A than multiplying (measured 2 ms for
// 1,000 x 800 x 10 in float32 here, against 0.1 ms of arithmetic); these loops read each
// row of A once per block of four outputs, with W in L1.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/curvature_formulas.h"
#include "common/formulas.h"
#include "common/multiversion.h"

namespace sgdcore::cpu {

namespace body {

// Z[i, c] = beta Z[i, c] + sum_h A[i, h] W[c, h] for i < n, c < C (beta 0: Z is not
// read).
template <class T>
SGD_INLINE void narrow_times_t(const T* __restrict A, int64_t lda, int64_t n,
                const T* __restrict W, int64_t ldw, int64_t C, int64_t H, T beta,
                T* __restrict Z, int64_t ldz) {
  typedef T V __attribute__((vector_size(64), aligned(sizeof(T))));
  constexpr int64_t L = 64 / int64_t(sizeof(T));
  const auto hsum = [](V v) {
    T s = T(0);
    for (int64_t l = 0; l < L; ++l) s += v[l];
    return s;
  };
  for (int64_t i = 0; i < n; ++i) {
    const T* a = A + i * lda;
    T* z = Z + i * ldz;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
      const T *w0 = W + c * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
      V s0 = {}, s1 = {}, s2 = {}, s3 = {};
      int64_t h = 0;
      for (; h + L <= H; h += L) {
        const V x = *reinterpret_cast<const V*>(a + h);
        s0 += x * *reinterpret_cast<const V*>(w0 + h);
        s1 += x * *reinterpret_cast<const V*>(w1 + h);
        s2 += x * *reinterpret_cast<const V*>(w2 + h);
        s3 += x * *reinterpret_cast<const V*>(w3 + h);
      }
      T t0 = hsum(s0), t1 = hsum(s1), t2 = hsum(s2), t3 = hsum(s3);
      for (; h < H; ++h) {
        t0 += a[h] * w0[h];
        t1 += a[h] * w1[h];
        t2 += a[h] * w2[h];
        t3 += a[h] * w3[h];
      }
      const T t[4] = {t0, t1, t2, t3};
      for (int64_t q = 0; q < 4; ++q)
        z[c + q] = beta == T(0) ? t[q] : beta * z[c + q] + t[q];
    }
    for (; c < C; ++c) {
      const T* w0 = W + c * ldw;
      V s0 = {};
      int64_t h = 0;
      for (; h + L <= H; h += L)
        s0 += *reinterpret_cast<const V*>(a + h) * *reinterpret_cast<const V*>(w0 + h);
      T t0 = hsum(s0);
      for (; h < H; ++h) t0 += a[h] * w0[h];
      z[c] = beta == T(0) ? t0 : beta * z[c] + t0;
    }
  }
}
// Binary logistic regression's Hessian-vector product over rows i < n of X [n, D],
// each row read from memory once: r_i = p_i (1 - p_i) (x_i . v + c) with
// p_i = sigmoid(x_i . w + b), or the given probabilities P[i]; then out[:D] += r_i x_i
// and out[D] += r_i. wb = (w, b), vc = (v, c), each D + 1 long.
template <class T>
SGD_INLINE void logistic_binary_hvp_rows(const T* __restrict X, int64_t n, int64_t D,
                const T* __restrict wb, const T* __restrict P, const T* __restrict vc,
                T* __restrict out) {
  typedef T V __attribute__((vector_size(64), aligned(sizeof(T))));
  constexpr int64_t L = 64 / int64_t(sizeof(T));
  for (int64_t i = 0; i < n; ++i) {
    const T* x = X + i * D;
    // Two chains per sum, so the FMA latency hides behind the loads.
    V sz = {}, sr = {}, tz = {}, tr = {};
    int64_t h = 0;
    for (; h + 2 * L <= D; h += 2 * L) {
      const V xv = *reinterpret_cast<const V*>(x + h);
      const V xw = *reinterpret_cast<const V*>(x + h + L);
      sz += xv * *reinterpret_cast<const V*>(wb + h);
      sr += xv * *reinterpret_cast<const V*>(vc + h);
      tz += xw * *reinterpret_cast<const V*>(wb + h + L);
      tr += xw * *reinterpret_cast<const V*>(vc + h + L);
    }
    for (; h + L <= D; h += L) {
      const V xv = *reinterpret_cast<const V*>(x + h);
      sz += xv * *reinterpret_cast<const V*>(wb + h);
      sr += xv * *reinterpret_cast<const V*>(vc + h);
    }
    sz += tz;
    sr += tr;
    T z = wb[D], r = vc[D];
    for (int64_t l = 0; l < L; ++l) {
      z += sz[l];
      r += sr[l];
    }
    for (; h < D; ++h) {
      z += x[h] * wb[h];
      r += x[h] * vc[h];
    }
    r *= sigmoid_curvature(P ? P[i] : sigmoid(z));
    h = 0;
    const V rv = V{} + r;
    for (; h + L <= D; h += L)
      *reinterpret_cast<V*>(out + h) += rv * *reinterpret_cast<const V*>(x + h);
    for (; h < D; ++h) out[h] += r * x[h];
    out[D] += r;
  }
}

}  // namespace body

// The entry points: each template above compiled for AVX-512, AVX2 and baseline
// x86-64 per element type (common/multiversion.h).
#define SGD_CLONES(T)                                                                           \
  [[maybe_unused]] SGD_MULTIVERSION static void narrow_times_t(const T* __restrict A,           \
      int64_t lda, int64_t n, const T* __restrict W, int64_t ldw, int64_t C, int64_t H,         \
      T beta, T* __restrict Z, int64_t ldz) {                                                   \
    body::narrow_times_t<T>(A, lda, n, W, ldw, C, H, beta, Z, ldz);                             \
  }                                                                                             \
  [[maybe_unused]] SGD_MULTIVERSION static void logistic_binary_hvp_rows(                       \
      const T* __restrict X, int64_t n, int64_t D, const T* __restrict wb,                      \
      const T* __restrict P, const T* __restrict vc, T* __restrict out) {                       \
    body::logistic_binary_hvp_rows<T>(X, n, D, wb, P, vc, out);                                 \
  }
SGD_CLONES(float)
SGD_CLONES(double)
#undef SGD_CLONES

}  // namespace sgdcore::cpu
