"""Forward pass, output residual and backward pass of the three models in NumPy.

Every NumPy kernel is assembled from these three functions.
"""

from __future__ import annotations

import numpy as np


def forward(model, theta, X):
    """``(A, Z)``: ReLU activations (MLP, else None) and logits, shape (N, K)."""
    p = model.unflatten(theta)
    if model.kind == "mlp":
        A = X @ p["W1"].T
        A += p["b1"]
        np.maximum(A, 0, out=A)
        return A, A @ p["W2"].T + p["b2"]
    if model.kind == "logistic_binary":
        return None, (X @ p["w"] + p["b"])[:, None]
    return None, X @ p["W"].T + p["b"]


def residual(model, Z, y, *, need_residual=True):
    """``(ce, R)``: summed cross-entropy (float) and ``R = dCE_i/dz_i`` (in place of Z)."""
    n = Z.shape[0]
    if model.kind == "logistic_binary":
        z = Z[:, 0]
        ce = float(np.sum(np.logaddexp(0.0, z) - y * z, dtype=np.float64))
        if need_residual:
            # sigmoid(z) - y, stable for both signs of z
            Z[:, 0] = np.exp(-np.logaddexp(0.0, -z)) - y
        return ce, Z
    m = Z.max(axis=1, keepdims=True)
    Z -= m
    lse = np.log(np.exp(Z).sum(axis=1))
    ce = float(np.sum(lse - Z[np.arange(n), y], dtype=np.float64))
    if need_residual:
        Z -= lse[:, None]
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
        p1 = np.exp(-np.logaddexp(0.0, -Z[:, 0]))
        return np.stack([1 - p1, p1], axis=1)
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)
