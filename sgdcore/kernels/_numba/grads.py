"""Numba per-example kernels: gradients (rows written in parallel over examples), their
squared norms, noise statistics, covariance products and the gradient Gram matrix
(contracts in ``sgdcore/grads.py``). GEMMs go through ``np.dot`` (SciPy's BLAS).

Each kernel starts from the residual pass: activations ``A`` (MLP), ``R = dCE_i/dz_i``
and (MLP) ``dA = relu'(a) * (R W2)``; a dense layer ``z = W a + b`` has per-example
gradient ``(delta_i a_i^T, delta_i)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..._backend import register
from ...models import KIND_MLP
from .passes import backward, forward, residual, views


@njit(cache=True)
def residuals(theta, X, y, kind, D, H, C):
    """``(A, R, dA)``; A and dA are empty for logistic models."""
    A, R = forward(theta, X, kind, D, H, C)
    residual(R, y, kind, True)
    if kind != 2:
        return A, R, np.empty((0, 0), dtype=X.dtype)
    W2 = views(theta, kind, D, H, C)[2]
    dA = np.dot(R, W2)
    for i in range(dA.shape[0]):
        for j in range(H):
            if A[i, j] <= 0:
                dA[i, j] = 0.0
    return A, R, dA


@njit(cache=True)
def _rowsq(M, i):
    s = 0.0
    for j in range(M.shape[1]):
        s += np.float64(M[i, j]) * np.float64(M[i, j])
    return s


@njit(cache=True)
def sqnorms(X, A, R, dA, kind, out):
    """``|g_i|^2``: sum over dense layers of ``|delta_i|^2 (|a_i|^2 + 1)``."""
    for i in range(X.shape[0]):
        if kind == KIND_MLP:
            s = _rowsq(dA, i) * (_rowsq(X, i) + 1.0) + _rowsq(R, i) * (_rowsq(A, i) + 1.0)
        else:
            s = _rowsq(R, i) * (_rowsq(X, i) + 1.0)
        out[i] = s


@njit(cache=True)
def _scaled_copy(row, start, s, x):
    n = x.shape[0]
    if s == 0:
        for j in range(n):
            row[start + j] = 0.0
    else:
        for j in range(n):
            row[start + j] = s * x[j]


@njit(cache=True, parallel=True)
def _write_rows(X, A, R, dA, out, kind, D, H, C):
    """Row i of ``out``: the outer products of example i's dense layers."""
    K = R.shape[1]
    for i in prange(X.shape[0]):
        row = out[i]
        if kind == KIND_MLP:
            for h in range(H):
                _scaled_copy(row, h * D, dA[i, h], X[i])
            o = H * D
            for h in range(H):
                row[o + h] = dA[i, h]
            o += H
            for c in range(C):
                _scaled_copy(row, o + c * H, R[i, c], A[i])
            o += C * H
            for c in range(C):
                row[o + c] = R[i, c]
        else:
            for c in range(K):
                _scaled_copy(row, c * D, R[i, c], X[i])
            for c in range(K):
                row[K * D + c] = R[i, c]


@register("per_example_grads", "numba", threads="blas")
def per_example_grads(model, theta, X, y, out):
    d = model.dims
    A, R, dA = residuals(theta, X, y, *d)
    _write_rows(X, A, R, dA, out, *d)


@njit(cache=True)
def _sqnorms(theta, X, y, out, kind, D, H, C):
    A, R, dA = residuals(theta, X, y, kind, D, H, C)
    sqnorms(X, A, R, dA, kind, out)


@register("per_example_grad_norms", "numba", threads="blas")
def per_example_grad_sqnorms(model, theta, X, y, out):
    _sqnorms(theta, X, y, out, *model.dims)


@njit(cache=True)
def _noise(theta, X, y, grad, out, kind, D, H, C):
    A, R = forward(theta, X, kind, D, H, C)
    residual(R, y, kind, True)
    backward(theta, X, A, R, grad, kind, D, H, C)
    dA = np.empty((0, 0), dtype=X.dtype)
    if kind == KIND_MLP:
        dA = np.dot(R, views(theta, kind, D, H, C)[2])
        for i in range(dA.shape[0]):
            for j in range(H):
                if A[i, j] <= 0:
                    dA[i, j] = 0.0
    sqnorms(X, A, R, dA, kind, out)
    total = 0.0
    for p in range(grad.shape[0]):
        total += np.float64(grad[p]) * np.float64(grad[p])
    return total


@register("gradient_noise", "numba", threads="blas")
def gradient_noise(model, theta, X, y, grad, sqnorms):
    return _noise(theta, X, y, grad, sqnorms, *model.dims)


@njit(cache=True)
def _rowdot(M, U, b, i):
    s = 0.0
    for c in range(M.shape[1]):
        s += np.float64(M[i, c]) * (U[i, c] + b[c])
    return s


@njit(cache=True)
def _cov_matvec(theta, X, y, Vt, shift, out, ssum, kind, D, H, C):
    A, R, dA = residuals(theta, X, y, kind, D, H, C)
    n = X.shape[0]
    s = np.empty(n, dtype=X.dtype)
    for j in range(Vt.shape[0]):
        V1, c1, V2, c2 = views(Vt[j], kind, D, H, C)
        G1, g1, G2, g2 = views(out[j], kind, D, H, C)
        # s_i = g_i . v_j - shift_j
        U1 = np.dot(X, V1.T)
        if kind == KIND_MLP:
            U2 = np.dot(A, V2.T)
        total = 0.0
        for i in range(n):
            if kind == KIND_MLP:
                t = _rowdot(dA, U1, c1, i) + _rowdot(R, U2, c2, i)
            else:
                t = _rowdot(R, U1, c1, i)
            t -= np.float64(shift[j])
            s[i] = t
            total += np.float64(s[i])
        ssum[j] = total
        # sum_i s_i g_i: the backward pass with each residual scaled by s_i
        Rs = R * s.reshape(n, 1)
        if kind == KIND_MLP:
            np.dot(Rs.T, A, G2)
            np.dot((dA * s.reshape(n, 1)).T, X, G1)
            for h in range(H):
                g1[h] = 0.0
            for i in range(n):
                for h in range(H):
                    g1[h] += dA[i, h] * s[i]
            for c in range(C):
                g2[c] = 0.0
            for i in range(n):
                for c in range(C):
                    g2[c] += Rs[i, c]
        else:
            np.dot(Rs.T, X, G1)
            for c in range(g1.shape[0]):
                g1[c] = 0.0
            for i in range(n):
                for c in range(g1.shape[0]):
                    g1[c] += Rs[i, c]


@register("cov_matvec", "numba", threads="blas")
def cov_matvec(model, theta, X, y, Vt, shift, out, ssum):
    _cov_matvec(theta, X, y, Vt, shift, out, ssum, *model.dims)


@njit(cache=True)
def _layer_gram(L, In, out):
    S = np.dot(In, In.T)
    T = np.dot(L, L.T)
    n = S.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] += T[i, j] * (S[i, j] + 1.0)


@njit(cache=True)
def _grad_gram(theta, X, y, out, kind, D, H, C):
    A, R, dA = residuals(theta, X, y, kind, D, H, C)
    out[:] = 0.0
    if kind == KIND_MLP:
        _layer_gram(dA, X, out)
        _layer_gram(R, A, out)
    else:
        _layer_gram(R, X, out)


@register("grad_gram", "numba", threads="blas")
def grad_gram(model, theta, X, y, out):
    _grad_gram(theta, X, y, out, *model.dims)
