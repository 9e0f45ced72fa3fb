"""Numba curvature kernels: Hessian- and Gauss-Newton-vector products (the MLP's by
Pearlmutter's R-operator), the forward state they reuse and the closed-form logistic
Hessian. Contracts as in ``sgdcore/kernels/_numpy/curvature.py``; GEMMs through
``np.dot`` (SciPy's BLAS), element-wise work in fused loops, chunks of rows so the
scratch stays bounded.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._backend import register
from ...models import KIND_LOGISTIC_BINARY, KIND_MLP
from ..formulas import output_hessian, probabilities_row
from .passes import forward, views


@njit(cache=True)
def _rows(kind, n, D, H, C, itemsize):
    if kind == KIND_MLP:
        r = max(64, (1 << 21) // max(H, 1))
    else:
        r = max(16, (512 << 10) // (itemsize * D))
    return max(1, min(n, r))


@njit(cache=True)
def _probabilities(Z, kind):
    """Sigmoid (K = 1) or row-wise softmax of the logits ``Z``, in place."""
    binary = kind == KIND_LOGISTIC_BINARY
    for i in range(Z.shape[0]):
        probabilities_row(Z[i], binary)


@njit(cache=True)
def _output_curvature(Pm, R, kind):
    """``R <- d2CE/dz2 R`` row by row."""
    n, K = R.shape
    for i in range(n):
        if kind == KIND_LOGISTIC_BINARY:
            for j in range(K):  # R holds k directions of the single output
                R[i, j] *= output_hessian(Pm[i, 0], Pm[i, 0], True)
            continue
        pr = 0.0
        for c in range(K):
            pr += Pm[i, c] * R[i, c]
        for c in range(K):
            R[i, c] = Pm[i, c] * (R[i, c] - pr)


@njit(cache=True)
def _state(theta, X, kind, D, H, C):
    n = X.shape[0]
    K = 1 if kind == KIND_LOGISTIC_BINARY else C
    A_all = np.empty((n if kind == KIND_MLP else 0, H if kind == KIND_MLP else 0), dtype=X.dtype)
    P_all = np.empty((n, K), dtype=X.dtype)
    rows = _rows(kind, n, D, H, C, X.itemsize)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        A, Z = forward(theta, X[s:e], kind, D, H, C)
        _probabilities(Z, kind)
        P_all[s:e] = Z
        if kind == KIND_MLP:
            A_all[s:e] = A
    return A_all, P_all


@njit(cache=True)
def _colsum_add(M, out):
    for i in range(M.shape[0]):
        for c in range(M.shape[1]):
            out[c] += M[i, c]


@njit(cache=True)
def _products(theta, X, y, Vt, out, A_all, P_all, have_state, exact, kind, D, H, C):
    n_total = X.shape[0]
    k = Vt.shape[0]
    out[:] = 0.0
    rows = _rows(kind, n_total, D, H, C, X.itemsize)
    W2 = views(theta, kind, D, H, C)[2]
    for s in range(0, n_total, rows):
        e = min(n_total, s + rows)
        n = e - s
        Xc = X[s:e]
        if have_state:
            Pm = P_all[s:e]
            A = A_all[s:e] if kind == KIND_MLP else A_all
        else:
            A, Pm = forward(theta, Xc, kind, D, H, C)
            _probabilities(Pm, kind)
        if kind != 2:
            for j in range(k):
                Vw, Vb, _, _ = views(Vt[j], kind, D, H, C)
                Ow, Ob, _, _ = views(out[j], kind, D, H, C)
                Rz = np.dot(Xc, Vw.T)
                for i in range(n):
                    for c in range(Rz.shape[1]):
                        Rz[i, c] += Vb[c]
                _output_curvature(Pm, Rz, kind)
                Ow += np.dot(Rz.T, Xc)
                _colsum_add(Rz, Ob)
            continue
        delta = np.empty((n if exact else 0, C), dtype=X.dtype)
        if exact:
            delta[:] = Pm
            for i in range(n):
                delta[i, y[s + i]] -= 1.0
        for j in range(k):
            V1, c1, V2, c2 = views(Vt[j], kind, D, H, C)
            O1, o1, O2, o2 = views(out[j], kind, D, H, C)
            Rh = np.dot(Xc, V1.T)
            for i in range(n):
                for u in range(H):
                    Rh[i, u] = Rh[i, u] + c1[u] if A[i, u] > 0 else 0.0
            Rz = np.dot(Rh, W2.T) + np.dot(A, V2.T)
            for i in range(n):
                for c in range(C):
                    Rz[i, c] += c2[c]
            _output_curvature(Pm, Rz, kind)
            O2 += np.dot(Rz.T, A)
            if exact:
                O2 += np.dot(delta.T, Rh)
            _colsum_add(Rz, o2)
            Rda = np.dot(Rz, W2)
            if exact:
                Rda += np.dot(delta, V2)
            for i in range(n):
                for u in range(H):
                    if A[i, u] <= 0:
                        Rda[i, u] = 0.0
            O1 += np.dot(Rda.T, Xc)
            _colsum_add(Rda, o1)


def _call(model, theta, X, y, Vt, out, state, exact):
    kind, D, H, C = model.dims
    if state is None:
        empty = np.empty((0, 0), dtype=X.dtype)
        _products(theta, X, y, Vt, out, empty, empty, False, exact, kind, D, H, C)
        return
    A = state[0] if state[0] is not None else np.empty((0, 0), dtype=X.dtype)
    _products(theta, X, y, Vt, out, A, state[1], True, exact, kind, D, H, C)


@register("hvp", "numba", threads="blas")
def hvp(model, theta, X, y, Vt, out, *, state=None):
    _call(model, theta, X, y, Vt, out, state, True)


@register("ggn_vp", "numba", threads="blas")
def ggn_vp(model, theta, X, y, Vt, out, *, state=None):
    _call(model, theta, X, y, Vt, out, state, False)


@register("curvature_state", "numba", threads="blas")
def curvature_state(model, theta, X):
    A, Pm = _state(theta, X, *model.dims)
    return (A if model.kind == "mlp" else None), Pm


@njit(cache=True)
def _hessian(theta, X, out, kind, D, C):
    """Cross-entropy Hessian of logistic regression, one weighted Gram block per pair of
    outputs (c, c'): ``X~^T diag(p_c ([c = c'] - p_c')) X~`` with ``X~ = [X, 1]``.
    """
    n_total = X.shape[0]
    K = 1 if kind == KIND_LOGISTIC_BINARY else C
    Dt = D + 1
    out[:] = 0.0
    rows = max(1, min(n_total, max(64, (1 << 21) // Dt)))
    index = np.empty((K, Dt), dtype=np.int64)
    for c in range(K):
        for d in range(D):
            index[c, d] = c * D + d
        index[c, D] = K * D + c
    for s in range(0, n_total, rows):
        e = min(n_total, s + rows)
        n = e - s
        _, Pm = forward(theta, X[s:e], kind, D, 0, C)
        _probabilities(Pm, kind)
        Xt = np.empty((n, Dt), dtype=X.dtype)
        Xw = np.empty((n, Dt), dtype=X.dtype)
        for i in range(n):
            for d in range(D):
                Xt[i, d] = X[s + i, d]
            Xt[i, D] = 1.0
        for c in range(K):
            for c2 in range(c, K):
                for i in range(n):
                    w = output_hessian(Pm[i, c], Pm[i, c2], c == c2)
                    for d in range(Dt):
                        Xw[i, d] = w * Xt[i, d]
                G = np.dot(Xt.T, Xw)
                for a in range(Dt):
                    ia = index[c, a]
                    for b in range(Dt):
                        out[ia, index[c2, b]] += G[a, b]
                        if c != c2:
                            out[index[c2, b], ia] += G[a, b]


@register("hessian", "numba", threads="blas")
def hessian(model, theta, X, out):
    kind, D, _, C = model.dims
    _hessian(theta, X, out, kind, D, C)
