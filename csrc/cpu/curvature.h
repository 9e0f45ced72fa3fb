// Curvature of the summed cross-entropy: exact Hessian-vector products (Pearlmutter's
// R-operator for the MLP, cross-layer term included), Gauss-Newton-vector products, the
// forward state both need, and the closed-form dense Hessian of logistic regression.
// Each works over chunks of examples, so memory stays bounded for any N.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#ifdef SGDCORE_OPENMP
#include <omp.h>
#endif

#include "common/blas.h"
#include "common/checks.h"
#include "common/curvature_formulas.h"
#include "cpu/elementwise.h"
#include "cpu/first_layer.h"
#include "cpu/forward_backward.h"
#include "cpu/memory.h"
#include "cpu/parallel.h"
#include "cpu/sparse_inputs.h"

namespace sgdcore::cpu::curv {


// Rows per chunk. Logistic models: a block of X of about 512 KiB, so that the two
// products with the same rows (X v, then X^T u) find it in the L2 cache. MLP: a
// [rows, H] scratch of about 2 Mi elements.
template <class T> int64_t rows_per_chunk(const Model& m, int64_t n) {
  int64_t rows;
  if (m.kind == Kind::MLP)
    rows = std::max<int64_t>(64, (int64_t(1) << 21) / std::max<int64_t>(m.H, 1));
  else
    rows = std::max<int64_t>(16, (int64_t(512) << 10) / (int64_t(sizeof(T)) * m.D));
  return std::max<int64_t>(1, std::min<int64_t>(n, rows));
}

// Output-layer probabilities of a chunk from its logits Z[n, K], in place
// (sigmoid for the binary model, row-wise softmax otherwise).
template <class T> void probabilities(const Model& m, T* Z, int64_t n) {
  const int64_t K = m.K();
  if (K == 1) {
    for (int64_t i = 0; i < n; ++i) Z[i] = sigmoid(Z[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) softmax_xent(Z + i * K, K, 0, Z + i * K);
}

// R[n, K] <- d2CE/dz2 R, row by row, from the probabilities Pm[n, K].
template <class T> void output_curvature(const Model& m, const T* Pm, T* R, int64_t n) {
  const int64_t K = m.K();
  if (K == 1) {
    for (int64_t i = 0; i < n; ++i) R[i] *= sigmoid_curvature(Pm[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) softmax_curvature_vp(Pm + i * K, R + i * K, K, R + i * K);
}

// State of the forward pass over all N examples: A[N, H] = relu(X W1^T + b1) (MLP only)
// and Pm[N, K], the output probabilities; the first layer through `first` (first_layer.h).
template <class T, class FL>
void forward_state_with(FL& first, const Model& m, const T* theta, const T* X, int64_t N, T* A,
                        T* Pm) {
  const int64_t rows = rows_per_chunk<T>(m, N), K = m.K(), H = m.H;
  first.weights(theta);
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    first.load(X, s, n);
    first.forward(theta, A ? A + s * H : nullptr, Pm + s * K);
    probabilities(m, Pm + s * K, n);
  }
}

// sparse: the MLP's first layer on X's non-zeros (SparseFirstLayer).
template <class T>
void forward_state(const Model& m, const T* theta, const T* X, int64_t N, T* A, T* Pm,
                   bool sparse) {
  with_first_layer<T>(m, sparse, [&](auto& first) {
    forward_state_with<T>(first, m, theta, X, N, A, Pm);
  });
}

// Logistic regression over rows [s0, s1): Out[k, P] += X~^T (H_out (X~ v_j)) for each
// direction, from each block of `rows` rows while it is cached (the block is read from
// memory once; the products with it come from cache).
template <class T>
void logistic_products_range(const Model& m, const T* theta, const T* X, int64_t s0,
                             int64_t s1, const T* Vt, int64_t k, T* Out, const T* stPm,
                             int64_t rows) {
  const int64_t P = m.n_params(), D = m.D, K = m.K();
  std::vector<T> Pbuf(stPm ? 0 : rows * K), R(rows * (K == 1 ? k : K));
  if (K == 1 && k == 1) {  // one pass over the rows, each read once
    logistic_binary_hvp_rows(X + s0 * D, s1 - s0, D, theta, stPm ? stPm + s0 : nullptr, Vt, Out);
    return;
  }
  for (int64_t s = s0; s < s1; s += rows) {
    const int64_t n = std::min(rows, s1 - s);
    const T* Xc = X + s * D;
    const T* Pm;
    if (stPm) {
      Pm = stPm + s * K;
    } else {
      forward(m, theta, Xc, n, static_cast<T*>(nullptr), Pbuf.data());
      probabilities(m, Pbuf.data(), n);
      Pm = Pbuf.data();
    }
    if (K == 1) {
      // Binary: the k directions are rows of Vt with stride P, so one product each way.
      T* Rz = R.data();  // [n, k]
      if (k == 1) {
        blas::gemv<T>(false, n, D, T(1), Xc, D, Vt, T(0), Rz);
        for (int64_t i = 0; i < n; ++i) Rz[i] = (Rz[i] + Vt[D]) * sigmoid_curvature(Pm[i]);
        blas::gemv<T>(true, n, D, T(1), Xc, D, Rz, T(1), Out);
        T sb = T(0);
        for (int64_t i = 0; i < n; ++i) sb += Rz[i];
        Out[D] += sb;
      } else {
        blas::gemm<T>(false, true, n, k, D, T(1), Xc, D, Vt, P, T(0), Rz, k);
        for (int64_t i = 0; i < n; ++i) {
          const T w = sigmoid_curvature(Pm[i]);
          for (int64_t j = 0; j < k; ++j) Rz[i * k + j] = (Rz[i * k + j] + Vt[j * P + D]) * w;
        }
        blas::gemm<T>(true, false, k, D, n, T(1), Rz, k, Xc, D, T(1), Out, P);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < k; ++j) Out[j * P + D] += Rz[i * k + j];
      }
      continue;
    }
    // Softmax: one pair of GEMMs per direction on the cached block.
    for (int64_t j = 0; j < k; ++j) {
      const T* V = Vt + j * P;
      T* O = Out + j * P;
      T* Rz = R.data();  // [n, K]
      blas::gemm<T>(false, true, n, K, D, T(1), Xc, D, V, D, T(0), Rz, K);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < K; ++c) Rz[i * K + c] += V[m.off_b1() + c];
      output_curvature(m, Pm, Rz, n);
      blas::gemm<T>(true, false, K, D, n, T(1), Rz, K, Xc, D, T(1), O, D);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < K; ++c) O[m.off_b1() + c] += Rz[i * K + c];
    }
  }
}

// Logistic products over all N rows (Out zeroed first). With OpenMP and enough rows the
// row range is split between threads, each with a private accumulator; their blocks are
// then small enough (under 2304 x 4 entries) that each BLAS call runs on its thread alone.
template <class T>
void logistic_products(const Model& m, const T* theta, const T* X, int64_t N, const T* Vt,
                       int64_t k, T* Out, const T* stPm) {
  const int64_t P = m.n_params();
  std::fill(Out, Out + k * P, T(0));
  int threads = 1;
#ifdef SGDCORE_OPENMP
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), N / 2048)));
#endif
  if (threads == 1) {
    logistic_products_range(m, theta, X, 0, N, Vt, k, Out, stPm, rows_per_chunk<T>(m, N));
    return;
  }
  const int64_t rows = std::max<int64_t>(1, 9215 / m.D);
  std::vector<T> acc(static_cast<size_t>(threads - 1) * k * P, T(0));
