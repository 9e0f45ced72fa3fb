"""The output-layer and activation formulas every Python kernel uses, written once.

The element-wise functions (:func:`softplus`, :func:`sigmoid`, :func:`relu`,
:func:`binary_ce`) are NumPy ufunc expressions: called from Python on arrays they run
vectorised (the NumPy backend), and they are registered with Numba
(``register_jitable``), so ``njit`` kernels call the same code on scalars. The row
functions (``*_row``) are the per-row loops the compiled kernels fuse; their vectorised
counterparts over the last axis (:func:`log_softmax`, :func:`softmax`) serve the NumPy
backend, and both are tested against each other and against ``sgdcore.reference``.

Semantics shared by every backend: ``softplus(z) = log(1 + e^z)`` and
``sigmoid(z) = exp(-softplus(-z))`` are computed without overflow for either sign of
``z``; the softmax is shifted by the row maximum; ``relu`` propagates NaN (as
``np.maximum`` does), so a diverged model shows NaN rather than a silent zero.

>>> import numpy as np
>>> float(softplus(np.float64(-800.0))), float(softplus(np.float64(800.0)))
(0.0, 800.0)
>>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
[0.0, 0.5, 1.0]
>>> relu(np.array([-1.0, np.nan, 2.0])).tolist()
[0.0, nan, 2.0]
"""

from __future__ import annotations

import numpy as np

try:
    from numba.extending import register_jitable as jitable
except ImportError:  # the NumPy backend works without Numba

    def jitable(fn):
        return fn


__all__ = [
    "binary_ce",
    "ce_row",
    "log_softmax",
    "logsumexp_row",
    "max_row",
    "output_hessian",
    "probabilities_row",
    "relu",
    "relu_",
    "residual_row",
    "sigmoid",
    "softmax",
    "softplus",
]


@jitable
def softplus(z):
    """``log(1 + e^z)`` (``np.logaddexp(0, z)``), stable for either sign of ``z``."""
    return np.logaddexp(0.0, z)


@jitable
def sigmoid(z):
    """``1 / (1 + e^-z) = exp(-softplus(-z))``, stable for either sign of ``z``."""
    return np.exp(-np.logaddexp(0.0, -z))


@jitable
def relu(a):
    """``max(a, 0)``; NaN stays NaN."""
    return np.maximum(a, 0.0)


@jitable
def binary_ce(z, y):
    """Cross-entropy of the sigmoid output with logit ``z`` and label ``y`` in {0, 1}."""
    return np.logaddexp(0.0, z) - y * z


@jitable
def output_hessian(p_c, p_d, same):
    """Entry ``(c, c')`` of the output-layer Hessian ``d2CE/dz2 = diag(p) - p p^T``.

    ``p_c (1 - p_c)`` when ``same`` (``c = c'``; also the binary model's one entry, with
    ``p`` the sigmoid), else ``-p_c p_c'``. Element-wise: scalars in compiled loops,
    columns of the probabilities in the vectorised kernels.
    """
    return p_c * (1.0 - p_c) if same else -p_c * p_d


def relu_(A):
    """:func:`relu` of an array, in place."""
    return np.maximum(A, 0.0, out=A)


# --------------------------------------------------------------- rows (compiled loops)


@jitable
def max_row(z):
    """The largest entry of one row (the first, if NaN)."""
    m = z[0]
    for c in range(1, z.shape[0]):
        if z[c] > m:
            m = z[c]
    return m


@jitable
def logsumexp_row(z):
    """``log sum_c exp(z_c)`` of one row, shifted by its maximum (float64)."""
    m = max_row(z)
    s = 0.0
    for c in range(z.shape[0]):
        s += np.exp(z[c] - m)
    return m + np.log(s)


@jitable
def ce_row(z, label, binary):
    """Cross-entropy of one row of logits ``z`` (one logit when ``binary``), float64."""
    if binary:
        return binary_ce(z[0], label)
    return logsumexp_row(z) - z[label]


@jitable
def probabilities_row(z, binary):
    """Sigmoid (``binary``) or softmax of one row of logits, in place."""
    if binary:
        z[0] = sigmoid(z[0])
        return
    m = max_row(z)
    s = 0.0
    for c in range(z.shape[0]):
        z[c] = np.exp(z[c] - m)
        s += z[c]
    for c in range(z.shape[0]):
        z[c] /= s


@jitable
def residual_row(z, label, binary):
    """``dCE/dz`` of one row written over its logits: probabilities minus the one-hot label."""
    probabilities_row(z, binary)
    if binary:
        z[0] -= label
    else:
        z[label] -= 1.0


# --------------------------------------------------------- last axis (vectorised NumPy)


def log_softmax(Z):
    """``Z - logsumexp(Z)`` along the last axis, in place (shifted by the row maximum)."""
    Z -= Z.max(axis=-1, keepdims=True)
    Z -= np.log(np.exp(Z).sum(axis=-1, keepdims=True))
    return Z


def softmax(Z):
    """Softmax along the last axis, in place (shifted by the row maximum)."""
    Z -= Z.max(axis=-1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=-1, keepdims=True)
    return Z
