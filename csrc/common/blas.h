// GEMM and GEMV in row-major form over SciPy's OpenBLAS. The Fortran symbols come from
// the capsules that scipy.linalg.cython_blas exports (loaded once, at import of the
// extension), so nothing is linked at build time and NumPy, SciPy and sgdcore share one
// BLAS and one thread pool.
#pragma once
#include <climits>
#include <stdexcept>

namespace sgdcore::blas {

using sgemm_t = void (*)(const char*, const char*, const int*, const int*, const int*,
                         const float*, const float*, const int*, const float*, const int*,
                         const float*, float*, const int*);
using dgemm_t = void (*)(const char*, const char*, const int*, const int*, const int*,
                         const double*, const double*, const int*, const double*,
                         const int*, const double*, double*, const int*);
using sgemv_t = void (*)(const char*, const int*, const int*, const float*, const float*,
                         const int*, const float*, const int*, const float*, float*,
                         const int*);
using dgemv_t = void (*)(const char*, const int*, const int*, const double*, const double*,
                         const int*, const double*, const int*, const double*, double*,
                         const int*);
using ssyrk_t = void (*)(const char*, const char*, const int*, const int*, const float*,
                         const float*, const int*, const float*, float*, const int*);
using dsyrk_t = void (*)(const char*, const char*, const int*, const int*, const double*,
                         const double*, const int*, const double*, double*, const int*);

struct Table {
  sgemm_t sgemm = nullptr;
  dgemm_t dgemm = nullptr;
  sgemv_t sgemv = nullptr;
  dgemv_t dgemv = nullptr;
  ssyrk_t ssyrk = nullptr;
  dsyrk_t dsyrk = nullptr;
};

Table& table();
// Resolve the function pointers from scipy.linalg.cython_blas (needs the GIL).
void load();

inline int to_int(long long v) {
  if (v < 0 || v > INT_MAX) throw std::length_error("sgdcore: BLAS dimension exceeds 2^31-1");
  return static_cast<int>(v);
}

// Row-major C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C.
template <class T>
void gemm(bool ta, bool tb, long long M, long long N, long long K, T alpha, const T* A,
          long long lda, const T* B, long long ldb, T beta, T* C, long long ldc) {
  if (M == 0 || N == 0) return;
  // Row-major C is column-major C^T = op(B)^T op(A)^T.
  const char a = tb ? 'T' : 'N', b = ta ? 'T' : 'N';
  const int m = to_int(N), n = to_int(M), k = to_int(K);
  const int la = to_int(ldb), lb = to_int(lda), lc = to_int(ldc);
  if constexpr (sizeof(T) == 4)
    table().sgemm(&a, &b, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
  else
    table().dgemm(&a, &b, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
}

// Row-major y[op rows] = alpha * op(A) x + beta * y, A of shape [M, N].
template <class T>
void gemv(bool ta, long long M, long long N, T alpha, const T* A, long long lda, const T* x,
          T beta, T* y) {
  if (M == 0 || N == 0) return;
  const char t = ta ? 'N' : 'T';
  const int m = to_int(N), n = to_int(M), l = to_int(lda), one = 1;
  if constexpr (sizeof(T) == 4)
    table().sgemv(&t, &m, &n, &alpha, A, &l, x, &one, &beta, y, &one);
  else
    table().dgemv(&t, &m, &n, &alpha, A, &l, x, &one, &beta, y, &one);
}

// Row-major C[N,N] = alpha * A^T A + beta * C for A of shape [K, N] (row-major, leading
// dimension lda). Only the triangle C[i, j] with j >= i (row-major upper) is written;
// the caller mirrors it when it needs the full matrix.
template <class T>
void syrk_ata(long long N, long long K, T alpha, const T* A, long long lda, T beta, T* C,
              long long ldc) {
  if (N == 0) return;
  // Row-major A[K, N] is column-major A^T [N, K]; column-major C = A^T (A^T)^T with
  // trans 'N'. Column-major lower triangle = row-major upper triangle.
  const char uplo = 'L', trans = 'N';
  const int n = to_int(N), k = to_int(K), la = to_int(lda), lc = to_int(ldc);
  if constexpr (sizeof(T) == 4)
    table().ssyrk(&uplo, &trans, &n, &k, &alpha, A, &la, &beta, C, &lc);
  else
    table().dsyrk(&uplo, &trans, &n, &k, &alpha, A, &la, &beta, C, &lc);
}

}  // namespace sgdcore::blas