#ifdef SGDCORE_OPENMP
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    T* my = tid == 0 ? Out : acc.data() + static_cast<size_t>(tid - 1) * k * P;
    logistic_products_range(m, theta, X, N * tid / threads, N * (tid + 1) / threads, Vt, k, my,
                            stPm, rows);
  }
#endif
  for (int th = 1; th < threads; ++th) {
    const T* a = acc.data() + static_cast<size_t>(th - 1) * k * P;
    for (int64_t q = 0; q < k * P; ++q) Out[q] += a[q];
  }
}

// The MLP's products (see curvature_products), the first layer through `first`
// (first_layer.h). Forward: a = W1 x + b1, h = relu(a), z = W2 h + b2, p = softmax(z),
// delta = p - e_y. R-pass along v = (V1, c1, V2, c2):
//   R(a) = V1 x + c1, R(h) = relu'(a) R(a), R(z) = W2 R(h) + V2 h + c2,
//   R(delta) = H_out R(z),
//   R(dW2) = R(delta) h^T [+ delta R(h)^T], R(db2) = R(delta),
//   R(dh) = W2^T R(delta) [+ V2^T delta], R(da) = relu'(a) R(dh),
//   R(dW1) = R(da) x^T, R(db1) = R(da).
// The bracketed cross terms are what the exact Hessian has and the GGN drops. The
// products with X are the first layer's (the forward's, R(a)'s and R(dW1)'s); the others
// run on FL's slices of rows or columns (FL::by_rows).
template <class T, class FL>
void mlp_products(FL& first, const Model& m, const T* theta, const int64_t* y, const T* X,
                  int64_t N, const T* Vt, int64_t k, T* Out, bool exact, const T* stA,
                  const T* stPm) {
  const int64_t P = m.n_params(), H = m.H, C = m.C;
  const int64_t rows = rows_per_chunk<T>(m, N);
  const bool have_state = stPm != nullptr;
  const T* W2 = theta + m.off_W2();
  if (!have_state) first.weights(theta);
  first.directions(Vt, k);
  AlignedArray<T> own_A, own_R;
  T* Abuf = have_state ? nullptr : reused_scratch<T>(3, rows * H, own_A);
  std::vector<T> Zbuf(have_state ? 0 : rows * C);
  // Ra's rows padded to whole vectors, 64-byte aligned (the sparse kernels read them).
  const int64_t lr = padded<T>(H);
  std::vector<T> Delta(exact ? rows * C : 0), Rz(rows * C);
  T* Ra = reused_scratch<T>(4, rows * lr, own_R);
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    first.load(X, s, n);
    const T *A, *Pm;
    if (have_state) {
      A = stA + s * H;
      Pm = stPm + s * C;
    } else {
      first.forward(theta, Abuf, Zbuf.data());
      probabilities(m, Zbuf.data(), n);
      A = Abuf;
      Pm = Zbuf.data();
    }
    if (exact) {
      std::copy(Pm, Pm + n * C, Delta.begin());
      for (int64_t i = 0; i < n; ++i) Delta[i * C + y[s + i]] -= T(1);
    }
    for (int64_t j = 0; j < k; ++j) {
      const T* V = Vt + j * P;
      T* O = Out + j * P;
      const T *c1 = V + m.off_b1(), *V2 = V + m.off_W2(), *c2 = V + m.off_b2();
      // R(h) = relu'(a) (V1 x + c1); relu'(a) = [h > 0].
      first.direction_times(j, Ra, lr);
      // R(z) = R(h) W2^T + h V2^T + c2, then R(delta) = H_out R(z).
      first.by_rows(n, [&](int64_t r0, int64_t r1) {
        const int64_t nr = r1 - r0;
        T* ra = Ra + r0 * lr;
        T* rz = Rz.data() + r0 * C;
        relu_mask_add(ra, lr, H, c1, A + r0 * H, H, nr);
        narrow_times_t(ra, lr, nr, W2, H, C, H, T(0), rz, C);
        narrow_times_t(A + r0 * H, H, nr, V2, H, C, H, T(1), rz, C);
        for (int64_t i = 0; i < nr; ++i)
          for (int64_t c = 0; c < C; ++c) rz[i * C + c] += c2[c];
        output_curvature(m, Pm + r0 * C, rz, nr);
      });
      // Output layer (sums over rows: slices of W2's columns).
      first.by_rows(H, [&](int64_t h0, int64_t h1) {
        blas::gemm<T>(true, false, C, h1 - h0, n, T(1), Rz.data(), C, A + h0, H, T(1),
                      O + m.off_W2() + h0, H);
        if (exact)
          blas::gemm<T>(true, false, C, h1 - h0, n, T(1), Delta.data(), C, Ra + h0, lr,
                        T(1), O + m.off_W2() + h0, H);
      });
      colsum(Rz.data(), n, C, T(1), O + m.off_b2());
      // Hidden layer: R(da) = relu'(a) (R(delta) W2 [+ delta V2]), reusing Ra's storage.
      first.by_rows(n, [&](int64_t r0, int64_t r1) {
        const int64_t nr = r1 - r0;
        T* ra = Ra + r0 * lr;
        blas::gemm<T>(false, false, nr, H, C, T(1), Rz.data() + r0 * C, C, W2, H, T(0), ra, lr);
        if (exact)
          blas::gemm<T>(false, false, nr, H, C, T(1), Delta.data() + r0 * C, C, V2, H, T(1), ra,
                        lr);
        relu_mask(ra, lr, H, A + r0 * H, H, nr);
      });
      first.add_direction_grad(j, Ra, lr, O);
      first.by_rows(H, [&](int64_t h0, int64_t h1) {
        T* g = O + m.off_b1();
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = h0; h < h1; ++h) g[h] += Ra[i * lr + h];
      });
    }
  }
  first.finish(Out, k);
}

