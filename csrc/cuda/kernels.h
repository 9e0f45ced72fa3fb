// Host launchers of the CUDA kernels, plain C++ so that csrc/bindings_cuda.cpp compiles
// with the host compiler. Pointers are device addresses and `stream` the caller's CUDA
// stream handle, both passed as integers. Every launcher queues its kernels on that
// stream and returns without waiting for them. T is float or double; per-row sums are
// accumulated in double.
#pragma once
#include <cstdint>

namespace sgdcore::cuda {

using ptr = std::uintptr_t;

// What output_residual writes in place of the logits Z [n, K] (K = 1: one sigmoid logit).
enum OutputMode : int {
  kLossOnly = 0,       // Z unchanged
  kResidual = 1,       // Z <- dCE/dz = p - onehot(y)  (sigmoid: sigmoid(z) - y)
  kProbabilities = 2,  // Z <- p (softmax rows; sigmoid: sigmoid(z))
};

// output_residual_cuda.cu: ce[i] = CE_i (double; skipped when ce == 0 or mode is
// kProbabilities, where y may be 0 too) and Z rewritten as `mode` says.
template <class T>
void output_residual(ptr Z, ptr y, int64_t n, int64_t K, ptr ce, int mode, ptr stream);

// relu_cuda.cu: A <- max(A + b, 0) for A [n, H], b [H] (the hidden layer's forward), and
// D <- D * relu'(A) (the hidden layer's residual mask, A the post-ReLU activations).
template <class T> void bias_relu(ptr A, ptr b, int64_t n, int64_t H, ptr stream);
template <class T> void relu_mask(ptr D, ptr A, int64_t n, int64_t H, ptr stream);

// grad_norms_cuda.cu: out[i] (+)= |delta_i|^2 (|a_i|^2 + 1) for one dense layer with
// residual rows delta [n, k] and input rows a [n, d]: the squared norm of its
// per-example gradient (delta_i a_i^T, delta_i), from the two factors.
template <class T>
void layer_sqnorms(ptr delta, int64_t k, ptr a, int64_t d, int64_t n, ptr out, bool accumulate,
                   ptr stream);

// cov_matvec_cuda.cu: s[i] += delta_i . u_i (rows of [n, k], double), and
// out[i, :] = delta_i * s[i] (the residuals of a backward pass weighted by s).
template <class T> void row_dot_add(ptr delta, ptr u, int64_t n, int64_t k, ptr s, ptr stream);
template <class T> void scale_rows(ptr delta, ptr s, int64_t n, int64_t k, ptr out, ptr stream);

// hvp_cuda.cu: R <- d2CE/dz2 R row by row, from the output probabilities Pm [n, K]
// (K = 1: p (1 - p) r; else p * (r - p . r)): the output step of the R-pass.
template <class T> void output_curvature(ptr Pm, ptr R, int64_t n, int64_t K, ptr stream);

// logistic_hvp_cuda.cu: out[D + 1] = sum_i p_i (1 - p_i) (x_i . v + v_b) [x_i, 1] for the
// binary logistic model, reading each row of X [n, D] once; p_i = sigmoid(x_i . w + b)
// from theta = [w, b], or p_i = Pm[i] when Pm != 0. `partial` is scratch of
// logistic_hvp_partials(n, D) doubles.
int64_t logistic_hvp_partials(int64_t n, int64_t D);
template <class T>
void logistic_hvp(ptr X, int64_t n, int64_t D, ptr theta, ptr Pm, ptr v, ptr partial, ptr out,
                  ptr stream);

}  // namespace sgdcore::cuda
