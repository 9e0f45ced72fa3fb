// Memory helpers of the CPU kernels: 64-byte aligned storage (a cache line, an AVX-512
// vector), per-thread scratch kept between calls, padded row strides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace sgdcore::cpu {

// Storage whose first element is 64-byte aligned (a cache line, an AVX-512 vector).
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// The same alignment, uninitialised (for buffers written in full before use).
template <class T>
struct AlignedDelete {
  void operator()(T* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
template <class T>
using AlignedArray = std::unique_ptr<T[], AlignedDelete<T>>;
template <class T>
AlignedArray<T> aligned_array(std::size_t n) {
  return AlignedArray<T>(new (std::align_val_t(64)) T[n]);
}

// Aligned scratch of n elements (uninitialised) that a thread keeps for its next call
// with the same slot when it is at most 32 MiB: fresh pages cost a fault each (about a
// millisecond per 4 MiB here), more than the work of a small call. `own` holds larger
// buffers, freed with it.
template <class T>
T* reused_scratch(int slot, std::size_t n, AlignedArray<T>& own) {
  if (n * sizeof(T) > (std::size_t(32) << 20)) {
    own = aligned_array<T>(n);
    return own.get();
  }
  thread_local std::vector<AlignedVector<T>> kept;
  if (kept.size() <= std::size_t(slot)) kept.resize(slot + 1);
  if (kept[slot].size() < n) kept[slot].resize(n);
  return kept[slot].data();
}

// n rounded up to whole 64-byte vectors of T: a row stride that keeps rows aligned.
template <class T>
int64_t padded(int64_t n) {
  const int64_t L = 64 / int64_t(sizeof(T));
  return (n + L - 1) / L * L;
}

}  // namespace sgdcore::cpu
