// The training engine's products with a batch (train_run.h): a GEMM, or GEMVs when the
// batch has only a few rows.
#pragma once
#include <cstdint>

#include "common/blas.h"

namespace sgdcore::cpu::sgd {

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

}  // namespace sgdcore::cpu::sgd