// Out[k, P] = sum_i G_i Vt[j]^T for each of the k directions (rows of Vt[k, P]), where G_i
// is the Hessian of CE_i (exact = true) or its Gauss-Newton part J_i^T H_out J_i.
// stA / stPm: the forward state of all N examples (forward_state), or nullptr to
// recompute it chunk by chunk. sparse: the MLP's first layer on X's non-zeros
// (SparseFirstLayer).
template <class T>
void curvature_products(const Model& m, const T* theta, const T* X, const int64_t* y,
                        int64_t N, const T* Vt, int64_t k, T* Out, bool exact, const T* stA,
                        const T* stPm, bool sparse) {
  std::fill(Out, Out + k * m.n_params(), T(0));
  if (m.kind != Kind::MLP)
    logistic_products(m, theta, X, N, Vt, k, Out, stPm);
  else
    with_first_layer<T>(m, sparse, [&](auto& first) {
      mlp_products<T>(first, m, theta, y, X, N, Vt, k, Out, exact, stA, stPm);
    });
}

// Out[P, P] = sum_i J_i^T H_out,i J_i for logistic regression (= the Hessian of the summed
// cross-entropy), in closed form: for each pair of outputs (c, c') the block
// X~^T diag(w_cc') X~ with X~ = [X, 1], w_cc' = p_c ([c = c'] - p_c'). Diagonal blocks
// by SYRK on sqrt(w)-scaled rows, off-diagonal blocks by GEMM.
template <class T>
void logistic_hessian(const Model& m, const T* theta, const T* X, int64_t N, T* Out) {
  const int64_t D = m.D, K = m.K(), P = m.n_params(), Dt = D + 1;
  std::fill(Out, Out + P * P, T(0));
  const int64_t rows = std::max<int64_t>(
      1, std::min<int64_t>(N, std::max<int64_t>(64, (int64_t(1) << 21) / Dt)));
  std::vector<T> Pm(rows * K), Xt(rows * Dt), Xw(K > 1 ? rows * Dt : 0);
  std::vector<T> G(K > 1 ? Dt * Dt : 0);
  // Index of parameter (c, d) with d == D the bias.
  auto index = [&](int64_t c, int64_t d) { return d < D ? c * D + d : K * D + c; };
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    const T* Xc = X + s * D;
    forward(m, theta, Xc, n, static_cast<T*>(nullptr), Pm.data());
    probabilities(m, Pm.data(), n);
    for (int64_t c = 0; c < K; ++c) {
      for (int64_t c2 = c; c2 < K; ++c2) {
        // Weighted copy of [X, 1] for this pair.
        if (c == c2) {
          for (int64_t i = 0; i < n; ++i) {
            const T p = Pm[i * K + c];
            const T w = std::sqrt(K == 1 ? sigmoid_curvature(p) : p * (T(1) - p));
            T* row = Xt.data() + i * Dt;
            const T* x = Xc + i * D;
            for (int64_t d = 0; d < D; ++d) row[d] = w * x[d];
            row[D] = w;
          }
          if (K == 1) {
            // Binary: [w, b] is exactly the layout of X~, so SYRK writes Out directly.
            blas::syrk_ata<T>(Dt, n, T(1), Xt.data(), Dt, T(1), Out, P);
            continue;
          }
          blas::syrk_ata<T>(Dt, n, T(1), Xt.data(), Dt, T(0), G.data(), Dt);
          for (int64_t a = 0; a < Dt; ++a)
            for (int64_t b = a; b < Dt; ++b) {
              const T g = G[a * Dt + b];
              Out[index(c, a) * P + index(c, b)] += g;
              if (a != b) Out[index(c, b) * P + index(c, a)] += g;
            }
          continue;
        }
        for (int64_t i = 0; i < n; ++i) {
          const T w = -Pm[i * K + c] * Pm[i * K + c2];
          T* row = Xw.data() + i * Dt;
          T* plain = Xt.data() + i * Dt;
          const T* x = Xc + i * D;
          for (int64_t d = 0; d < D; ++d) {
            plain[d] = x[d];
            row[d] = w * x[d];
          }
          plain[D] = T(1);
          row[D] = w;
        }
        blas::gemm<T>(true, false, Dt, Dt, n, T(1), Xt.data(), Dt, Xw.data(), Dt, T(0), G.data(),
                      Dt);
        for (int64_t a = 0; a < Dt; ++a)
          for (int64_t b = 0; b < Dt; ++b) {
            const T g = G[a * Dt + b];
            Out[index(c, a) * P + index(c2, b)] += g;
            Out[index(c2, b) * P + index(c, a)] += g;
          }
      }
    }
  }
  if (K == 1)  // mirror SYRK's upper triangle
    for (int64_t a = 0; a < P; ++a)
      for (int64_t b = a + 1; b < P; ++b) Out[b * P + a] = Out[a * P + b];
}

