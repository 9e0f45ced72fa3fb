// The training engine's state: mini-batch SGD with heavy-ball momentum for a group of K
// models in one call (see train_cpu.cpp for the binding), and the interface of its first
// layer, the one part with two implementations.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/checks.h"
#include "common/model.h"
#include "common/philox.h"
#include "cpu/memory.h"

namespace sgdcore::cpu::sgd {

struct Plan {
  int threads = 1;      // OpenMP team size (BLAS must then run single-threaded)
  int block_rows = 64;  // rows of W1 updated per block
  bool fuse = true;     // next step's forward inside the update loop (two batch buffers)
  int64_t chunk = 16;   // steps a thread runs on one model before choosing again
  bool sparse = false;  // MLP first layer on the inputs' non-zeros (cpu/sparse_inputs.h)
};

// Scratch of a thread, lent to the model it runs (so memory is O(K P) for the models
// plus O(threads B (D + H)), whatever K).
template <class T>
struct TrainWork {
  std::vector<int64_t> idx;  // [B] the batch
  std::vector<T> Xb;         // [nbuf][B, Dx] its rows (and the next batch's)
  AlignedVector<T> dA;       // [B, H], rows dld apart
  int64_t dld = 0;
  std::vector<T> Z;          // [B, Kout] logits, then residual
  std::vector<T> g;          // [max(H, Kout)] column sums
  std::vector<T> A;          // [B, H] activations of the current batch (MLP)
  std::vector<T> Zpart;      // [2 parities][zs] logits of the current and next batch
};

// Per model: its batch stream and where it stands.
template <class T>
struct TrainUnit {
  int64_t k;
  philox::BatchStream stream;
  bool frozen = false;
  int tid = 0;                  // the thread running it
  TrainWork<T>* w = nullptr;    // that thread's scratch
  T* A = nullptr;               // its Work::A
  T* Zpart = nullptr;           // its Work::Zpart
};

// An evaluation work item: a chunk of rows of one model, or its parameter check.
struct EvalItem {
  int64_t k;
  int kind;  // 0 test chunk, 1 train chunk, 2 parameter check
  int64_t start, len;
  double ce;
  int64_t correct;
  bool finite;
};

// Run<T, L> holds the checked inputs, the models' velocities, the per-model run state
// (TrainUnit), the threads' scratch (TrainWork) and the MLP's first layer L; its member
// functions live by job in
//   train_inputs.h    scratch, velocities, the batch rows the GEMMs read
//   train_step.h      one SGD step of one model, and the next step's batch
//   train_eval.h      evaluations in chunks, reduced in a fixed order
//   train_schedule.h  the schedule that runs the models on an OpenMP team
// and are written once for either first layer, chosen once by the binding:
//   DenseTrainW1<T>   (train_first_layer_dense.h)  GEMMs, W1 [H, D] in theta
//   SparseTrainW1<T>  (train_first_layer_sparse.h) the inputs' non-zeros, W1 transposed
// Both have these members (r: the Run, u: a model at work, k: a model, t: a step):
//   setup(r)                      its layout of W1 and of the inputs
//   buffers(r), dA_ld(hs)         batch buffers (2: the next batch's forward is fused into
//                                 the update), row stride of dA
//   init_velocity(r, k, c)        W1's velocity buffer u = -c W1 (v = 0)
//   forward(r, u, t, buf)         A = relu(Xb W1^T + b1) for step t's batch (drawn)
//   step(r, u, t, dA, a, mom, c, last, next)  W1's update from dA; when `next`, step
//                                 t + 1's batch drawn and forwarded; returns its buffer
//   to_date(r, k, t, tid)         W1 as of step t for an evaluation on thread tid
//   eval_forward(r, it, tid, A)   A[n, H] = X_chunk W1^T for an evaluation chunk
//   finite(r, k)                  whether the W1 an evaluation reads is finite
//   finish(r)                     W1 back into theta, in the model's own layout
template <class T, class L>
struct Run {
  using Work = TrainWork<T>;
  using Unit = TrainUnit<T>;
  using Item = EvalItem;

  // Inputs (checked at the boundary).
  Model m;
  int64_t P, K, N, M, B, steps, E;
  const T* X;
  const int64_t* Y;  // [K, N] training labels per model
  const T* Xte;
  const int64_t* yte;
  T* theta;  // [K, P]
  const uint64_t* seeds;
  const int64_t* n_train;
  const double *lr, *mom, *l2;
  const int64_t* evals;  // [E], increasing
  double* metrics;       // [K, E, 3]
  int64_t* div_step;     // [K]
  Plan plan;
  py::object progress;

  // [K][P], zeroed by calloc: pages never written are never touched (a first layer that
  // keeps W1's velocity elsewhere leaves that part alone).
  struct CFree {
    void operator()(T* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<T[], CFree>> velocity;
  std::vector<Work> works;
  std::vector<Unit> units;
  // The inputs' rows as the GEMMs read them: training rows Xs [N, Dx], test rows Xts
  // [M, Dt] (X and X_test as given unless the first layer lays them out otherwise).
  int64_t Dx = 0, Dt = 0;
  const T* Xs = nullptr;
  const T* Xts = nullptr;
  int64_t Kout = 1, nbuf = 1, zs = 16;  // zs: padded stride of one parity's logits
  L w1;                                 // the MLP's first layer

  // Evaluation scratch.
  int64_t eval_rows = 256;
  std::vector<std::vector<T>> scratch;  // per thread: A [rows, H] + Z [rows, Kout] + p [Kout]

  std::atomic<bool> abort{false};

  T* th(int64_t k) { return theta + k * P; }

  // One evaluation shared between the model's owner and idle threads.
  struct EvalJob {
    std::vector<Item> items;
    std::atomic<int64_t> next{0}, done{0};
    std::atomic<int> helpers{0};
  };

  // Training inputs and scratch (train_inputs.h).
  void make_work(Work& w, int64_t hs);
  void setup();
  void gather(Unit& u, int buf);
  // The step (train_step.h).
  void batch_logits(Unit& u, int par, int buf);
  void init_velocity(Unit& u);
  void prepare(Unit& u, int64_t t);
  static void apply(T* w, T* v, int64_t n, T c);
  static void apply2d(T* w, T* v, int64_t rows, int64_t n, int64_t ld, T c);
  static void apply_bias(T* b, T* v, const T* g, int64_t n, T mom, T a, T c);
  void step(Unit& u, int64_t t, bool next);
  // Evaluation (train_eval.h).
  void eval_chunk(Item& it, T* sc, int tid);
  void add_eval_items(int64_t k, std::vector<Item>& items) const;
  void reduce_eval(int64_t k, const Item* items, int64_t n_items, int64_t e);
  // The schedule (train_schedule.h).
  void call_python(int64_t t);
  void run();
  void work_on(EvalJob& job, T* sc, int tid);
  void run_dynamic();
};

}  // namespace sgdcore::cpu::sgd
