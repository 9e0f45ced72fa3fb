// Work sharing on the calling OpenMP team (serial without OpenMP).
#pragma once
#include <algorithm>
#include <cstdint>

#ifdef SGDCORE_OPENMP
#include <omp.h>
#endif

namespace sgdcore::cpu {

// f(r0, r1) on consecutive slices of [0, n), one per thread of the OpenMP team (16-aligned
// boundaries, so slices of a row-major matrix's columns share no cache line).
template <class F>
void split_rows(int64_t n, F f) {
#pragma omp parallel
  {
#ifdef SGDCORE_OPENMP
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int64_t t = 0, nt = 1;
#endif
    const auto edge = [&](int64_t q) { return q == nt ? n : (q * n / nt) / 16 * 16; };
    if (edge(t + 1) > edge(t)) f(edge(t), edge(t + 1));
  }
}

}  // namespace sgdcore::cpu
