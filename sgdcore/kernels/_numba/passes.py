"""Forward pass, output residual and backward pass of the three models, compiled.

Models are passed as integers ``(kind, D, H, C)`` (``Model.dims``; kind ids in
``sgdcore/models.py``); the output formulas come from ``sgdcore/kernels/formulas.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...models import KIND_LOGISTIC_BINARY, KIND_MLP
from ..formulas import ce_row, relu, residual_row


@njit(cache=True)
def views(theta, kind, D, H, C):
    """``(W1, b1, W2, b2)``; for logistic models W1/b1 are the weights, W2/b2 empty."""
    if kind == KIND_MLP:
        W1 = theta[: H * D].reshape(H, D)
        b1 = theta[H * D : H * D + H]
        o = H * D + H
        W2 = theta[o : o + C * H].reshape(C, H)
        b2 = theta[o + C * H : o + C * H + C]
        return W1, b1, W2, b2
    K = 1 if kind == KIND_LOGISTIC_BINARY else C
    W = theta[: K * D].reshape(K, D)
    return W, theta[K * D : K * D + K], theta[:0].reshape(0, 1), theta[:0]


@njit(cache=True)
def forward(theta, X, kind, D, H, C):
    """``(A, Z)``: ReLU activations (MLP; empty otherwise) and logits (N, K)."""
    W1, b1, W2, b2 = views(theta, kind, D, H, C)
    n = X.shape[0]
    if kind == KIND_MLP:
        A = np.dot(X, W1.T)
        for i in range(n):
            for j in range(H):
                A[i, j] = relu(A[i, j] + b1[j])
        Z = np.dot(A, W2.T)
        for i in range(n):
            for c in range(C):
                Z[i, c] += b2[c]
        return A, Z
    Z = np.dot(X, W1.T)
    for i in range(n):
        for c in range(Z.shape[1]):
            Z[i, c] += b1[c]
    return np.empty((0, 0), dtype=X.dtype), Z


@njit(cache=True)
def residual(Z, y, kind, need_residual):
    """Summed cross-entropy (float64); writes ``dCE_i/dz_i`` into Z when asked."""
    binary = kind == KIND_LOGISTIC_BINARY
    ce = 0.0
    for i in range(Z.shape[0]):
        ce += ce_row(Z[i], y[i], binary)
        if need_residual:
            residual_row(Z[i], y[i], binary)
    return ce


@njit(cache=True)
def colsum(M, out):
    out[:] = 0.0
    for i in range(M.shape[0]):
        for c in range(M.shape[1]):
            out[c] += M[i, c]


@njit(cache=True)
def backward(theta, X, A, R, grad, kind, D, H, C):
    """Write ``sum_i dCE_i/dtheta`` into ``grad`` from the residual ``R``."""
    W1, b1, W2, b2 = views(theta, kind, D, H, C)
    gW1, gb1, gW2, gb2 = views(grad, kind, D, H, C)
    if kind == KIND_MLP:
        np.dot(R.T, A, gW2)
        colsum(R, gb2)
        dA = np.dot(R, W2)
        for i in range(dA.shape[0]):
            for j in range(H):
                if A[i, j] <= 0:
                    dA[i, j] = 0.0
        np.dot(dA.T, X, gW1)
        colsum(dA, gb1)
    else:
        np.dot(R.T, X, gW1)
        colsum(R, gb1)
