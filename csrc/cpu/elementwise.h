// Element-wise passes over [rows, H] activations, compiled for AVX-512, AVX2 and baseline
// x86-64 (SGD_MULTIVERSION): the ReLU with its bias, and ReLU masks of backward passes.
#pragma once
#include <cstdint>

#include "common/multiversion.h"

namespace sgdcore::cpu {

#define SGD_DEFINE_ELEMENTWISE(T)                                                            \
  /* A[j, r0:r1] = max(A[j, r0:r1] + b[r0:r1], 0) for rows j < rows (NaN stays NaN). */ \
  [[maybe_unused]] SGD_MULTIVERSION static void bias_relu(T* __restrict A, int64_t ld, const T* __restrict b,    \
                                  int64_t rows, int64_t r0, int64_t r1) {                \
    for (int64_t j = 0; j < rows; ++j) {                                                 \
      T* a = A + j * ld;                                                                 \
      for (int64_t h = r0; h < r1; ++h) {                                                \
        const T z = a[h] + b[h];                                                         \
        a[h] = z < T(0) ? T(0) : z;                                                      \
      }                                                                                  \
    }                                                                                    \
  }                                                                                      \
  /* dA[j, :hs] = 0 where A[j, h0 + :hs] <= 0 (dA's rows ldd apart). */                 \
  [[maybe_unused]] SGD_MULTIVERSION static void relu_mask(T* __restrict dA, int64_t ldd, int64_t hs,             \
                                  const T* __restrict A, int64_t ld, int64_t rows) {     \
    for (int64_t j = 0; j < rows; ++j) {                                                 \
      const T* a = A + j * ld;                                                           \
      T* d = dA + j * ldd;                                                               \
      for (int64_t h = 0; h < hs; ++h) d[h] = a[h] > T(0) ? d[h] : T(0);                 \
    }                                                                                    \
  } \
  /* R[j, :n] = A[j, :n] > 0 ? R[j, :n] + c[:n] : 0 (rows ldr and lda apart). */         \
  [[maybe_unused]] SGD_MULTIVERSION static void relu_mask_add(                               \
      T* __restrict R, int64_t ldr, int64_t n, const T* __restrict c, const T* __restrict A, \
      int64_t lda, int64_t rows) {                                                           \
    for (int64_t j = 0; j < rows; ++j) {                                                     \
      const T* a = A + j * lda;                                                              \
      T* r = R + j * ldr;                                                                    \
      for (int64_t h = 0; h < n; ++h) r[h] = a[h] > T(0) ? r[h] + c[h] : T(0);               \
    }                                                                                        \
  }
SGD_DEFINE_ELEMENTWISE(float)
SGD_DEFINE_ELEMENTWISE(double)
#undef SGD_DEFINE_ELEMENTWISE

}  // namespace sgdcore::cpu
