"""The two models of the paper and their flat parameter layout.

Every sgdcore function takes parameters as one flat, C-contiguous vector ``theta``
(float32 or float64). The layout is row-major:

* ``LogisticRegression(D, 2)`` (binary, one sigmoid output): ``[w (D), b]``,
  ``D + 1`` parameters (785 for MNIST, as in the paper).
* ``LogisticRegression(D, C)`` with ``C > 2`` (softmax): ``[W (C x D), b (C)]``.
* ``MLP(D, H, C)`` (one ReLU hidden layer, softmax output):
  ``[W1 (H x D), b1 (H), W2 (C x H), b2 (C)]`` (636,010 parameters for 784-800-10).

Initialisation (``init(seed, dtype)``): He-normal weights, ``W ~ N(0, 2 / fan_in)``,
zero biases, drawn from NumPy's Philox bit generator keyed by ``seed``; the same seed
gives the same ``theta`` in float32 and float64 (float32 is the rounded float64 draw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_int

__all__ = ["LogisticRegression", "MLP", "Model"]

#: Integer ids of the model kinds, as the compiled kernels (Numba and C++,
#: ``csrc/common/model.h``) take them; module-level constants, so Numba folds them.
KIND_LOGISTIC_BINARY = 0
KIND_LOGISTIC_SOFTMAX = 1
KIND_MLP = 2
KIND_IDS = {
    "logistic_binary": KIND_LOGISTIC_BINARY,
    "logistic_softmax": KIND_LOGISTIC_SOFTMAX,
    "mlp": KIND_MLP,
}


class Model:
    """Common base: the flat layout, initialisation and unflattening."""

    kind: str  # "logistic_binary" | "logistic_softmax" | "mlp"
    n_features: int
    n_classes: int

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(s) for _, s in self.shapes))

    @property
    def n_outputs(self) -> int:
        """Width of the output layer: 1 for the binary sigmoid model, else n_classes."""
        return 1 if self.kind == "logistic_binary" else self.n_classes

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """``(kind id, n_features, n_hidden or 0, n_classes)``: the model as the compiled
        kernels take it (kind ids :data:`KIND_IDS`).

        >>> MLP(784, 800, 10).dims
        (2, 784, 800, 10)
        """
        return (
            KIND_IDS[self.kind],
            self.n_features,
            getattr(self, "n_hidden", 0),
            self.n_classes,
        )

    def offsets(self) -> dict[str, slice]:
        """Slice of ``theta`` holding each named tensor."""
        out, start = {}, 0
        for name, shape in self.shapes:
            size = int(np.prod(shape))
            out[name] = slice(start, start + size)
            start += size
        return out

    def unflatten(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Views of ``theta`` shaped as the model's tensors (no copy)."""
        theta = np.asarray(theta)
        if theta.ndim != 1 or theta.shape[0] != self.n_params:
            raise ValueError(
                f"theta must have shape ({self.n_params},) for {self!r}, got {theta.shape}"
            )
        offs = self.offsets()
        return {name: theta[offs[name]].reshape(shape) for name, shape in self.shapes}

    def init(self, seed: int = 0, dtype=np.float64) -> np.ndarray:
        """He-normal weights (std ``sqrt(2 / fan_in)``), zero biases."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        rng = np.random.Generator(np.random.Philox(int(seed)))
        theta = np.zeros(self.n_params, dtype=np.float64)
        offs = self.offsets()
        for name, shape in self.shapes:
            if len(shape) == 2 or (self.kind == "logistic_binary" and name == "w"):
                fan_in = shape[-1]
                theta[offs[name]] = rng.standard_normal(int(np.prod(shape))) * np.sqrt(2.0 / fan_in)
        return theta.astype(dtype)


@dataclass(frozen=True, repr=True)
class LogisticRegression(Model):
    """Logistic regression: binary (one sigmoid output) when ``n_classes == 2``,
    softmax otherwise.
    """

    n_features: int
    n_classes: int = 2

    def __post_init__(self):
        check_int("n_features", self.n_features, 1)
        check_int("n_classes", self.n_classes, 2)

    @property
    def kind(self) -> str:
        return "logistic_binary" if self.n_classes == 2 else "logistic_softmax"

    @property
    def shapes(self):
        D, C = self.n_features, self.n_classes
        if C == 2:
            return [("w", (D,)), ("b", (1,))]
        return [("W", (C, D)), ("b", (C,))]


@dataclass(frozen=True, repr=True)
class MLP(Model):
    """One ReLU hidden layer and a softmax output: ``D -> H -> C``."""

    n_features: int
    n_hidden: int
    n_classes: int

    def __post_init__(self):
        check_int("n_features", self.n_features, 1)
        check_int("n_hidden", self.n_hidden, 1)
        check_int("n_classes", self.n_classes, 2)

    kind = "mlp"

    @property
    def shapes(self):
        D, H, C = self.n_features, self.n_hidden, self.n_classes
        return [("W1", (H, D)), ("b1", (H,)), ("W2", (C, H)), ("b2", (C,))]
