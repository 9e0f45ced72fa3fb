// Covariance products without per-example gradients: per direction v (a row of Vt),
// s_i = g_i . v - shift = sum over layers of delta_i^T (V a_i + c) - shift (one GEMM
// U = A V^T), then out = sum_i s_i g_i is a backward pass with residuals scaled by s_i,
// and ssum = sum_i s_i (float64).
#include "common/bind.h"
#include "cpu/per_example.h"

namespace sgdcore::cpu {
namespace {  // this file's kernels and binding helpers

template <class T>
void cov_matvec(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                const T* Vt, int64_t k, const T* shift, T* out, double* ssum) {
  const int64_t rows = chunk_rows(m, N), P = m.n_params(), D = m.D, H = m.H, K = m.K();
  const bool mlp = m.kind == Kind::MLP;
  Residuals<T> w(m, rows);
  std::vector<T> U(rows * (mlp ? H : K)), U2(mlp ? rows * K : 0), Rs(rows * K), s(rows);
  std::fill(ssum, ssum + k, 0.0);
  if (N == 0) std::fill(out, out + k * P, T(0));
  for (int64_t s0 = 0; s0 < N; s0 += rows) {
    const int64_t n = std::min(rows, N - s0);
    const T* x = X + s0 * D;
    const T *A = w.A.data(), *R = w.R.data(), *dA = w.dA.data();
    residuals(m, theta, x, y + s0, n, w.A.data(), w.R.data(), w.dA.data());
    const T beta = s0 ? T(1) : T(0);
    for (int64_t j = 0; j < k; ++j) {
      const T* v = Vt + j * P;
      T* o = out + j * P;
      // s_i = g_i . v - shift_j
      if (mlp) {
        const T *vb1 = v + m.off_b1(), *vb2 = v + m.off_b2();
        blas::gemm<T>(false, true, n, H, D, T(1), x, D, v + m.off_W1(), D, T(0), U.data(), H);
        blas::gemm<T>(false, true, n, K, H, T(1), A, H, v + m.off_W2(), H, T(0), U2.data(), K);
        for (int64_t i = 0; i < n; ++i) {
          double acc = 0.0;
          for (int64_t h = 0; h < H; ++h) acc += double(dA[i * H + h]) * (U[i * H + h] + vb1[h]);
          for (int64_t c = 0; c < K; ++c) acc += double(R[i * K + c]) * (U2[i * K + c] + vb2[c]);
          s[i] = static_cast<T>(acc - double(shift[j]));
        }
      } else {
        const T* vb = v + m.off_b1();
        if (K == 1)
          blas::gemv<T>(false, n, D, T(1), x, D, v, T(0), U.data());
        else
          blas::gemm<T>(false, true, n, K, D, T(1), x, D, v, D, T(0), U.data(), K);
        for (int64_t i = 0; i < n; ++i) {
          double acc = 0.0;
          for (int64_t c = 0; c < K; ++c) acc += double(R[i * K + c]) * (U[i * K + c] + vb[c]);
          s[i] = static_cast<T>(acc - double(shift[j]));
        }
      }
      double total = 0.0;
      for (int64_t i = 0; i < n; ++i) total += double(s[i]);
      ssum[j] += total;
      // sum_i s_i g_i: the backward pass with every residual scaled by s_i.
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < K; ++c) Rs[i * K + c] = s[i] * R[i * K + c];
      if (mlp) {
        T* dAs = U.data();  // U is spent; reuse it for s_i * dA_i
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h) dAs[i * H + h] = s[i] * dA[i * H + h];
        blas::gemm<T>(true, false, K, H, n, T(1), Rs.data(), K, A, H, beta, o + m.off_W2(), H);
        colsum(Rs.data(), n, K, beta, o + m.off_b2());
        blas::gemm<T>(true, false, H, D, n, T(1), dAs, H, x, D, beta, o + m.off_W1(), D);
        colsum(dAs, n, H, beta, o + m.off_b1());
      } else {
        if (K == 1)
          blas::gemv<T>(true, n, D, T(1), x, D, Rs.data(), beta, o);
        else
          blas::gemm<T>(true, false, K, D, n, T(1), Rs.data(), K, x, D, beta, o, D);
        colsum(Rs.data(), n, K, beta, o + m.off_b1());
      }
    }
  }
}

template <class T>
void call(const Model& m, const py::array& theta, const py::array& X, const py::array& y,
          const py::array& Vt, const py::array& shift, const py::array& out,
          const py::array& ssum) {
  const int64_t P = m.n_params();
  const T* th = checked<T>(theta, "theta", {P});
  const T* x = checked<T>(X, "X", {-1, m.D});
  const int64_t N = X.shape(0);
  const int64_t* lab = checked_labels(y, N, m.C);
  const T* v = checked<T>(Vt, "Vt", {-1, P});
  const int64_t k = Vt.shape(0);
  const T* sh = checked<T>(shift, "shift", {k});
  T* o = checked<T>(out, "out", {k, P}, true);
  double* ss = checked<double>(ssum, "ssum", {k}, true);
  py::gil_scoped_release release;
  cov_matvec(m, th, x, lab, N, v, k, sh, o, ss);
}

}  // namespace

SGDCORE_BIND(cov_matvec) {
  m.def(
      "cov_matvec",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& theta, const py::array& X,
         const py::array& y, const py::array& Vt, const py::array& shift, const py::array& out,
         const py::array& ssum) {
        const Model mod = checked_model(kind, D, H, C);
        is_float32(theta) ? call<float>(mod, theta, X, y, Vt, shift, out, ssum)
                          : call<double>(mod, theta, X, y, Vt, shift, out, ssum);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("theta"), py::arg("X"),
      py::arg("y"), py::arg("Vt"), py::arg("shift"), py::arg("out"), py::arg("ssum"),
      "For each row v_j of Vt [k, P], with s_i = g_i . v_j - shift[j]: write sum_i s_i g_i "
      "into out[j] and sum_i s_i into ssum[j] (float64).");
}

}  // namespace sgdcore::cpu