// ---------------------------------------------------------------- compiled boundary

// Whether the bytes of two arrays overlap.
inline bool overlaps(const py::array& a, const py::array& b) {
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a.nbytes() && b.nbytes() && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// Checked pointers to the optional forward state (A [N, H] for the MLP, Pm [N, K]).
template <class T>
void checked_state(const Model& m, int64_t N, const py::object& A, const py::object& Pm,
                   const T** sa, const T** sp, std::vector<py::array>& keep) {
  *sa = nullptr;
  *sp = nullptr;
  if (Pm.is_none()) {
    SGD_CHECK(A.is_none(), "state_A was given without state_P");
    return;
  }
  keep.push_back(Pm.cast<py::array>());
  *sp = sgdcore::checked<T>(keep.back(), "state_P", {N, m.K()});
  if (m.kind == Kind::MLP) {
    SGD_CHECK(!A.is_none(), "the MLP's forward state needs state_A as well as state_P");
    keep.push_back(A.cast<py::array>());
    *sa = sgdcore::checked<T>(keep.back(), "state_A", {N, m.H});
  } else {
    SGD_CHECK(A.is_none(), "logistic models take no state_A");
  }
}

// Checks every argument of hvp / ggn_vp, then runs curvature_products without the GIL
// (sparse: see curvature_products).
template <class T>
void call_products(const Model& m, const py::array& theta, const py::array& X,
                   const py::array& y, const py::array& Vt, const py::array& out,
                   const py::object& A, const py::object& Pm, bool exact, bool sparse) {
  const int64_t P = m.n_params();
  const T* th = sgdcore::checked<T>(theta, "theta", {P});
  const T* x = sgdcore::checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  const T* v = sgdcore::checked<T>(Vt, "V", {-1, P});
  const int64_t k = Vt.shape(0);
  T* o = sgdcore::checked<T>(out, "out", {k, P}, true);
  std::vector<py::array> keep;
  const T *sa, *sp;
  checked_state<T>(m, N, A, Pm, &sa, &sp, keep);
  for (const py::array* a : {&theta, &X, &Vt})
    SGD_CHECK(!overlaps(out, *a), "out must not share memory with theta, X or V");
  for (const py::array& a : keep)
    SGD_CHECK(!overlaps(out, a), "out must not share memory with the forward state");
  py::gil_scoped_release release;
  curvature_products(m, th, x, lab, N, v, k, o, exact, sa, sp, sparse);
}

}  // namespace sgdcore::cpu::curv
