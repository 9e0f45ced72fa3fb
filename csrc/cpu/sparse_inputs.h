// Inputs with many zeros (MNIST-like pixels: about 80% of them are 0) in the training
// engine's first layer. With W1 held transposed, [D, H], a row of inputs touches only
// the rows of W1 under its non-zero pixels:
//   forward   a_i = b1 + sum_{p : x_ip != 0} x_ip W1T[p, :]
//   gradient  G[p, :] = sum_{i : x_ip != 0} x_ip dA[i, :]     (only pixels in the batch)
// so the layer costs nnz * H multiply-adds instead of B * D * H. A row of W1 no batch
// touches is not read either: it only decays under momentum and l2, which is a fixed
// 2x2 linear map of (velocity, weight) per step, applied in closed form when the row is
// next needed (see RowPowers).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/multiversion.h"
#include "cpu/memory.h"
#include "cpu/parallel.h"

namespace sgdcore::cpu {

// Compressed rows of a dense [n, D] matrix: row i's non-zeros are col/val[ptr[i]:ptr[i+1]].
template <class T>
struct Csr {
  std::vector<int64_t> ptr;
  std::vector<int32_t> col;
  std::vector<T> val;
  int64_t max_row = 0;  // most non-zeros in one row

  // Rows [first, first + n) of X (keeps its storage between calls). Branch-free: every
  // entry is written and the position advances past the non-zeros only (zeros are
  // unpredictable, a branch on them costs more than the store).
  void build(const T* X, int64_t first, int64_t n, int64_t D) {
    ptr.resize(n + 1);
    ptr[0] = 0;
    max_row = 0;
    int64_t q = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (int64_t(col.size()) < q + D) {
        col.resize(std::max<int64_t>(2 * int64_t(col.size()), q + D));
        val.resize(col.size());
      }
      const T* x = X + (first + i) * D;
      int32_t* c = col.data();
      T* v = val.data();
      for (int64_t d = 0; d < D; ++d) {
        c[q] = int32_t(d);
        v[q] = x[d];
        q += x[d] != T(0);
      }
      ptr[i + 1] = q;
      max_row = std::max(max_row, ptr[i + 1] - ptr[i]);
    }
  }
};

// The batch's inputs by pixel: the pixels any batch row uses (`pixels`) and, for pixel
// pixels[q], the batch positions and values at entries [start[q], start[q + 1]).
template <class T>
struct BatchColumns {
  std::vector<int32_t> count, pixels, row;
  std::vector<int64_t> start, fill;
  std::vector<T> val;

  void reserve(int64_t D, int64_t max_nnz) {
    count.assign(D, 0);
    fill.assign(D, 0);
    pixels.reserve(D);
    start.reserve(D + 1);
    row.resize(max_nnz);
    val.resize(max_nnz);
  }

  // Counting sort of the batch rows' non-zeros by pixel; pixels in increasing order. The
  // batch is rows idx[0:B] of X, or its first B rows when idx is null.
  void build(const Csr<T>& X, const int64_t* idx, int64_t B) {
    const int64_t D = int64_t(count.size());
    for (int64_t j = 0; j < B; ++j) {
      const int64_t r = idx ? idx[j] : j;
      for (int64_t q = X.ptr[r]; q < X.ptr[r + 1]; ++q) ++count[X.col[q]];
    }
    pixels.clear();
    start.clear();
    int64_t s = 0;
    for (int64_t d = 0; d < D; ++d)
      if (count[d] != 0) {
        pixels.push_back(int32_t(d));
        start.push_back(s);
        fill[d] = s;
        s += count[d];
        count[d] = 0;
      }
    start.push_back(s);
    for (int64_t j = 0; j < B; ++j) {
      const int64_t r = idx ? idx[j] : j;
      for (int64_t q = X.ptr[r]; q < X.ptr[r + 1]; ++q) {
        const int64_t at = fill[X.col[q]]++;
        row[at] = int32_t(j);
        val[at] = X.val[q];
      }
    }
  }
};

// Powers of the idle-step map of one model's W1 rows. A row with no gradient evolves as
//   v' = u,  w' = w + v',  u' = m v' - c w'     (u = m v - c w is what the engine keeps)
// i.e. (u, w)' = [[m - c, -c], [1, 1]] (u, w); at(j) is that matrix to the power j, in
// double, extended on demand.
class RowPowers {
 public:
  void reset(double m, double c) {
    m_ = m;
    c_ = c;
    pw_.assign({1.0, 0.0, 0.0, 1.0});
  }
  const double* at(int64_t j) {
    while (int64_t(pw_.size()) / 4 <= j) {
      const double* p = pw_.data() + pw_.size() - 4;
      const double a = (m_ - c_) * p[0] - c_ * p[2], b = (m_ - c_) * p[1] - c_ * p[3];
      const double d = p[0] + p[2], e = p[1] + p[3];
      pw_.insert(pw_.end(), {a, b, d, e});
    }
    return pw_.data() + 4 * j;
  }

 private:
  double m_ = 0.0, c_ = 0.0;
  std::vector<double> pw_;
};

