// The training engine's state: mini-batch SGD with heavy-ball momentum for a group of K
// models in one call (see train_cpu.cpp for the binding). Run<T> holds the checked
// inputs, the models' velocities, the units a schedule runs and their scratch; its
// member functions live by job in
//   train_inputs.h    column layout: trimming, W1 permuted or transposed (sparse inputs)
//   train_step.h      one SGD step of one unit, and the next step's forward
//   train_eval.h      evaluations in chunks, reduced in a fixed order
//   train_schedule.h  the schedules that run the units on an OpenMP team
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
#include "cpu/sparse_inputs.h"

namespace sgdcore::cpu::sgd {

struct Plan {
  int threads = 1;      // OpenMP team size (BLAS must then run single-threaded)
  int slices = 1;       // hidden-unit slices per MLP model
  int block_rows = 64;  // rows of W1 updated per block
  bool fuse = true;     // next step's forward inside the update loop (two batch buffers)
  int64_t chunk = 16;   // steps a thread runs on one model before choosing again
  bool sparse = false;  // MLP first layer on the inputs' non-zeros (cpu/sparse_inputs.h)
};

template <class T>
struct Run {
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

  // Scratch of a running unit: its own in lockstep mode, its thread's otherwise (so
  // memory is O(K P) for the models plus O(threads B (D + H)), whatever K).
  struct Work {
    std::vector<int64_t> idx;  // [B] the batch
    std::vector<T> Xb;         // [nbuf][B, Dx] its rows (and the next batch's)
    AlignedVector<T> dA;       // [B, h1 - h0], rows dld apart (64-byte aligned if sparse)
    int64_t dld = 0;
    std::vector<T> Z;          // [B, Kout] logits, then residual
    std::vector<T> g;          // [max(h1 - h0, Kout)] column sums
    std::vector<T> A, Zpart;   // as below, when not shared between slices
    BatchColumns<T> cols;      // sparse: the batch's non-zeros by pixel
  };
  // Per unit: one model's hidden slice [h0, h1) (logistic: the whole model).
  struct Unit {
    int64_t k, s, h0, h1;
    philox::BatchStream stream;
    bool frozen = false;
    Work* w = nullptr;
    T* A = nullptr;      // [B, H] activations of the current batch (MLP), shared by slices
    T* Zpart = nullptr;  // [2 parities][S slices][zs] partial logits, shared by slices
    int64_t clock = 0;   // sparse: the step whose state the parameters hold
  };
  // [K][P], zeroed by calloc: pages never written are never touched (a sparse run keeps
  // W1's velocity in v1t and leaves that part alone).
  struct CFree {
    void operator()(T* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<T[], CFree>> velocity;
  std::vector<std::vector<T>> shared_A, shared_Z;  // per model, lockstep mode only
  std::vector<Work> works;
  std::vector<Unit> units;
  // Input columns (pixels) that are zero in every training row are dropped from the
  // training GEMMs: with them permuted to the end of W1's rows, the GEMMs use the leading
  // Dx columns (ld D), and the test set's the leading Dt (MLP only; exact, since those
  // columns add exact zeros). Xs / Xts hold the permuted, trimmed copies when used.
  int64_t Dx = 0, Dt = 0;
  std::vector<int64_t> order;  // position j of the permuted layout holds column order[j]
  std::vector<T> Xp, Xtp;
  const T* Xs = nullptr;
  const T* Xts = nullptr;
  int64_t S = 1, Kout = 1, nbuf = 1, zs = 16;  // zs: padded stride of one Zpart slice
  // Sparse inputs: W1 (and its velocity) held transposed, [D, H], during the run; the
  // inputs' non-zeros by row; per model, the step each row of W1T is current at and the
  // powers of its idle-step map.
  bool sparse = false;
  Csr<T> xtr;                // training rows in use
  std::vector<Csr<T>> xchunk;  // per thread: the test rows of an evaluation chunk
  std::vector<AlignedArray<T>> w1t, v1t;  // [K][D, ldw1]: W1T and its velocity
  int64_t ldw1 = 0;
  std::vector<std::vector<int64_t>> row_clock;
  std::vector<RowPowers> powers;
  // An evaluation reads W1T with every row brought to the model's step in a copy (its
  // owner thread's), so that the run's own rows are only ever caught up when a batch uses
  // them: the trajectory does not depend on where evaluations fall.
  std::vector<AlignedArray<T>> snap;    // per thread: [D, ldw1]
  std::vector<std::vector<T>> snap_u;   // per thread: one velocity row [H]
  std::vector<const T*> w1_eval;        // per model: the W1T its evaluation reads

  // Evaluation work items and per-thread scratch.
  struct Item {
    int64_t k;
    int kind;  // 0 test chunk, 1 train chunk, 2 parameter check
    int64_t start, len;
    double ce;
    int64_t correct;
    bool finite;
  };
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

  // Training inputs: column layout, W1 permuted or transposed (train_inputs.h).
  void setup_columns();
  void permute_W1(bool inverse);
  void make_work(Work& w, int64_t hs, bool own_shared);
  void setup();
  void setup_sparse();
  void transpose_W1(bool back);
  void catch_up(int64_t k, const int32_t* pixels, int64_t n, int64_t to);
  void snapshot(int64_t k, int64_t to, int tid);
  void gather(Unit& u, int buf);
  // The step (train_step.h).
  void forward_rows(Unit& u, int buf, int64_t r0, int64_t r1);
  void forward_blocks(Unit& u, int buf);
  void partial_logits(Unit& u, int par, int buf);
  void init_velocity(Unit& u);
  void prepare(Unit& u, int64_t t);
  static void apply(T* w, T* v, int64_t n, T c);
  static void apply2d(T* w, T* v, int64_t rows, int64_t n, int64_t ld, T c);
  static void apply_bias(T* b, T* v, const T* g, int64_t n, T mom, T a, T c);
  void step(Unit& u, int64_t t, bool next);
  void sparse_W1_step(Unit& u, int64_t t, const T* dA, T a, T mom, T c, bool last);
  // Evaluation (train_eval.h).
  void eval_chunk(Item& it, T* sc, int tid);
  void add_eval_items(int64_t k, std::vector<Item>& items) const;
  void reduce_eval(int64_t k, const Item* items, int64_t n_items, int64_t e);
  // The schedules (train_schedule.h).
  void call_python(int64_t t);
  void run();
  void run_lockstep();
  void work_on(EvalJob& job, T* sc, int tid);
  void run_dynamic();
};

}  // namespace sgdcore::cpu::sgd
