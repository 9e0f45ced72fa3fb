// Materialised per-example gradients, out[i] = dCE_i/dtheta: one residual pass per chunk
// (BLAS), then each row written once as the outer products delta_i a_i^T of its layers.
// Bound by the N * P bytes written: large outputs use non-temporal stores, MLP rows are
// written in parallel, and logistic chunks are small enough that X is read once.
#include <cstdint>

#include "cpu/bind_data.h"
#include "cpu/per_example.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sgdcore::cpu {
namespace {  // this file's kernels and binding helpers

// Outputs at least this large are written with non-temporal stores: they do not fit in
// cache, so streaming them skips the read-for-ownership of every line and leaves the
// caches to the inputs.
constexpr int64_t kStreamBytes = int64_t(8) << 20;

inline void fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// r[0:len] = s * x[0:len], with non-temporal stores when `stream`. Adds 0 * r[j] to
// `nonfinite`, which therefore stays 0 unless some r[j] is NaN or inf: the finiteness
// check of the inputs, fused into the one pass that reads them.
template <class T>
inline void scaled_copy(T* r, T s, const T* x, int64_t len, bool stream, T& nonfinite) {
  int64_t j = 0;
  T acc = T(0);
#if defined(__SSE2__)
  if (stream) {
    constexpr int64_t L = 16 / sizeof(T);
    for (; j < len && (reinterpret_cast<uintptr_t>(r + j) & 15); ++j) {
      r[j] = s * x[j];
      acc += r[j] * T(0);
    }
    if constexpr (sizeof(T) == 4) {
      const __m128 v = _mm_set1_ps(s), zero = _mm_setzero_ps();
      __m128 bad = zero;
      for (; j + L <= len; j += L) {
        const __m128 p = _mm_mul_ps(v, _mm_loadu_ps(x + j));
        _mm_stream_ps(r + j, p);
        bad = _mm_add_ps(bad, _mm_mul_ps(p, zero));
      }
      float lanes[4];
      _mm_storeu_ps(lanes, bad);
      acc += lanes[0] + lanes[1] + lanes[2] + lanes[3];
    } else {
      const __m128d v = _mm_set1_pd(s), zero = _mm_setzero_pd();
      __m128d bad = zero;
      for (; j + L <= len; j += L) {
        const __m128d p = _mm_mul_pd(v, _mm_loadu_pd(x + j));
        _mm_stream_pd(r + j, p);
        bad = _mm_add_pd(bad, _mm_mul_pd(p, zero));
      }
      double lanes[2];
      _mm_storeu_pd(lanes, bad);
      acc += lanes[0] + lanes[1];
    }
  }
#endif
#pragma omp simd reduction(+ : acc)
  for (int64_t i = j; i < len; ++i) {
    r[i] = s * x[i];
    acc += r[i] * T(0);
  }
  nonfinite += acc;
}

// The gradient of one example in the flat layout from its input x, activations a (MLP),
// output residual r and hidden residual da (MLP).
template <class T>
void write_row(const Model& m, const T* x, const T* a, const T* r, const T* da, T* row,
               bool stream, T& nonfinite) {
  const int64_t D = m.D, K = m.K();
  if (m.kind != Kind::MLP) {  // [W (K x D), b (K)]: W = r x^T, b = r
    for (int64_t c = 0; c < K; ++c) scaled_copy(row + c * D, r[c], x, D, stream, nonfinite);
    std::copy(r, r + K, row + m.off_b1());
    return;
  }
  const int64_t H = m.H, C = m.C;
  for (int64_t h = 0; h < H; ++h)
    scaled_copy(row + h * D, da[h], x, D, stream, nonfinite);  // W1 = da x^T
  std::copy(da, da + H, row + m.off_b1());                      // b1 = da
  for (int64_t c = 0; c < C; ++c)
    scaled_copy(row + m.off_W2() + c * H, r[c], a, H, stream, nonfinite);  // W2 = r a^T
  std::copy(r, r + C, row + m.off_b2());                                    // b2 = r
}

// Writes every row; returns false when a value written is NaN or inf (which, for finite
// theta, means X holds one: every x_ij is multiplied into some written value).
template <class T>
bool per_example_grads(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                       T* out) {
  const int64_t P = m.n_params(), D = m.D, H = m.H, K = m.K();
  const bool stream = N * P * int64_t(sizeof(T)) >= kStreamBytes;
  T nonfinite = T(0);
  if (m.kind != Kind::MLP) {
    // Rows in chunks small enough that their inputs stay in cache from the logits GEMV to
    // the writes: X is read from memory once, and the work is one pass over the output.
    const int64_t rows = std::max<int64_t>(8, (int64_t(1) << 16) / D);
    Residuals<T> w(m, rows);
    for (int64_t s = 0; s < N; s += rows) {
      const int64_t n = std::min(rows, N - s);
      residuals(m, theta, X + s * D, y + s, n, w.A.data(), w.R.data(), w.dA.data());
      for (int64_t i = 0; i < n; ++i)
        write_row(m, X + (s + i) * D, w.A.data(), w.R.data() + i * K, w.dA.data(),
                  out + (s + i) * P, stream, nonfinite);
    }
    if (stream) fence();
    return nonfinite == T(0);
  }
  // MLP: the rows are large (P numbers each); write them in parallel over examples,
  // dynamically so that a thread descheduled on a busy machine holds up one row at most.
  const int64_t rows = chunk_rows(m, N);
  Residuals<T> w(m, rows);
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    residuals(m, theta, X + s * D, y + s, n, w.A.data(), w.R.data(), w.dA.data());
    const T *A = w.A.data(), *R = w.R.data(), *dA = w.dA.data();
#pragma omp parallel reduction(+ : nonfinite)
    {
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < n; ++i)
        write_row(m, X + (s + i) * D, A + i * H, R + i * K, dA + i * H, out + (s + i) * P, stream,
                  nonfinite);
      if (stream) fence();
    }
  }
  return nonfinite == T(0);
}

}  // namespace

SGDCORE_BIND(per_example_grads) {
  def_on_data(
      m, "per_example_grads",
      [](const Model& mod, auto d, const py::array& out) {
        using T = typename decltype(d)::value_type;
        T* o = checked<T>(out, "out", {d.N, mod.n_params()}, true);
        py::gil_scoped_release release;
        return per_example_grads(mod, d.theta, d.X, d.y, d.N, o);
      },
      "Write the gradient of each example's cross-entropy into the rows of `out` [N, P]; "
      "returns False when a value written is NaN or inf.");
}

}  // namespace sgdcore::cpu
