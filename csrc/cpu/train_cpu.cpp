// Mini-batch SGD with heavy-ball momentum for a group of K models in one call: the whole
// run (Philox batches, steps, evaluations in chunks) happens in C++, without the GIL. An
// OpenMP team runs the models with single-threaded BLAS: each thread takes the least
// advanced free model for a chunk of steps (no barrier). This file checks the
// inputs at the boundary and binds the engine; the engine itself is Run<T, L>
// (cpu/train_run.h and the files it lists), its first layer L chosen here, once.
#include <climits>
#include <cmath>
#include <cstdint>

#include "common/bind.h"
#include "common/checks.h"
#include "cpu/train_first_layer_dense.h"
#include "cpu/train_first_layer_sparse.h"
#include "cpu/train_inputs.h"
#include "cpu/train_run.h"
#include "cpu/train_schedule.h"

namespace sgdcore::cpu::sgd {

template <class T, class L>
void call(const Model& mod, const py::array& X, const py::array& Y, const py::array& Xte,
          const py::array& yte, const py::array& theta, const py::array& seeds,
          const py::array& n_train, const py::array& lr, const py::array& mom,
          const py::array& l2, int64_t B, int64_t steps, const py::array& evals,
          const py::array& metrics, const py::array& div_step, const Plan& plan,
          const py::object& progress) {
  Run<T, L> r;
  r.m = mod;
  r.P = mod.n_params();
  SGD_CHECK(theta.ndim() == 2 && theta.shape(0) >= 1, "theta must have shape (K, ", r.P,
            ") with K >= 1, got ", shape_str(theta));
  r.K = theta.shape(0);
  r.theta = checked<T>(theta, "theta", {r.K, r.P}, true);
  r.X = checked<T>(X, "X", {-1, mod.D});
  r.N = X.shape(0);
  SGD_CHECK(r.N >= 1, "X is empty: at least one training example is needed");
  r.Xte = checked<T>(Xte, "X_test", {-1, mod.D});
  r.M = Xte.shape(0);
  SGD_CHECK(r.M >= 1, "X_test is empty: at least one test example is needed");
  r.yte = checked_labels(yte, r.M, mod.C);
  r.Y = checked<int64_t>(Y, "Y", {r.K, r.N});
  for (int64_t i = 0; i < r.K * r.N; ++i)
    SGD_CHECK(r.Y[i] >= 0 && r.Y[i] < mod.C, "Y[", i / r.N, ", ", i % r.N, "] = ", r.Y[i],
              " is out of range [0, ", mod.C, ")");
  r.seeds = checked<uint64_t>(seeds, "seeds", {r.K});
  r.n_train = checked<int64_t>(n_train, "n_train", {r.K});
  SGD_CHECK(B >= 1 && B <= INT_MAX, "batch_size must be in [1, 2^31), got ", B);
  for (int64_t k = 0; k < r.K; ++k)
    SGD_CHECK(r.n_train[k] >= B && r.n_train[k] <= r.N && r.n_train[k] < (int64_t(1) << 32),
              "n_train[", k, "] = ", r.n_train[k], " must lie in [batch_size = ", B,
              ", N = ", r.N, "]");
  r.lr = checked<double>(lr, "lr", {r.K});
  r.mom = checked<double>(mom, "momentum", {r.K});
  r.l2 = checked<double>(l2, "l2", {r.K});
  for (int64_t k = 0; k < r.K; ++k) {
    SGD_CHECK(std::isfinite(r.lr[k]) && r.lr[k] >= 0, "lr[", k, "] must be finite and >= 0");
    SGD_CHECK(r.mom[k] >= 0 && r.mom[k] < 1, "momentum[", k, "] must lie in [0, 1)");
    SGD_CHECK(std::isfinite(r.l2[k]) && r.l2[k] >= 0, "l2[", k, "] must be finite and >= 0");
  }
  SGD_CHECK(steps >= 0, "steps must be >= 0, got ", steps);
  r.B = B;
  r.steps = steps;
  r.evals = checked<int64_t>(evals, "eval_steps", {-1});
  r.E = evals.shape(0);
  for (int64_t e = 0; e < r.E; ++e)
    SGD_CHECK(r.evals[e] >= 0 && r.evals[e] <= steps && (e == 0 || r.evals[e] > r.evals[e - 1]),
              "eval_steps must be increasing and lie in [0, steps]");
  r.metrics = checked<double>(metrics, "metrics", {r.K, r.E, 3}, true);
  r.div_step = checked<int64_t>(div_step, "div_step", {r.K}, true);
  SGD_CHECK(plan.threads >= 1 && plan.block_rows >= 1 && plan.chunk >= 1,
            "threads, block_rows and chunk must be >= 1");
  SGD_CHECK(mod.D <= INT_MAX && mod.H <= INT_MAX, "model too wide for BLAS");
  for (int64_t i = 0; i < r.K * r.E * 3; ++i) r.metrics[i] = NAN;
  for (int64_t k = 0; k < r.K; ++k) r.div_step[k] = -1;
  r.plan = plan;
  r.progress = progress;
  {
    py::gil_scoped_release release;
    r.run();
  }
  if (PyErr_Occurred()) throw py::error_already_set();
}


SGDCORE_BIND(train) {
  m.def(
      "train",
      [](int kind, int64_t D, int64_t H, int64_t C, const py::array& X, const py::array& Y,
         const py::array& Xte, const py::array& yte, const py::array& theta,
         const py::array& seeds, const py::array& n_train, const py::array& lr,
         const py::array& mom, const py::array& l2, int64_t B, int64_t steps,
         const py::array& evals, const py::array& metrics, const py::array& div_step,
         int threads, int block_rows, bool fuse, int64_t chunk, bool sparse,
         const py::object& progress) {
        const Model mod = checked_model(kind, D, H, C);
        const Plan plan{threads, block_rows, fuse, chunk, sparse};
        // The first layer: on the inputs' non-zeros for an MLP when asked, else GEMMs.
        const bool on_nonzeros = sparse && mod.kind == Kind::MLP;
        const auto with = [&](auto layer) {
          using L = decltype(layer);
          call<typename L::value_type, L>(mod, X, Y, Xte, yte, theta, seeds, n_train, lr, mom,
                                          l2, B, steps, evals, metrics, div_step, plan, progress);
        };
        const auto typed = [&](auto zero) {
          using T = decltype(zero);
          if (on_nonzeros)
            with(SparseTrainW1<T>());
          else
            with(DenseTrainW1<T>());
        };
        if (is_float32(theta))
          typed(float(0));
        else
          typed(double(0));
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("X"), py::arg("Y"),
      py::arg("X_test"), py::arg("y_test"), py::arg("theta"), py::arg("seeds"),
      py::arg("n_train"), py::arg("lr"), py::arg("momentum"), py::arg("l2"),
      py::arg("batch_size"), py::arg("steps"), py::arg("eval_steps"), py::arg("metrics"),
      py::arg("div_step"), py::arg("threads") = 1,
      py::arg("block_rows") = 64, py::arg("fuse") = true, py::arg("chunk") = 16,
      py::arg("sparse") = false,
      py::arg("progress") = py::none(),
      "Train K models (theta [K, P], in place) with mini-batch SGD and momentum; write the "
      "evaluations into metrics [K, E, 3] (test accuracy, test CE, train CE; means) and the "
      "step each model diverged at into div_step (-1: never).");
}

}  // namespace sgdcore::cpu::sgd
