// The model as the compiled kernels see it: kind and widths, and the offsets of each
// tensor in the flat parameter vector (layout of sgdcore/models.py).
#pragma once
#include <cstdint>

namespace sgdcore {

enum class Kind : int { LogisticBinary = 0, LogisticSoftmax = 1, MLP = 2 };

struct Model {
  Kind kind;
  int64_t D, H, C;  // inputs, hidden units (0 for logistic), classes

  // Width of the output layer: 1 for the binary sigmoid model.
  int64_t K() const { return kind == Kind::LogisticBinary ? 1 : C; }
  int64_t n_params() const {
    return kind == Kind::MLP ? H * D + H + C * H + C : K() * D + K();
  }
  // Offsets into theta. Logistic: W [K, D] at 0, b [K] at K*D.
  // MLP: W1 [H, D] at 0, b1 [H], W2 [C, H], b2 [C].
  int64_t off_W1() const { return 0; }
  int64_t off_b1() const { return kind == Kind::MLP ? H * D : K() * D; }
  int64_t off_W2() const { return H * D + H; }
  int64_t off_b2() const { return H * D + H + C * H; }
};

}  // namespace sgdcore