namespace body {

// a[0:n] = sum_q val[q] W[col[q] * ldw + 0:n] over q < nnz: blocks of 8, then 2, then 1
// vectors of sums held in registers over all q, then scalars.
template <class T>
SGD_INLINE void sparse_rows_dot(T* __restrict a, const T* __restrict W, int64_t ldw,
                const int32_t* __restrict col, const T* __restrict val, int64_t nnz, int64_t n) {
  typedef T V __attribute__((vector_size(64), aligned(sizeof(T))));
  constexpr int64_t L = 64 / int64_t(sizeof(T));
  int64_t h = 0;
  for (; h + 8 * L <= n; h += 8 * L) {
    V s0 = {}, s1 = {}, s2 = {}, s3 = {}, s4 = {}, s5 = {}, s6 = {}, s7 = {};
    for (int64_t q = 0; q < nnz; ++q) {
      const T x = val[q];
      const V* w = reinterpret_cast<const V*>(W + int64_t(col[q]) * ldw + h);
      s0 += x * w[0];
      s1 += x * w[1];
      s2 += x * w[2];
      s3 += x * w[3];
      s4 += x * w[4];
      s5 += x * w[5];
      s6 += x * w[6];
      s7 += x * w[7];
    }
    V* av = reinterpret_cast<V*>(a + h);
    av[0] = s0;
    av[1] = s1;
    av[2] = s2;
    av[3] = s3;
    av[4] = s4;
    av[5] = s5;
    av[6] = s6;
    av[7] = s7;
  }
  for (; h + 2 * L <= n; h += 2 * L) {
    V s0 = {}, s1 = {};
    for (int64_t q = 0; q < nnz; ++q) {
      const T x = val[q];
      const V* w = reinterpret_cast<const V*>(W + int64_t(col[q]) * ldw + h);
      s0 += x * w[0];
      s1 += x * w[1];
    }
    V* av = reinterpret_cast<V*>(a + h);
    av[0] = s0;
    av[1] = s1;
  }
  for (; h + L <= n; h += L) {
    V s = {};
    for (int64_t q = 0; q < nnz; ++q)
      s += val[q] * *reinterpret_cast<const V*>(W + int64_t(col[q]) * ldw + h);
    *reinterpret_cast<V*>(a + h) = s;
  }
  for (; h < n; ++h) {
    T s = T(0);
    for (int64_t q = 0; q < nnz; ++q) s += val[q] * W[int64_t(col[q]) * ldw + h];
    a[h] = s;
  }
}

// (u, w)[0:n] <- P (u, w) with P = [[p0, p1], [p2, p3]].
template <class T>
SGD_INLINE void rows_catch_up(T* __restrict w, T* __restrict u, int64_t n, T p0, T p1, T p2, T p3) {
  for (int64_t h = 0; h < n; ++h) {
    const T uh = u[h], wh = w[h];
    u[h] = p0 * uh + p1 * wh;
    w[h] = p2 * uh + p3 * wh;
  }
}
// One step of a row block with gradient g: v = u - a g; w += v; u = m v - c w (not on
// the last step).
template <class T>
SGD_INLINE void rows_step(T* __restrict w, T* __restrict u, const T* __restrict g, int64_t n,
                T a, T mom, T c, bool last) {
  if (last) {
    for (int64_t h = 0; h < n; ++h) w[h] += u[h] - a * g[h];
    return;
  }
  for (int64_t h = 0; h < n; ++h) {
    const T v = u[h] - a * g[h];
    const T wh = w[h] + v;
    w[h] = wh;
    u[h] = mom * v - c * wh;
  }
}

}  // namespace body

// The entry points: each template above compiled for AVX-512, AVX2 and baseline
// x86-64 per element type (common/multiversion.h).
#define SGD_CLONES(T)                                                                           \
  [[maybe_unused]] SGD_MULTIVERSION static void sparse_rows_dot(T* __restrict a,                \
      const T* __restrict W, int64_t ldw, const int32_t* __restrict col,                        \
      const T* __restrict val, int64_t nnz, int64_t n) {                                        \
    body::sparse_rows_dot<T>(a, W, ldw, col, val, nnz, n);                                      \
  }                                                                                             \
  [[maybe_unused]] SGD_MULTIVERSION static void rows_catch_up(T* __restrict w,                  \
      T* __restrict u, int64_t n, T p0, T p1, T p2, T p3) {                                     \
    body::rows_catch_up<T>(w, u, n, p0, p1, p2, p3);                                            \
  }                                                                                             \
  [[maybe_unused]] SGD_MULTIVERSION static void rows_step(T* __restrict w, T* __restrict u,     \
      const T* __restrict g, int64_t n, T a, T mom, T c, bool last) {                           \
    body::rows_step<T>(w, u, g, n, a, mom, c, last);                                            \
  }
SGD_CLONES(float)
SGD_CLONES(double)
#undef SGD_CLONES

