// The Philox schedule of the training engine's mini-batches (common/philox.h), bound for
// the tests and users that check batches.
#include <cstdint>

#include "common/bind.h"
#include "common/checks.h"
#include "common/philox.h"

namespace sgdcore::cpu::sgd {

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
