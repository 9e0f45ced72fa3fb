// Mini-batch SGD with heavy-ball momentum for a group of K models in one call: the whole
// run (Philox batches, steps, evaluations in chunks) happens here, without the GIL. An
// OpenMP team runs the models with single-threaded BLAS: each thread takes the least
// advanced free model for a chunk of steps (no barrier), or, with fewer models than
// threads, the hidden layer is cut into slices run in lockstep. W1 is updated in blocks:
// one GEMM (beta = 1) into its velocity buffer, which holds m v - c W1 between steps, one
// fused pass (W1 += v, next m v - c W1), and the next step's forward on the hot block.
// Input columns that are zero in every training row are left out of the GEMMs. Sparse
// inputs (most pixels 0) take the path of cpu/sparse_inputs.h instead of the first
// layer's GEMMs. Denormals are flushed to zero inside the run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#define SGDCORE_HAVE_MXCSR 1
#endif
#ifdef SGDCORE_OPENMP
#include <omp.h>
#endif

#include "common/bind.h"
#include "common/checks.h"
#include "common/philox.h"
#include "cpu/elementwise.h"
#include "cpu/forward_backward.h"
#include "cpu/sparse_inputs.h"

namespace sgdcore::cpu::sgd {

// MXCSR bits: flush-to-zero (results) and denormals-are-zero (inputs).
class FlushDenormals {
 public:
  FlushDenormals() {
#ifdef SGDCORE_HAVE_MXCSR
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040u);
#endif
  }
  ~FlushDenormals() {
#ifdef SGDCORE_HAVE_MXCSR
    _mm_setcsr(saved_);
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
};

// The element-wise loops of a step are compiled for AVX-512, AVX2 and baseline x86-64 and
// picked at load time (SGD_MULTIVERSION, GCC function multiversioning), since the build
// itself targets baseline x86-64.

// W1 block after its GEMM: w += v, then v = m v - c w (the next step's u), or only
// w += v on the last step.
#define SGD_DEFINE_UPDATE(T)                                                             \
  SGD_MULTIVERSION void update_block(T* __restrict w, T* __restrict v, int64_t n, T mom, \
                                     T c, bool last) {                                   \
    if (last) {                                                                          \
      for (int64_t i = 0; i < n; ++i) w[i] += v[i];                                      \
    } else if (c != T(0)) {                                                              \
      for (int64_t i = 0; i < n; ++i) {                                                  \
        const T wi = w[i] + v[i];                                                        \
        w[i] = wi;                                                                       \
        v[i] = mom * v[i] - c * wi;                                                      \
      }                                                                                  \
    } else {                                                                             \
      for (int64_t i = 0; i < n; ++i) {                                                  \
        w[i] += v[i];                                                                    \
        v[i] *= mom;                                                                     \
      }                                                                                  \
    }                                                                                    \
  }
SGD_DEFINE_UPDATE(float)
SGD_DEFINE_UPDATE(double)
#undef SGD_DEFINE_UPDATE

// C[M, N] = alpha op(A) op(B) + beta C; up to SGD_GEMV_ROWS rows of A as GEMVs.
#ifndef SGD_GEMV_ROWS
#define SGD_GEMV_ROWS 8
#endif
template <class T>
void mm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
        const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= SGD_GEMV_ROWS && !ta) {
    // Row by row, c_i = alpha op(B)^T a_i + beta c_i: no packing of B, which a GEMM this
    // thin would copy once for a few rows of work.
    for (int64_t i = 0; i < M; ++i) {
      if (tb)
        blas::gemv<T>(false, N, K, alpha, B, ldb, A + i * lda, beta, C + i * ldc);
      else
        blas::gemv<T>(true, K, N, alpha, B, ldb, A + i * lda, beta, C + i * ldc);
    }
    return;
  }
  if (M == 1 && lda == 1) {
    if (tb)
      blas::gemv<T>(false, N, K, alpha, B, ldb, A, beta, C);
    else
      blas::gemv<T>(true, K, N, alpha, B, ldb, A, beta, C);
    return;
  }
  blas::gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

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

  // Decide the column layout; permute W1's columns of every model when it pays. The
  // layout depends on the data alone (all N training rows, not the group's n_train), so
  // a model's arithmetic does not depend on the group it runs in.
  void setup_columns() {
    const int64_t D = m.D, n_pool = *std::max_element(n_train, n_train + K);
    Dx = Dt = D;
    Xs = X;
    Xts = Xte;
    if (m.kind != Kind::MLP) return;
    std::vector<char> tr(D, 0), te(D, 0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t d = 0; d < D; ++d) tr[d] |= X[i * D + d] != T(0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t d = 0; d < D; ++d) te[d] |= Xte[i * D + d] != T(0);
    order.clear();
    for (int64_t d = 0; d < D; ++d)
      if (tr[d]) order.push_back(d);
    const int64_t d1 = int64_t(order.size());
    for (int64_t d = 0; d < D; ++d)
      if (!tr[d] && te[d]) order.push_back(d);
    const int64_t d2 = int64_t(order.size());
    // Worth it when at least 1/16 of the columns go; keep at least one column.
    if (d1 == 0 || 16 * (D - d1) < D) {
      order.clear();
      return;
    }
    for (int64_t d = 0; d < D; ++d)
      if (!tr[d] && !te[d]) order.push_back(d);
    Dx = d1;
    Dt = std::max<int64_t>(d2, 1);
    Xp.resize(n_pool * Dx);
    for (int64_t i = 0; i < n_pool; ++i)
      for (int64_t j = 0; j < Dx; ++j) Xp[i * Dx + j] = X[i * D + order[j]];
    Xtp.resize(M * Dt);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < Dt; ++j) Xtp[i * Dt + j] = Xte[i * D + order[j]];
    Xs = Xp.data();
    Xts = Xtp.data();
    permute_W1(false);
  }

  // W1[:, j] <- W1[:, order[j]] (forward) or back (inverse), every model.
  void permute_W1(bool inverse) {
    if (order.empty()) return;
    const int64_t D = m.D;
    std::vector<T> row(D);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t h = 0; h < m.H; ++h) {
        T* w = th(k) + h * D;
        std::copy(w, w + D, row.begin());
        for (int64_t j = 0; j < D; ++j) {
          if (inverse)
            w[order[j]] = row[j];
          else
            w[j] = row[order[j]];
        }
      }
  }

  void make_work(Work& w, int64_t hs, bool own_shared) {
    w.idx.assign(B, 0);
    w.Xb.assign(nbuf * B * Dx, T(0));
    w.dld = sparse ? padded<T>(hs) : hs;
    w.dA.assign(B * w.dld, T(0));
    w.Z.assign(B * Kout, T(0));
    w.g.assign(std::max<int64_t>(hs, Kout), T(0));
    if (own_shared) {
      w.A.assign(B * m.H, T(0));
      w.Zpart.assign(2 * S * zs, T(0));
    }
  }

  void setup() {
    Kout = m.K();
    const bool mlp = m.kind == Kind::MLP;
    S = mlp ? std::max<int64_t>(1, std::min<int64_t>(plan.slices, std::max<int64_t>(1, m.H / 16)))
            : 1;
    sparse = plan.sparse && mlp && S == 1;
    if (sparse)
      setup_sparse();
    else
      setup_columns();
    nbuf = (mlp && plan.fuse && !sparse) ? 2 : 1;
    zs = (B * Kout + 15) / 16 * 16;
    velocity.resize(K);
    for (auto& v : velocity) {
      v.reset(static_cast<T*>(std::calloc(P, sizeof(T))));
      if (!v) throw std::bad_alloc();
    }
    units.reserve(K * S);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t s = 0; s < S; ++s) {
        int64_t h0 = 0, h1 = 0;
        if (mlp) {  // slice boundaries on multiples of 16 columns (no false sharing)
          auto edge = [&](int64_t q) {
            return q == S ? m.H : std::min<int64_t>(m.H, (q * m.H / S) / 16 * 16);
          };
          h0 = edge(s);
          h1 = edge(s + 1);
        }
        units.push_back(Unit{k, s, h0, h1, philox::BatchStream(seeds[k], n_train[k])});
      }
    if (S > 1) {  // lockstep: a workspace per unit, activations and logits per model
      works.resize(units.size());
      shared_A.resize(K);
      shared_Z.resize(K);
      for (int64_t k = 0; k < K; ++k) {
        shared_A[k].assign(B * m.H, T(0));
        shared_Z[k].assign(2 * S * zs, T(0));
      }
      for (size_t q = 0; q < units.size(); ++q) {
        Unit& u = units[q];
        make_work(works[q], u.h1 - u.h0, false);
        u.w = &works[q];
        u.A = shared_A[u.k].data();
        u.Zpart = shared_Z[u.k].data();
      }
    } else {  // dynamic: a workspace per thread, lent to the model it runs
      works.resize(plan.threads);
      for (Work& w : works) {
        make_work(w, mlp ? m.H : 0, true);
        if (sparse) w.cols.reserve(m.D, B * xtr.max_row);
      }
    }
    // Rows per evaluation chunk: from the data's sizes alone (not the group's n_train),
    // so that the chunked sums do not depend on the group.
    eval_rows = std::max<int64_t>(1, std::min<int64_t>(1024, std::max(M, N)));
    scratch.resize(plan.threads);
    for (auto& sc : scratch) sc.assign(eval_rows * (m.H + Kout) + Kout, T(0));
  }

  T* th(int64_t k) { return theta + k * P; }

  // Sparse inputs: the non-zeros of the training rows in use and of the test set, W1
  // transposed in every model, every row current at step 0.
  void setup_sparse() {
    const int64_t D = m.D, n_pool = *std::max_element(n_train, n_train + K);
    Dx = Dt = D;
    Xs = X;
    Xts = Xte;
    xtr.build(X, 0, n_pool, D);
    xchunk.resize(plan.threads);
    transpose_W1(false);
    snap.resize(plan.threads);
    snap_u.assign(plan.threads, std::vector<T>(m.H));
    w1_eval.assign(K, nullptr);
    row_clock.assign(K, std::vector<int64_t>(D, 0));
    powers.resize(K);
    for (int64_t k = 0; k < K; ++k)
      powers[k].reset(double(T(mom[k])), double(T(lr[k] * l2[k] / double(n_train[k]))));
  }

  // theta's W1 [H, D] -> W1T [D, ldw1] (the run's copy), or back, every model.
  void transpose_W1(bool back) {
    const int64_t D = m.D, H = m.H;
    if (!back) {
      ldw1 = padded<T>(H);
      w1t.resize(K);
      v1t.resize(K);
    }
    for (int64_t k = 0; k < K; ++k) {
      T* w = th(k) + m.off_W1();
      if (!back) {
        w1t[k] = aligned_array<T>(D * ldw1);
        v1t[k] = aligned_array<T>(D * ldw1);  // written by init_velocity
        for (int64_t d = 0; d < D; ++d) std::fill_n(w1t[k].get() + d * ldw1 + H, ldw1 - H, T(0));
      }
      if (back)
        transpose_back(w1t[k].get(), ldw1, H, D, 0, D, w);
      else
        transpose_into(w, H, D, 0, D, w1t[k].get(), ldw1);
    }
  }

  // Rows `pixels` (all D rows when null) of model k's W1T and velocity, brought from the
  // step they are current at to step `to` by the idle-step map.
  void catch_up(int64_t k, const int32_t* pixels, int64_t n, int64_t to) {
    const int64_t H = m.H;
    T* w = w1t[k].get();
    T* u = v1t[k].get();
    int64_t* at = row_clock[k].data();
    for (int64_t q = 0; q < n; ++q) {
      const int64_t p = pixels ? pixels[q] : q;
      const int64_t j = to - at[p];
      if (j == 0) continue;
      const double* P2 = powers[k].at(j);
      rows_catch_up(w + p * ldw1, u + p * ldw1, H, T(P2[0]), T(P2[1]), T(P2[2]), T(P2[3]));
      at[p] = to;
    }
  }

  // Model k's W1T with every row brought to step `to` (as catch_up would), written into
  // thread tid's snapshot, which its evaluations then read; the run's rows are left as
  // they are.
  void snapshot(int64_t k, int64_t to, int tid) {
    const int64_t D = m.D, H = m.H;
    if (!snap[tid]) snap[tid] = aligned_array<T>(D * ldw1);
    T* out = snap[tid].get();
    T* uh = snap_u[tid].data();
    const T* w = w1t[k].get();
    const T* u = v1t[k].get();
    const int64_t* at = row_clock[k].data();
    for (int64_t p = 0; p < D; ++p) {
      T* o = out + p * ldw1;
      std::copy(w + p * ldw1, w + (p + 1) * ldw1, o);
      const int64_t j = to - at[p];
      if (j == 0) continue;
      std::copy(u + p * ldw1, u + p * ldw1 + H, uh);
      const double* P2 = powers[k].at(j);
      rows_catch_up(o, uh, H, T(P2[0]), T(P2[1]), T(P2[2]), T(P2[3]));
    }
    w1_eval[k] = out;
  }

  void gather(Unit& u, int buf) {
    T* dst = u.w->Xb.data() + buf * B * Dx;
    const int64_t* idx = u.w->idx.data();
    for (int64_t j = 0; j < B; ++j) std::memcpy(dst + j * Dx, Xs + idx[j] * Dx, sizeof(T) * Dx);
  }

  // A[:, h0:h1] = relu(Xb W1[h0:h1]^T + b1) for rows [r0, r1) of W1.
  void forward_rows(Unit& u, int buf, int64_t r0, int64_t r1) {
    const int64_t D = m.D, H = m.H;
    const T* t = th(u.k);
    T* A = u.A;
    mm<T>(false, true, B, r1 - r0, Dx, T(1), u.w->Xb.data() + buf * B * Dx, Dx, t + r0 * D, D,
          T(0), A + r0, H);
    bias_relu(A, H, t + m.off_b1(), B, r0, r1);
  }

  // The unit's whole forward, in the blocks of rows the fused update computes it in
  // (step), so that a batch's activations are the same whichever of the two computes them.
  void forward_blocks(Unit& u, int buf) {
    const int64_t br = std::max<int64_t>(1, plan.block_rows);
    for (int64_t r0 = u.h0; r0 < u.h1; r0 += br) forward_rows(u, buf, r0, std::min(u.h1, r0 + br));
  }

  // Zpart[par][s] = this unit's share of the logits of the current batch.
  void partial_logits(Unit& u, int par, int buf) {
    T* zp = u.Zpart + (par * S + u.s) * zs;
    const T* t = th(u.k);
    if (m.kind == Kind::MLP) {
      mm<T>(false, true, B, Kout, u.h1 - u.h0, T(1), u.A + u.h0, m.H,
            t + m.off_W2() + u.h0, m.H, T(0), zp, Kout);
      if (u.s == 0) {
        const T* b2 = t + m.off_b2();
        for (int64_t j = 0; j < B; ++j)
          for (int64_t c = 0; c < Kout; ++c) zp[j * Kout + c] += b2[c];
      }
      return;
    }
    mm<T>(false, true, B, Kout, m.D, T(1), u.w->Xb.data() + buf * B * Dx, Dx, t, m.D, T(0), zp,
          Kout);
    const T* b = t + m.off_b1();
    for (int64_t j = 0; j < B; ++j)
      for (int64_t c = 0; c < Kout; ++c) zp[j * Kout + c] += b[c];
  }

  // W1's velocity buffer starts as u = m v - c W1 with v = 0 (see step).
  void init_velocity(Unit& u) {
    if (m.kind != Kind::MLP) return;
    const T c = T(lr[u.k] * l2[u.k] / double(n_train[u.k]));
    if (sparse) {  // W1T and its velocity, [D, ldw1] (one unit per model)
      const T* w = w1t[u.k].get();
      T* vw = v1t[u.k].get();
      for (int64_t i = 0; i < m.D * ldw1; ++i) vw[i] = -c * w[i];
      return;
    }
    const T* w = th(u.k) + u.h0 * m.D;
    T* vw = velocity[u.k].get() + u.h0 * m.D;
    for (int64_t i = 0; i < (u.h1 - u.h0) * m.D; ++i) vw[i] = -c * w[i];
  }

  // Batch, inputs and logits of step t (the first step of a run or of a chunk).
  void prepare(Unit& u, int64_t t) {
    const int par = int(t & 1), buf = nbuf == 2 ? par : 0;
    u.stream.next(B, u.w->idx.data());
    if (sparse) {
      BatchColumns<T>& bc = u.w->cols;
      bc.build(xtr, u.w->idx.data(), B);
      catch_up(u.k, bc.pixels.data(), int64_t(bc.pixels.size()), t);
      const T* t_ = th(u.k);
      sparse_forward(xtr, u.w->idx.data(), 0, B, w1t[u.k].get(), ldw1, u.h0, u.h1, u.A, m.H,
                     m.D);
      bias_relu(u.A, m.H, t_ + m.off_b1(), B, u.h0, u.h1);
      u.clock = t;
    } else {
      gather(u, buf);
      if (m.kind == Kind::MLP) forward_blocks(u, buf);
    }
    partial_logits(u, par, buf);
  }

  // v = m v - a G - c w; w += v over n elements, G already folded into v by the GEMM.
  static void apply(T* w, T* v, int64_t n, T c) {
    if (c != T(0))
      for (int64_t i = 0; i < n; ++i) {
        v[i] -= c * w[i];
        w[i] += v[i];
      }
    else
      for (int64_t i = 0; i < n; ++i) w[i] += v[i];
  }
  // Small strided variant: v[r, :n] for `rows` rows with leading dimension ld.
  static void apply2d(T* w, T* v, int64_t rows, int64_t n, int64_t ld, T c) {
    for (int64_t r = 0; r < rows; ++r) apply(w + r * ld, v + r * ld, n, c);
  }
  // Bias: v = m v - a g - c b; b += v.
  static void apply_bias(T* b, T* v, const T* g, int64_t n, T mom, T a, T c) {
    for (int64_t i = 0; i < n; ++i) {
      v[i] = mom * v[i] - a * g[i] - c * b[i];
      b[i] += v[i];
    }
  }

  // One SGD step of one unit at step t; the batch, its inputs and logits are ready. When
  // `next` (step t + 1 follows in this chunk) it also prepares step t + 1's.
  void step(Unit& u, int64_t t, bool next) {
    if (u.frozen) return;
    const int64_t k = u.k, D = m.D, H = m.H;
    const int par = int(t & 1);
    const int cur = nbuf == 2 ? par : 0, nxt = nbuf == 2 ? 1 - par : 0;
    const bool last = t + 1 == steps;  // no later step: the velocity need not be prepared
    Work& wk = *u.w;
    T* t_ = th(k);
    T* v = velocity[k].get();
    const T mom = T(this->mom[k]), a = T(lr[k] / double(B)),
            c = T(lr[k] * l2[k] / double(n_train[k]));
    // Logits of the batch (sum of the slices' shares, in slice order), residual, loss.
    T* Z = wk.Z.data();
    const T* zp = u.Zpart + par * S * zs;
    std::memcpy(Z, zp, sizeof(T) * B * Kout);
    for (int64_t s = 1; s < S; ++s)
      for (int64_t i = 0; i < B * Kout; ++i) Z[i] += zp[s * zs + i];
    const int64_t* y = Y + k * N;
    double loss = 0.0;
    if (Kout == 1) {
      for (int64_t j = 0; j < B; ++j) {
        const T z = Z[j];
        const int64_t lab = y[wk.idx[j]];
        loss += double(binary_xent(z, lab));
        Z[j] = sigmoid(z) - T(lab);
      }
    } else {
      for (int64_t j = 0; j < B; ++j) {
        const int64_t lab = y[wk.idx[j]];
        loss += double(softmax_xent(Z + j * Kout, Kout, lab, Z + j * Kout));
        Z[j * Kout + lab] -= T(1);
      }
    }
    if (!std::isfinite(loss)) {
      u.frozen = true;
      if (u.s == 0) div_step[k] = t;
      return;
    }
    const T* R = Z;
    T* g = wk.g.data();
    if (m.kind != Kind::MLP) {
      // W [Kout, D], b [Kout].
      mm<T>(true, false, Kout, D, B, -a, R, Kout, wk.Xb.data(), Dx, mom, v, D);
      apply(t_, v, Kout * D, c);
      std::fill(g, g + Kout, T(0));
      for (int64_t j = 0; j < B; ++j)
        for (int64_t q = 0; q < Kout; ++q) g[q] += R[j * Kout + q];
      apply_bias(t_ + m.off_b1(), v + m.off_b1(), g, Kout, mom, a, c);
      if (next) {
        u.stream.next(B, wk.idx.data());
        gather(u, 0);
        partial_logits(u, 1 - par, 0);
      }
      return;
    }
    const int64_t h0 = u.h0, hs = u.h1 - u.h0, C = m.C;
    const T* A = u.A;
    T* W2 = t_ + m.off_W2();
    T* vW2 = v + m.off_W2();
    // dA = (R W2[:, slice]) * (A > 0), with W2 before its update.
    T* dA = wk.dA.data();
    const int64_t dld = wk.dld;
    mm<T>(false, false, B, hs, C, T(1), R, C, W2 + h0, H, T(0), dA, dld);
    relu_mask(dA, dld, hs, A + h0, H, B);
    // W2[:, slice] and b2 (slice 0).
    mm<T>(true, false, C, hs, B, -a, R, C, A + h0, H, mom, vW2 + h0, H);
    apply2d(W2 + h0, vW2 + h0, C, hs, H, c);
    if (u.s == 0) {
      std::fill(g, g + C, T(0));
      for (int64_t j = 0; j < B; ++j)
        for (int64_t q = 0; q < C; ++q) g[q] += R[j * C + q];
      apply_bias(t_ + m.off_b2(), v + m.off_b2(), g, C, mom, a, c);
    }
    // b1[slice].
    std::fill(g, g + hs, T(0));
    for (int64_t j = 0; j < B; ++j)
      for (int64_t h = 0; h < hs; ++h) g[h] += dA[j * dld + h];
    apply_bias(t_ + m.off_b1() + h0, v + m.off_b1() + h0, g, hs, mom, a, c);
    if (sparse) {
      sparse_W1_step(u, t, dA, a, mom, c, last);
      if (next) prepare(u, t + 1);
      return;
    }
    // The next batch: into the other buffer when fused (the current one is still needed).
    if (next && nbuf == 2) {
      u.stream.next(B, wk.idx.data());
      gather(u, nxt);
    }
    // W1[slice] block by block. Its velocity buffer holds u = m v - c W1 between steps,
    // so one GEMM (beta = 1) gives v = u - a dA^T Xb and one pass does W1 += v and
    // prepares the next u; the next step's forward reads the block while it is in cache.
    const T* Xb = wk.Xb.data() + cur * B * Dx;
    const int64_t br = std::max<int64_t>(1, plan.block_rows);
    for (int64_t r0 = h0; r0 < u.h1; r0 += br) {
      const int64_t r1 = std::min(u.h1, r0 + br), n = (r1 - r0) * D;
      T* w = t_ + r0 * D;
      T* vw = v + r0 * D;
      blas::gemm<T>(true, false, r1 - r0, Dx, B, -a, dA + (r0 - h0), dld, Xb, Dx, T(1), vw, D);
      if (Dx == D || c != T(0))
        update_block(w, vw, n, mom, c, last);
      else  // dropped columns: no gradient, no decay, v stays 0: nothing to do
        for (int64_t r = 0; r < r1 - r0; ++r) update_block(w + r * D, vw + r * D, Dx, mom, c, last);
      if (next && nbuf == 2) forward_rows(u, nxt, r0, r1);
    }
    if (!next) return;
    if (nbuf == 1) {
      u.stream.next(B, wk.idx.data());
      gather(u, 0);
      forward_blocks(u, 0);
    }
    partial_logits(u, 1 - par, nxt);
  }

  // W1T rows of the batch's pixels at step t (current, see prepare): v = u - a G with
  // G[p, :] = sum_i x_ip dA[i, :], w += v, u = m v - c w; by column blocks so dA's block
  // stays in L2.
  void sparse_W1_step(Unit& u, int64_t t, const T* dA, T a, T mom, T c, bool last) {
    const int64_t H = m.H, h0 = u.h0, hs = u.h1 - u.h0;
    const BatchColumns<T>& bc = u.w->cols;
    const int64_t np = int64_t(bc.pixels.size());
    T* w = w1t[u.k].get();
    T* uv = v1t[u.k].get();
    T* g = u.w->g.data();
    const int64_t bw = column_block<T>(B);
    for (int64_t c0 = 0; c0 < hs; c0 += bw) {
      const int64_t n = std::min(hs, c0 + bw) - c0;
      for (int64_t q = 0; q < np; ++q) {
        const int64_t p = bc.pixels[q], s0 = bc.start[q];
        sparse_rows_dot(g, dA + c0, u.w->dld, bc.row.data() + s0, bc.val.data() + s0,
                         bc.start[q + 1] - s0, n);
        const int64_t off = p * ldw1 + h0 + c0;
        rows_step(w + off, uv + off, g, n, a, mom, c, last);
      }
    }
    int64_t* at = row_clock[u.k].data();
    for (int64_t q = 0; q < np; ++q) at[bc.pixels[q]] = t + 1;
    u.clock = t + 1;
  }

  // Cross-entropy sum and correct count of model k on rows [s, s+n) of (Xs, ys).
  void eval_chunk(Item& it, T* sc, int tid) {
    const T* t_ = th(it.k);
    if (it.kind == 2) {
      bool ok = true;
      for (int64_t i = 0; i < P; ++i) ok &= std::isfinite(t_[i]);
      if (sparse)  // W1 lives in its transposed copy during the run
        for (int64_t i = 0; i < m.D * ldw1; ++i) ok &= std::isfinite(w1_eval[it.k][i]);
      it.finite = ok;
      return;
    }
    const int64_t ld = it.kind == 0 ? Dt : Dx;
    const T* Xc = (it.kind == 0 ? Xts : Xs) + it.start * ld;
    const int64_t* ys = it.kind == 0 ? yte : Y + it.k * N;
    T* A = sc;
    T* Z = sc + eval_rows * m.H;
    T* p = Z + eval_rows * Kout;
    const int64_t n = it.len;
    if (m.kind == Kind::MLP) {
      const int64_t H = m.H, C = m.C;
      if (sparse && it.kind == 0) {
        Csr<T>& xc = xchunk[tid];
        xc.build(Xte, it.start, n, m.D);
        sparse_forward(xc, nullptr, 0, n, w1_eval[it.k], ldw1, 0, H, A, H, m.D);
      } else if (sparse) {
        sparse_forward(xtr, nullptr, it.start, n, w1_eval[it.k], ldw1, 0, H, A, H, m.D);
      }
      else {
        blas::gemm<T>(false, true, n, H, ld, T(1), Xc, ld, t_ + m.off_W1(), m.D, T(0), A, H);
      }
      bias_relu(A, H, t_ + m.off_b1(), n, 0, H);
      blas::gemm<T>(false, true, n, C, H, T(1), A, H, t_ + m.off_W2(), H, T(0), Z, C);
      const T* b2 = t_ + m.off_b2();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < C; ++c) Z[i * C + c] += b2[c];
    } else {
      forward(m, t_, Xc, n, A, Z);  // logistic: full columns (ld == D)
    }
    double ce = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* z = Z + i * Kout;
      const int64_t lab = ys[it.start + i];
      if (Kout == 1) {
        ce += double(binary_xent(z[0], lab));
        correct += int64_t(z[0] > T(0)) == lab;
      } else {
        ce += double(softmax_xent(z, Kout, lab, p));
        int64_t best = 0;
        for (int64_t q = 1; q < Kout; ++q)
          if (z[q] > z[best]) best = q;
        correct += best == lab;
      }
    }
    it.ce = ce;
    it.correct = correct;
  }

  // Evaluation items of model k: test chunks, training chunks, the parameter check.
  void add_eval_items(int64_t k, std::vector<Item>& items) const {
    for (int64_t s = 0; s < M; s += eval_rows)
      items.push_back(Item{k, 0, s, std::min(eval_rows, M - s), 0.0, 0, true});
    for (int64_t s = 0; s < n_train[k]; s += eval_rows)
      items.push_back(Item{k, 1, s, std::min(eval_rows, n_train[k] - s), 0.0, 0, true});
    items.push_back(Item{k, 2, 0, 0, 0.0, 0, true});
  }

  // Writes evaluation e of model k from its items (fixed order); NaN metrics when its
  // parameters are not finite. Only a non-finite mini-batch loss stops a model (see
  // step): evaluations never change a run.
  void reduce_eval(int64_t k, const Item* items, int64_t n_items, int64_t e) {
    double test_ce = 0.0, train_ce = 0.0;
    int64_t correct = 0;
    bool finite = true;
    for (int64_t i = 0; i < n_items; ++i) {
      const Item& it = items[i];
      if (it.k != k) continue;
      if (it.kind == 0) {
        test_ce += it.ce;
        correct += it.correct;
      } else if (it.kind == 1) {
        train_ce += it.ce;
      } else {
        finite = it.finite;
      }
    }
    double* out = metrics + (k * E + e) * 3;
    out[0] = double(correct) / double(M);
    out[1] = test_ce / double(M);
    out[2] = train_ce / double(n_train[k]);
    if (!finite) std::fill(out, out + 3, double(NAN));
  }

  // With the GIL: pending signals and progress(t); on error keep it set and stop.
  void call_python(int64_t t) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      abort = true;
      return;
    }
    if (progress.is_none()) return;
    try {
      progress(t);
    } catch (py::error_already_set& err) {
      err.restore();
      abort = true;
    }
  }

  void run() {
    setup();
    if (S > 1)
      run_lockstep();
    else
      run_dynamic();
    if (sparse) {  // every row of W1 brought to the step its model stopped at
      for (int64_t k = 0; k < K; ++k) catch_up(k, nullptr, m.D, units[k].clock);
      transpose_W1(true);
    } else
      permute_W1(true);
  }

  // Slices of one model run on different threads: all units advance in lockstep, one
  // barrier per step; evaluations are shared out item by item.
  void run_lockstep() {
    std::vector<Item> items;
    auto last_call = std::chrono::steady_clock::now();
#ifdef SGDCORE_OPENMP
#pragma omp parallel num_threads(plan.threads)
#endif
    {
#ifdef SGDCORE_OPENMP
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
      const int tid = 0, nth = 1;
#endif
      FlushDenormals ftz;
      const int64_t U = int64_t(units.size());
      for (int64_t q = tid; q < U; q += nth) {
        init_velocity(units[q]);
        prepare(units[q], 0);
      }
      int64_t e = 0;
#ifdef SGDCORE_OPENMP
#pragma omp barrier
#endif
      for (int64_t t = 0; t <= steps; ++t) {
        if (e < E && evals[e] == t) {
#ifdef SGDCORE_OPENMP
#pragma omp single
#endif
          {
            items.clear();
            for (int64_t k = 0; k < K; ++k)
              if (div_step[k] < 0) add_eval_items(k, items);
          }
          const int64_t I = int64_t(items.size());
#ifdef SGDCORE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
          for (int64_t i = 0; i < I; ++i) eval_chunk(items[i], scratch[tid].data(), tid);
#ifdef SGDCORE_OPENMP
#pragma omp master
#endif
          {
            for (int64_t k = 0; k < K; ++k)
              if (div_step[k] < 0) reduce_eval(k, items.data(), I, e);
            call_python(t);
            last_call = std::chrono::steady_clock::now();
          }
          ++e;
#ifdef SGDCORE_OPENMP
#pragma omp barrier
#endif
        }
        if (abort || t == steps) break;
        for (int64_t q = tid; q < U; q += nth) step(units[q], t, t + 1 < steps);
#ifdef SGDCORE_OPENMP
#pragma omp master
#endif
        {
          const auto now = std::chrono::steady_clock::now();
          if (now - last_call > std::chrono::milliseconds(200)) {
            call_python(t + 1);
            last_call = now;
          }
        }
#ifdef SGDCORE_OPENMP
#pragma omp barrier
#endif
      }
    }
    if (!abort && (E == 0 || evals[E - 1] != steps)) call_python(steps);
  }

  // One evaluation shared between the model's owner and idle threads.
  struct EvalJob {
    std::vector<Item> items;
    std::atomic<int64_t> next{0}, done{0};
    std::atomic<int> helpers{0};
  };

  // Work on a job's items until none is left.
  void work_on(EvalJob& job, T* sc, int tid) {
    const int64_t n = int64_t(job.items.size());
    for (int64_t i = job.next.fetch_add(1); i < n; i = job.next.fetch_add(1)) {
      eval_chunk(job.items[i], sc, tid);
      job.done.fetch_add(1);
    }
  }

  // Models are independent: each thread takes the least advanced free model and runs a
  // chunk of its steps (up to its next evaluation), so no thread waits on another; idle
  // threads help with evaluations in progress.
  void run_dynamic() {
    std::mutex mu;
    std::vector<int64_t> pos(K, 0), next_eval(K, 0);
    std::vector<char> busy(K, 0), done(K, 0), prepared(K, 0);
    std::vector<EvalJob> jobs(K);
    std::vector<EvalJob*> open;  // jobs idle threads may help with
    int64_t n_done = 0;
    auto last_call = std::chrono::steady_clock::now();
    const int64_t chunk = std::max<int64_t>(1, plan.chunk);

    auto evaluate = [&](int64_t k, int64_t t, T* sc, int tid) {
      EvalJob& job = jobs[k];
      if (sparse) snapshot(k, t, tid);
      job.items.clear();
      add_eval_items(k, job.items);
      job.next = 0;
      job.done = 0;
      {
        std::lock_guard<std::mutex> g(mu);
        open.push_back(&job);
      }
      work_on(job, sc, tid);
      {
        std::lock_guard<std::mutex> g(mu);
        open.erase(std::find(open.begin(), open.end(), &job));
      }
      while (job.helpers.load() != 0 || job.done.load() != int64_t(job.items.size()))
        std::this_thread::yield();
      reduce_eval(k, job.items.data(), int64_t(job.items.size()), next_eval[k]);
      ++next_eval[k];
    };

#ifdef SGDCORE_OPENMP
#pragma omp parallel num_threads(plan.threads)
#endif
    {
#ifdef SGDCORE_OPENMP
      const int tid = omp_get_thread_num();
#else
      const int tid = 0;
#endif
      FlushDenormals ftz;
      T* sc = scratch[tid].data();
      for (;;) {
        int64_t k = -1;
        EvalJob* help = nullptr;
        bool finished = false;
        {
          std::lock_guard<std::mutex> g(mu);
          if (abort || n_done == K) {
            finished = true;
          } else {
            for (int64_t q = 0; q < K; ++q)
              if (!busy[q] && !done[q] && (k < 0 || pos[q] < pos[k])) k = q;
            if (k >= 0) {
              busy[k] = 1;
            } else if (!open.empty()) {
              help = open.front();
              help->helpers.fetch_add(1);
            }
          }
        }
        if (finished) break;
        if (k >= 0) {
          Unit& u = units[k];
          if (!prepared[k]) {
            init_velocity(u);
            prepared[k] = 1;
          }
          int64_t t = pos[k];
          if (next_eval[k] < E && evals[next_eval[k]] == t && !u.frozen) evaluate(k, t, sc, tid);
          bool finish = t == steps || u.frozen;
          if (!finish) {
            int64_t stop = std::min(steps, t + chunk);
            if (next_eval[k] < E) stop = std::min(stop, evals[next_eval[k]]);
            u.w = &works[tid];
            u.A = works[tid].A.data();
            u.Zpart = works[tid].Zpart.data();
            prepare(u, t);
            for (; t < stop && !u.frozen; ++t) step(u, t, t + 1 < stop);
            finish = u.frozen || (t == steps && (next_eval[k] >= E || evals[next_eval[k]] != t));
          }
          {
            std::lock_guard<std::mutex> g(mu);
            pos[k] = t;
            busy[k] = 0;
            if (finish) {
              done[k] = 1;
              ++n_done;
            }
          }
        } else if (help) {
          work_on(*help, sc, tid);
          help->helpers.fetch_sub(1);
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        if (tid == 0) {
          const auto now = std::chrono::steady_clock::now();
          if (now - last_call > std::chrono::milliseconds(200)) {
            int64_t lo;
            {
              std::lock_guard<std::mutex> g(mu);
              lo = *std::min_element(pos.begin(), pos.end());
            }
            call_python(lo);  // sets abort on error; read under the lock above
            last_call = now;
          }
        }
      }
    }
    // Progress after the last evaluation.
    if (!abort) call_python(steps);
  }
};