// Columns per block of a [rows, H] operand streamed row by row: a block of `rows` rows
// stays within about 384 KiB (L2), in multiples of 8 vectors of 64 bytes (the register
// block of sparse_rows_axpy).
template <class T>
int64_t column_block(int64_t rows) {
  const int64_t unit = 512 / int64_t(sizeof(T));
  return std::max<int64_t>(unit, (int64_t(384) << 10) / (rows * int64_t(sizeof(T))) / unit * unit);
}

// Rows of a sparse matrix times W: A[i, h0:h1] = X[r_i, :] W[:, h0:h1] for i < n, with
// r_i = rows[i] (or first + i without rows) and W [D, ldw]; in column blocks that keep
// W's block in L2.
template <class T>
void sparse_forward(const Csr<T>& X, const int64_t* rows, int64_t first, int64_t n,
                    const T* W, int64_t ldw, int64_t h0, int64_t h1, T* A, int64_t lda,
                    int64_t D) {
  const int64_t bw = column_block<T>(D);
  for (int64_t c0 = h0; c0 < h1; c0 += bw) {
    const int64_t c1 = std::min(h1, c0 + bw);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = rows ? rows[i] : first + i;
      const int64_t q0 = X.ptr[r];
      sparse_rows_dot(A + i * lda + c0, W + c0, ldw, X.col.data() + q0, X.val.data() + q0,
                      X.ptr[r + 1] - q0, c1 - c0);
    }
  }
}

// The first layer's products with a chunk of rows of X [N, D], on the chunk's non-zeros,
// for layers held transposed ([D, ld], rows 64-byte aligned):
//   times:               A[n, H] = Xc MT                     (Xc: the chunk's rows)
//   transpose_times_add: GT[p, :] += sum_i Xc[i, p] G[i, :]  (the pixels the chunk uses)
// Work is shared among the OpenMP team: rows, then pixels.
template <class T>
class SparseChunk {
 public:
  void load(const T* X, int64_t first, int64_t n, int64_t D) {
    n_ = n;
    xc_.build(X, first, n, D);
    if (int64_t(cols_.count.size()) != D || int64_t(cols_.row.size()) < xc_.ptr[n])
      cols_.reserve(D, std::max<int64_t>(xc_.ptr[n], int64_t(cols_.row.size())));
    cols_.build(xc_, nullptr, n);
  }

  void times(const T* MT, int64_t ld, int64_t H, T* A, int64_t lda) const {
    const int64_t D = int64_t(cols_.count.size());
    split_rows(n_, [&](int64_t r0, int64_t r1) {
      sparse_forward(xc_, nullptr, r0, r1 - r0, MT, ld, 0, H, A + r0 * lda, lda, D);
    });
  }

  void transpose_times_add(const T* G, int64_t ldg, int64_t H, T* GT, int64_t ld) const {
    const int64_t np = int64_t(cols_.pixels.size()), bw = column_block<T>(n_);
#pragma omp parallel
    {
      AlignedVector<T> g(std::min(H, bw));
      for (int64_t c0 = 0; c0 < H; c0 += bw) {
        const int64_t n = std::min(H, c0 + bw) - c0;
        // Each (pixel, block) is written by one thread: no barrier needed.
#pragma omp for schedule(dynamic, 16) nowait
        for (int64_t q = 0; q < np; ++q) {
          const int64_t s0 = cols_.start[q];
          sparse_rows_dot(g.data(), G + c0, ldg, cols_.row.data() + s0, cols_.val.data() + s0,
                          cols_.start[q + 1] - s0, n);
          T* o = GT + int64_t(cols_.pixels[q]) * ld + c0;
          for (int64_t h = 0; h < n; ++h) o[h] += g[h];
        }
      }
    }
  }

 private:
  int64_t n_ = 0;
  Csr<T> xc_;
  BatchColumns<T> cols_;
};

// MT[d0:d1, :H] = M[:, d0:d1]^T for M [H, D] and MT [D, ld], in tiles.
template <class T>
void transpose_into(const T* M, int64_t H, int64_t D, int64_t d0, int64_t d1, T* MT,
                    int64_t ld) {
  constexpr int64_t tile = 32;
  for (int64_t h0 = 0; h0 < H; h0 += tile)
    for (int64_t e0 = d0; e0 < d1; e0 += tile)
      for (int64_t h = h0; h < std::min(H, h0 + tile); ++h)
        for (int64_t d = e0; d < std::min(d1, e0 + tile); ++d) MT[d * ld + h] = M[h * D + d];
}

// M[:, d0:d1] = MT[d0:d1, :H]^T, the inverse of transpose_into.
template <class T>
void transpose_back(const T* MT, int64_t ld, int64_t H, int64_t D, int64_t d0, int64_t d1,
                    T* M) {
  constexpr int64_t tile = 32;
  for (int64_t e0 = d0; e0 < d1; e0 += tile)
    for (int64_t h0 = 0; h0 < H; h0 += tile)
      for (int64_t d = e0; d < std::min(d1, e0 + tile); ++d)
        for (int64_t h = h0; h < std::min(H, h0 + tile); ++h) M[h * D + d] = MT[d * ld + h];
}

}  // namespace sgdcore::cpu
