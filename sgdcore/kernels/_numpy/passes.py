"""Forward pass, output residual and backward pass of the three models in NumPy.

Every NumPy kernel is assembled from these three functions.
"""

from __future__ import annotations

import numpy as np

from ..formulas import binary_ce, log_softmax, relu_, sigmoid, softmax


def forward(model, theta, X):
    """``(A, Z)``: ReLU activations (MLP, else None) and logits, shape (N, K)."""
    p = model.unflatten(theta)
    if model.kind == "mlp":
        A = X @ p["W1"].T
        A += p["b1"]
        relu_(A)
        return A, A @ p["W2"].T + p["b2"]
    if model.kind == "logistic_binary":
        return None, (X @ p["w"] + p["b"])[:, None]
    return None, X @ p["W"].T + p["b"]


def residual(model, Z, y, *, need_residual=True):
    """``(ce, R)``: summed cross-entropy (float) and ``R = dCE_i/dz_i`` (in place of Z)."""
    n = Z.shape[0]
    if model.kind == "logistic_binary":
        z = Z[:, 0]
        ce = float(np.sum(binary_ce(z, y), dtype=np.float64))
        if need_residual:
            Z[:, 0] = sigmoid(z) - y
        return ce, Z
    log_softmax(Z)
    ce = -float(np.sum(Z[np.arange(n), y], dtype=np.float64))
    if need_residual:
        np.exp(Z, out=Z)
        Z[np.arange(n), y] -= 1
    return ce, Z


def backward(model, theta, X, A, R, grad):
    """Write ``sum_i dCE_i/dtheta`` into ``grad`` from the residual ``R``."""
    g = model.unflatten(grad)
    if model.kind == "mlp":
        p = model.unflatten(theta)
        np.matmul(R.T, A, out=g["W2"])
        np.sum(R, axis=0, out=g["b2"])
        dA = R @ p["W2"]
        dA *= A > 0
        np.matmul(dA.T, X, out=g["W1"])
        np.sum(dA, axis=0, out=g["b1"])
    elif model.kind == "logistic_binary":
        np.matmul(R[:, 0], X, out=g["w"])
        g["b"][0] = R.sum()
    else:
        np.matmul(R.T, X, out=g["W"])
        np.sum(R, axis=0, out=g["b"])


def proba(model, Z):
    """Class probabilities from logits ``Z`` (binary: ``[1 - p, p]``)."""
    if model.kind == "logistic_binary":
        p1 = sigmoid(Z[:, 0])
        return np.stack([1 - p1, p1], axis=1)
    return softmax(Z.copy())
