// The schedule of the training engine (train_run.h): how an OpenMP team runs the
// models (each runs whole chunks of steps on one thread) and their evaluations, and the
// calls back into Python for progress and signals. Denormals are flushed to zero inside
// the run.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
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

#include "cpu/train_eval.h"
#include "cpu/train_run.h"
#include "cpu/train_step.h"

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

// With the GIL: pending signals and progress(t); on error keep it set and stop.
template <class T, class L>
inline void Run<T, L>::call_python(int64_t t) {
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

template <class T, class L>
inline void Run<T, L>::run() {
  setup();
  run_dynamic();
  w1.finish(*this);  // W1 back into theta, in the model's own layout
}

// Work on a job's items until none is left.
template <class T, class L>
inline void Run<T, L>::work_on(EvalJob& job, T* sc, int tid) {
  const int64_t n = int64_t(job.items.size());
  for (int64_t i = job.next.fetch_add(1); i < n; i = job.next.fetch_add(1)) {
    eval_chunk(job.items[i], sc, tid);
    job.done.fetch_add(1);
  }
}

// Models are independent: each thread takes the least advanced free model and runs a
// chunk of its steps (up to its next evaluation), so no thread waits on another; idle
// threads help with evaluations in progress.
template <class T, class L>
inline void Run<T, L>::run_dynamic() {
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
    w1.to_date(*this, k, t, tid);
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
          u.tid = tid;
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

}  // namespace sgdcore::cpu::sgd
