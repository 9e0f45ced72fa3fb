// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC 2011) and the mini-batch schedule built
// on it: per-epoch Fisher-Yates permutations, so every backend draws the identical index
// sequence. Mirrored in NumPy by sgdcore/philox.py and in Numba by
// sgdcore/kernels/_numba/train.py; change all three together.
//
// The schedule of a model with seed s on n examples:
//   key      = (s mod 2^32, s >> 32)                      (s in [0, 2^64))
//   counter  = (i, epoch, STREAM_BATCHES, attempt)         (one block gives 4 words)
//   epoch e's permutation: perm = 0..n-1; for i = n-1 down to 1: j = uniform(i + 1) from
//   the words of the blocks attempt = 0, 1, ... in order (Lemire's multiply-shift with
//   rejection, so j is exactly uniform), then swap(perm[i], perm[j]).
//   The index stream is perm_0 ++ perm_1 ++ ...; batch t is positions [tB, (t+1)B).
#pragma once
#include <cstdint>
#include <vector>

#include "common/hostdevice.h"

namespace sgdcore::philox {

constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // key increments (Weyl)
// Counter word 2 of the mini-batch stream ("SGDB"); other uses of Philox pick other words.
constexpr uint32_t STREAM_BATCHES = 0x53474442u;

// out = Philox4x32-10(ctr, key).
SGD_HD void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; ++r) {
    if (r) {
      k0 += W0;
      k1 += W1;
    }
    const uint64_t p0 = uint64_t(M0) * x0, p1 = uint64_t(M1) * x2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

// Exactly uniform integer in [0, s), 1 <= s <= 2^32 - 1, for Fisher-Yates position i
// (s = i + 1) of epoch `epoch`.
SGD_HD uint32_t uniform_below(uint32_t s, uint32_t i, uint32_t epoch, const uint32_t key[2]) {
  const uint32_t threshold = uint32_t(-s) % s;  // (2^32 - s) mod s
  for (uint32_t attempt = 0;; ++attempt) {
    const uint32_t ctr[4] = {i, epoch, STREAM_BATCHES, attempt};
    uint32_t w[4];
    philox4x32_10(ctr, key, w);
    for (int q = 0; q < 4; ++q) {
      const uint64_t m = uint64_t(w[q]) * s;
      if (uint32_t(m) >= threshold) return uint32_t(m >> 32);
    }
  }
}

// perm = epoch `epoch`'s permutation of 0..n-1 (n >= 1).
SGD_HD void epoch_permutation(uint64_t seed, uint32_t epoch, int64_t n, int64_t* perm) {
  const uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t i = n - 1; i >= 1; --i) {
    const int64_t j = uniform_below(uint32_t(i + 1), uint32_t(i), epoch, key);
    const int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

// The index stream of one model, read forward batch by batch.
class BatchStream {
 public:
  BatchStream(uint64_t seed, int64_t n) : seed_(seed), n_(n), perm_(n) {
    epoch_permutation(seed_, 0, n_, perm_.data());
  }
  // Writes the next `b` indices into idx.
  void next(int64_t b, int64_t* idx) {
    for (int64_t j = 0; j < b; ++j) {
      if (pos_ == n_) {
        ++epoch_;
        pos_ = 0;
        epoch_permutation(seed_, epoch_, n_, perm_.data());
      }
      idx[j] = perm_[pos_++];
    }
  }

 private:
  uint64_t seed_;
  int64_t n_;
  std::vector<int64_t> perm_;
  uint32_t epoch_ = 0;
  int64_t pos_ = 0;
};

}  // namespace sgdcore::philox
