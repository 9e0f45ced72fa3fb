// Element-wise passes over [rows, H] activations, compiled for AVX-512, AVX2 and baseline
// x86-64 (SGD_MULTIVERSION): the ReLU with its bias, and ReLU masks of backward passes.
#pragma once
#include <cstdint>

#include "common/multiversion.h"

namespace sgdcore::cpu {

namespace body {

// A[j, r0:r1] = max(A[j, r0:r1] + b[r0:r1], 0) for rows j < rows (NaN stays NaN).
template <class T>
SGD_INLINE void bias_relu(T* __restrict A, int64_t ld, const T* __restrict b, int64_t rows,
                int64_t r0, int64_t r1) {
  for (int64_t j = 0; j < rows; ++j) {
    T* a = A + j * ld;
    for (int64_t h = r0; h < r1; ++h) {
      const T z = a[h] + b[h];
      a[h] = z < T(0) ? T(0) : z;
    }
  }
}

// dA[j, :hs] = 0 where A[j, h0 + :hs] <= 0 (dA's rows ldd apart).
template <class T>
SGD_INLINE void relu_mask(T* __restrict dA, int64_t ldd, int64_t hs, const T* __restrict A,
                int64_t ld, int64_t rows) {
  for (int64_t j = 0; j < rows; ++j) {
    const T* a = A + j * ld;
    T* d = dA + j * ldd;
    for (int64_t h = 0; h < hs; ++h) d[h] = a[h] > T(0) ? d[h] : T(0);
  }
}

// R[j, :n] = A[j, :n] > 0 ? R[j, :n] + c[:n] : 0 (rows ldr and lda apart).
template <class T>
SGD_INLINE void relu_mask_add(T* __restrict R, int64_t ldr, int64_t n, const T* __restrict c,
                const T* __restrict A, int64_t lda, int64_t rows) {
  for (int64_t j = 0; j < rows; ++j) {
    const T* a = A + j * lda;
    T* r = R + j * ldr;
    for (int64_t h = 0; h < n; ++h) r[h] = a[h] > T(0) ? r[h] + c[h] : T(0);
  }
}

}  // namespace body

// The entry points: each template above compiled for AVX-512, AVX2 and baseline
// x86-64 per element type (common/multiversion.h).
#define SGD_CLONES(T)                                                                           \
  [[maybe_unused]] SGD_MULTIVERSION static void bias_relu(T* __restrict A, int64_t ld,          \
      const T* __restrict b, int64_t rows, int64_t r0, int64_t r1) {                            \
    body::bias_relu<T>(A, ld, b, rows, r0, r1);                                                 \
  }                                                                                             \
  [[maybe_unused]] SGD_MULTIVERSION static void relu_mask(T* __restrict dA, int64_t ldd,        \
      int64_t hs, const T* __restrict A, int64_t ld, int64_t rows) {                            \
    body::relu_mask<T>(dA, ldd, hs, A, ld, rows);                                               \
  }                                                                                             \
  [[maybe_unused]] SGD_MULTIVERSION static void relu_mask_add(T* __restrict R, int64_t ldr,     \
      int64_t n, const T* __restrict c, const T* __restrict A, int64_t lda, int64_t rows) {     \
    body::relu_mask_add<T>(R, ldr, n, c, A, lda, rows);                                         \
  }
SGD_CLONES(float)
SGD_CLONES(double)
#undef SGD_CLONES

}  // namespace sgdcore::cpu
