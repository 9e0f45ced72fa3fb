"""A synthetic stand-in for MNIST: digit-like inputs labelled by a fixed random teacher.

Inputs look like MNIST at the level the models see: ``n_features`` pixels in [0, 1],
about :data:`DENSITY` of them non-zero, each a multiple of 1/255. Labels are the
argmax of a teacher network whose weights are drawn from a fixed seed
(:data:`TEACHER_SEED`), independent of the data seed, so data sets of different
seeds and sizes share one labelling function. The teacher's output biases are set
so that its logits average zero over a fixed reference sample, which makes every
class occur.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike

from .dataset import Dataset, check_float_dtype, pixels_to_inputs

__all__ = ["DENSITY", "TEACHER_SEED", "TEACHERS", "synthetic"]

#: Fraction of non-zero pixels (MNIST's is about 0.19).
DENSITY = 0.19
#: Seed of the teacher weights and of its reference sample.
TEACHER_SEED = 20180214
#: Hidden width of the ``"mlp"`` teacher.
_HIDDEN = 128
#: Size of the reference sample that centres the teacher's logits.
_N_REFERENCE = 4096

_Teacher = Callable[[np.ndarray], np.ndarray]


def synthetic(
    n: int,
    seed: int = 0,
    *,
    n_features: int = 784,
    n_classes: int = 10,
    teacher: str = "mlp",
    dtype: DTypeLike = np.float32,
) -> Dataset:
    """Draw ``n`` digit-like inputs and label them with a fixed random teacher.

    Parameters
    ----------
    n : int
        Number of examples.
    seed : int
        Seed of the inputs (NumPy ``Generator(Philox(seed))``); the teacher does not
        depend on it.
    n_features : int
        Pixels per input.
    n_classes : int
        Number of classes, at least 2.
    teacher : {"mlp", "linear"}
        ``"mlp"``: ``argmax(W2 relu(W1 x + b1) + b2)`` with ``W1 ~ N(0, 2 / d)``
        (128 hidden units), ``b1 ~ N(0, 1)``, ``W2 ~ N(0, 1 / 128)``.
        ``"linear"``: ``argmax(W x + b)`` with ``W ~ N(0, 1 / d)``.
        In both, ``b`` (``b2``) centres the logits on a fixed reference sample.
    dtype : {numpy.float32, numpy.float64}
        Type of ``X``.

    Returns
    -------
    Dataset
        ``X`` of shape ``[n, n_features]`` with values ``k / 255``, ``y`` int64 in
        ``[0, n_classes)``, ``source="synthetic"``, ``name="synthetic"``,
        ``split="all"``; ``sha256`` covers the pixels (uint8) and labels (int64).
        Labels are computed in float64, so they do not depend on ``dtype``.

    Raises
    ------
    ValueError
        If a size is out of range or ``teacher`` is unknown.
    TypeError
        If ``dtype`` is not float32 or float64.

    Examples
    --------
    >>> data = synthetic(100, seed=1)
    >>> data.X.shape, data.y.shape, bool(data.X.max() <= 1.0)
    ((100, 784), (100,), True)
    """
    dtype = check_float_dtype(dtype)
    for name, value, minimum in (
        ("n", n, 0),
        ("n_features", n_features, 1),
        ("n_classes", n_classes, 2),
    ):
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {sorted(TEACHERS)}, got {teacher!r}")
    pixels = _pixels(np.random.Generator(np.random.Philox(seed)), n, n_features)
    y = _labeller(teacher, n_features, n_classes)(pixels / 255.0).argmax(axis=1).astype(np.int64)
    digest = hashlib.sha256(pixels.tobytes())
    digest.update(y.astype("<i8").tobytes())
    return Dataset(
        X=pixels_to_inputs(pixels, dtype),
        y=y,
        source="synthetic",
        location=f"teacher={teacher}, seed={seed}, n_classes={n_classes}",
        sha256=digest.hexdigest(),
        name="synthetic",
        split="all",
    )


def _pixels(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``[n, d]`` uint8 pixels: zero, or with probability DENSITY uniform on 1..255."""
    on = rng.random((n, d)) < DENSITY
    values = rng.integers(1, 256, size=(n, d), dtype=np.uint8)
    return np.where(on, values, np.uint8(0))


def _mlp(rng: np.random.Generator, d: int, c: int) -> _Teacher:
    W1 = rng.normal(0.0, np.sqrt(2.0 / d), size=(_HIDDEN, d))
    b1 = rng.normal(0.0, 1.0, size=_HIDDEN)
    W2 = rng.normal(0.0, np.sqrt(1.0 / _HIDDEN), size=(c, _HIDDEN))
    return lambda X: np.maximum(X @ W1.T + b1, 0.0) @ W2.T


def _linear(rng: np.random.Generator, d: int, c: int) -> _Teacher:
    W = rng.normal(0.0, np.sqrt(1.0 / d), size=(c, d))
    return lambda X: X @ W.T


#: Teacher name -> constructor ``(rng, n_features, n_classes) -> logits function``.
TEACHERS: dict[str, Callable[[np.random.Generator, int, int], _Teacher]] = {
    "mlp": _mlp,
    "linear": _linear,
}


@functools.lru_cache(maxsize=8)
def _labeller(teacher: str, d: int, c: int) -> _Teacher:
    """The teacher's logits function, with biases centring a fixed reference sample."""
    rng = np.random.Generator(np.random.Philox(TEACHER_SEED))
    logits = TEACHERS[teacher](rng, d, c)
    bias = -logits(_pixels(rng, _N_REFERENCE, d) / 255.0).mean(axis=0)
    return lambda X: logits(X) + bias