template <class T>
void call(const Model& mod, const py::array& X, const py::array& Y, const py::array& Xte,
          const py::array& yte, const py::array& theta, const py::array& seeds,
          const py::array& n_train, const py::array& lr, const py::array& mom,
          const py::array& l2, int64_t B, int64_t steps, const py::array& evals,
          const py::array& metrics, const py::array& div_step, const Plan& plan,
          const py::object& progress) {
  Run<T> r;
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
  SGD_CHECK(plan.threads >= 1 && plan.slices >= 1 && plan.block_rows >= 1 && plan.chunk >= 1,
            "threads, slices, block_rows and chunk must be >= 1");
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
         int threads, int slices, int block_rows, bool fuse, int64_t chunk, bool sparse,
         const py::object& progress) {
        const Model mod = checked_model(kind, D, H, C);
        const Plan plan{threads, slices, block_rows, fuse, chunk, sparse};
        if (is_float32(theta))
          call<float>(mod, X, Y, Xte, yte, theta, seeds, n_train, lr, mom, l2, B, steps, evals,
                      metrics, div_step, plan, progress);
        else
          call<double>(mod, X, Y, Xte, yte, theta, seeds, n_train, lr, mom, l2, B, steps,
                       evals, metrics, div_step, plan, progress);
      },
      py::arg("kind"), py::arg("D"), py::arg("H"), py::arg("C"), py::arg("X"), py::arg("Y"),
      py::arg("X_test"), py::arg("y_test"), py::arg("theta"), py::arg("seeds"),
      py::arg("n_train"), py::arg("lr"), py::arg("momentum"), py::arg("l2"),
      py::arg("batch_size"), py::arg("steps"), py::arg("eval_steps"), py::arg("metrics"),
      py::arg("div_step"), py::arg("threads") = 1, py::arg("slices") = 1,
      py::arg("block_rows") = 64, py::arg("fuse") = true, py::arg("chunk") = 16,
      py::arg("sparse") = false,
      py::arg("progress") = py::none(),
      "Train K models (theta [K, P], in place) with mini-batch SGD and momentum; write the "
      "evaluations into metrics [K, E, 3] (test accuracy, test CE, train CE; means) and the "
      "step each model diverged at into div_step (-1: never).");
}

