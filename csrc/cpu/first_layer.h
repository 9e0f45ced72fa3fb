// The MLP's first layer, the one product with the inputs X [N, D], in two implementations
// with the same members, so that loss_and_grad and the curvature kernels are written once
// against either, and the choice is made once per call (with_first_layer):
//   DenseFirstLayer   GEMMs with X's rows and W1 [H, D] in place (threaded BLAS); it also
//                     serves the logistic models, whose one layer is their product with X.
//   SparseFirstLayer  X's non-zeros (cpu/sparse_inputs.h), W1 and the directions' blocks
//                     held transposed, [D, ld]; the work shared among the OpenMP team
//                     (the caller keeps BLAS on one thread). MLP only.
// Members, for one call over chunks of rows:
//   weights(theta)           W1 as the forward reads it
//   directions(Vt, k)        the W1 blocks of k directions Vt[k, P]; their products zeroed
//                            (sparse, Vt null: the zeroed output blocks only)
//   load(X, s, n)            rows [s, s + n) as the chunk
//   forward(theta, A, Z)     A[n, H] = relu(Xc W1^T + b1), Z[n, K] logits of the chunk
//   by_rows(w, f)            f(r0, r1) over [0, w): whole (dense) or a slice per thread
//   hidden_ld()              row stride of the [n, H] operands the layer reads (G below)
//   add_grad(G, lg, g, beta) W1's gradient block = beta * block + G^T Xc, G [n, H] (rows lg
//                            apart; logistic: the residual [n, K]); beta 0 on a call's first
//                            chunk. The sparse layer holds the block transposed until
//   finish_grad(g)           writes it into the gradient g[P]
//   direction_times(j, R, lr)        R[n, H] (rows lr apart) = Xc V1_j^T
//   add_direction_grad(j, G, lg, O)  O's W1 block (direction j's output) += G^T Xc
//   finish(Out, k)           the directions' W1 blocks into Out[k, P]
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/blas.h"
#include "common/model.h"
#include "cpu/forward_backward.h"
#include "cpu/memory.h"
#include "cpu/parallel.h"
#include "cpu/sparse_inputs.h"

namespace sgdcore::cpu {

template <class T>
class DenseFirstLayer {
 public:
  explicit DenseFirstLayer(const Model& m) : m_(m) {}

  void weights(const T*) {}
  void directions(const T* Vt, int64_t) { Vt_ = Vt; }
  void load(const T* X, int64_t s, int64_t n) {
    Xc_ = X + s * m_.D;
    n_ = n;
  }
  void forward(const T* theta, T* A, T* Z) const { cpu::forward(m_, theta, Xc_, n_, A, Z); }
  template <class F>
  void by_rows(int64_t w, F f) const {
    f(int64_t(0), w);
  }
  int64_t hidden_ld() const { return m_.H; }
  void add_grad(const T* G, int64_t lg, T* g, T beta) const {
    const int64_t D = m_.D;
    if (m_.kind != Kind::MLP && m_.K() == 1)  // the binary model's residual is a vector
      blas::gemv<T>(true, n_, D, T(1), Xc_, D, G, beta, g + m_.off_W1());
    else
      blas::gemm<T>(true, false, m_.kind == Kind::MLP ? m_.H : m_.K(), D, n_, T(1), G, lg, Xc_,
                    D, beta, g + m_.off_W1(), D);
  }
  void finish_grad(T*) const {}
  void direction_times(int64_t j, T* R, int64_t lr) const {
    const int64_t D = m_.D;
    blas::gemm<T>(false, true, n_, m_.H, D, T(1), Xc_, D, Vt_ + j * m_.n_params() + m_.off_W1(),
                  D, T(0), R, lr);
  }
  void add_direction_grad(int64_t, const T* G, int64_t lg, T* O) const {
    const int64_t D = m_.D;
    blas::gemm<T>(true, false, m_.H, D, n_, T(1), G, lg, Xc_, D, T(1), O + m_.off_W1(), D);
  }
  void finish(T*, int64_t) const {}

