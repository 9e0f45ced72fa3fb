// Squared norms of the per-example gradients without forming them: one forward pass and
// the backpropagated residuals per chunk, then |g_i|^2 = sum over dense layers of
// |delta_i|^2 (|a_i|^2 + 1). Memory O(chunk * (H + K)), never O(N * P).
#include "cpu/bind_data.h"
#include "cpu/per_example.h"

namespace sgdcore::cpu {
namespace {  // this file's kernels and binding helpers

template <class T>
void grad_sqnorms(const Model& m, const T* theta, const T* X, const int64_t* y, int64_t N,
                  T* out) {
  const int64_t rows = chunk_rows(m, N), D = m.D;
  Residuals<T> w(m, rows);
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    residuals(m, theta, X + s * D, y + s, n, w.A.data(), w.R.data(), w.dA.data());
    example_sqnorms(m, X + s * D, n, w.A.data(), w.R.data(), w.dA.data(), out + s);
  }
}

}  // namespace

SGDCORE_BIND(per_example_grad_sqnorms) {
  def_on_data(
      m, "per_example_grad_sqnorms",
      [](const Model& mod, auto d, const py::array& out) {
        using T = typename decltype(d)::value_type;
        T* o = checked<T>(out, "out", {d.N}, true);
        py::gil_scoped_release release;
        grad_sqnorms(mod, d.theta, d.X, d.y, d.N, o);
      },
      "Write |dCE_i/dtheta|^2 of each example into `out` [N], without forming the gradients.");
}

}  // namespace sgdcore::cpu