// The Philox schedule as the engine draws it, for tests and users that check batches.
SGDCORE_BIND(philox) {
  m.def(
      "philox4x32_10",
      [](const py::array& counter, const py::array& key) {
        const uint32_t* c = checked<uint32_t>(counter, "counter", {4});
        const uint32_t* k = checked<uint32_t>(key, "key", {2});
        py::array_t<uint32_t> out(4);
        philox::philox4x32_10(c, k, out.mutable_data());
        return out;
      },
      py::arg("counter"), py::arg("key"), "Philox4x32-10 of one counter (uint32[4], key uint32[2]).");
  m.def(
      "swap_partners",
      [](uint64_t seed, uint32_t epoch, const py::array& positions) {
        const int64_t* p = checked<int64_t>(positions, "positions", {-1});
        const int64_t n = positions.shape(0);
        for (int64_t q = 0; q < n; ++q)
          SGD_CHECK(p[q] >= 1 && p[q] < (int64_t(1) << 32) - 1, "positions[", q, "] = ", p[q],
                    " must lie in [1, 2^32 - 1)");
        py::array_t<int64_t> out(n);
        const uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
        for (int64_t q = 0; q < n; ++q)
          out.mutable_data()[q] = philox::uniform_below(uint32_t(p[q] + 1), uint32_t(p[q]), epoch, key);
        return out;
      },
      py::arg("seed"), py::arg("epoch"), py::arg("positions"),
      "Fisher-Yates partner j, uniform in [0, i], of each position i of one epoch.");
  m.def(
      "batch_indices",
      [](uint64_t seed, int64_t n, int64_t B, int64_t steps) {
        SGD_CHECK(n >= 1 && n < (int64_t(1) << 32), "n must lie in [1, 2^32), got ", n);
        SGD_CHECK(B >= 1 && B <= n, "batch_size must lie in [1, n], got ", B);
        SGD_CHECK(steps >= 0, "steps must be >= 0, got ", steps);
        py::array_t<int64_t> out({steps, B});
        philox::BatchStream stream(seed, n);
        for (int64_t t = 0; t < steps; ++t) stream.next(B, out.mutable_data() + t * B);
        return out;
      },
      py::arg("seed"), py::arg("n"), py::arg("batch_size"), py::arg("steps"),
      "Mini-batch indices [steps, batch_size] of the engine's Philox schedule.");
}

}  // namespace sgdcore::cpu::sgd