 private:
  Model m_;
  const T* Vt_ = nullptr;
  const T* Xc_ = nullptr;
  int64_t n_ = 0;
};

template <class T>
class SparseFirstLayer {
 public:
  explicit SparseFirstLayer(const Model& m) : m_(m), ld_(padded<T>(m.H)) {}

  void weights(const T* theta) {
    const int64_t D = m_.D, H = m_.H;
    W1T_ = reused_scratch<T>(0, D * ld_, own_[0]);
    split_rows(D, [&](int64_t d0, int64_t d1) {
      transpose_into(theta + m_.off_W1(), H, D, d0, d1, W1T_, ld_);
    });
  }
  void directions(const T* Vt, int64_t k) {
    const int64_t D = m_.D, H = m_.H, P = m_.n_params(), ld = ld_;
    V1T_ = Vt ? reused_scratch<T>(1, k * D * ld, own_[1]) : nullptr;
    O1T_ = reused_scratch<T>(2, k * D * ld, own_[2]);
    split_rows(D, [&](int64_t d0, int64_t d1) {
      for (int64_t j = 0; j < k; ++j) {
        if (Vt) transpose_into(Vt + j * P + m_.off_W1(), H, D, d0, d1, V1T_ + j * D * ld, ld);
        std::fill(O1T_ + (j * D + d0) * ld, O1T_ + (j * D + d1) * ld, T(0));
      }
    });
  }
  void load(const T* X, int64_t s, int64_t n) {
    n_ = n;
    chunk_.load(X, s, n, m_.D);
  }
  void forward(const T* theta, T* A, T* Z) const {
    const int64_t H = m_.H, C = m_.C;
    chunk_.times(W1T_, ld_, H, A, H);
    split_rows(n_, [&](int64_t r0, int64_t r1) {
      mlp_top(m_, theta, A + r0 * H, r1 - r0, Z + r0 * C);
    });
  }
  template <class F>
  void by_rows(int64_t w, F f) const {
    split_rows(w, f);
  }
  int64_t hidden_ld() const { return ld_; }
  // The gradient's block is direction 0's output block (a call takes one or the other).
  void add_grad(const T* G, int64_t lg, T*, T beta) {
    if (beta == T(0)) directions(nullptr, 1);
    add_direction_grad(0, G, lg, nullptr);
  }
  void finish_grad(T* g) const { finish(g, 1); }
  void direction_times(int64_t j, T* R, int64_t lr) const {
    chunk_.times(V1T_ + j * m_.D * ld_, ld_, m_.H, R, lr);
  }
  void add_direction_grad(int64_t j, const T* G, int64_t lg, T*) const {
    chunk_.transpose_times_add(G, lg, m_.H, O1T_ + j * m_.D * ld_, ld_);
  }
  void finish(T* Out, int64_t k) const {
    const int64_t D = m_.D, H = m_.H, P = m_.n_params();
    split_rows(D, [&](int64_t d0, int64_t d1) {
      for (int64_t j = 0; j < k; ++j)
        transpose_back(O1T_ + j * D * ld_, ld_, H, D, d0, d1, Out + j * P + m_.off_W1());
    });
  }

 private:
  Model m_;
  int64_t ld_, n_ = 0;
  AlignedArray<T> own_[3];
  T *W1T_ = nullptr, *V1T_ = nullptr, *O1T_ = nullptr;
  SparseChunk<T> chunk_;
};

// f(first) with the first layer a call takes: the sparse one for an MLP when `sparse`,
// else the dense one. The one place the choice is made.
template <class T, class F>
auto with_first_layer(const Model& m, bool sparse, F&& f) {
  if (sparse && m.kind == Kind::MLP) {
    SparseFirstLayer<T> first(m);
    return f(first);
  }
  DenseFirstLayer<T> first(m);
  return f(first);
}

}  // namespace sgdcore::cpu
