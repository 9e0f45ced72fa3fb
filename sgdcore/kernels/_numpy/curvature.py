"""NumPy curvature kernels: Hessian- and Gauss-Newton-vector products, the forward state
they reuse, and the closed-form logistic Hessian.

Contracts (the Python layer, :mod:`sgdcore.curvature`, validates and adds L2 / reduction):

* ``hvp`` / ``ggn_vp``: ``fn(model, theta, X, y, Vt, out, state)`` writes
  ``out[j] = sum_i G_i Vt[j]`` for the ``k`` rows of ``Vt [k, P]``, with ``G_i`` the
  Hessian of ``CE_i`` (``hvp``) or its Gauss-Newton part ``J_i^T H_out,i J_i``
  (``ggn_vp``). ``state`` is None or ``(A, Pm)`` from ``curvature_state``.
* ``curvature_state``: ``fn(model, theta, X) -> (A, Pm)``: the MLP's hidden activations
  ``A [N, H]`` (None for logistic models) and output probabilities ``Pm [N, K]``
  (``K = 1``, the sigmoid, for the binary model).
* ``hessian`` (logistic models): ``fn(model, theta, X, out)`` writes the cross-entropy
  Hessian ``sum_i J_i^T H_out,i J_i`` into ``out [P, P]``.

All of them work over chunks of rows so their scratch stays bounded.
"""

from __future__ import annotations

import numpy as np

from ..._backend import register
from ..formulas import output_hessian, sigmoid, softmax
from .passes import forward


def chunk_rows(model, n: int) -> int:
    """Rows per chunk: a ``[rows, max(H, K)]`` scratch of about 2 Mi elements."""
    width = max(getattr(model, "n_hidden", 0), model.n_outputs, 1)
    return max(1, min(n, max(64, (1 << 21) // width)))


def probabilities(model, Z):
    """Output probabilities from logits ``Z [n, K]`` (sigmoid for K = 1), in place."""
    if model.kind == "logistic_binary":
        Z[:, 0] = sigmoid(Z[:, 0])
        return Z
    return softmax(Z)


def output_curvature(model, Pm, R):
    """``R <- d2CE/dz2 R`` row by row (``p (1 - p) r`` or ``p * (r - p . r)``)."""
    if model.kind == "logistic_binary":
        R *= output_hessian(Pm, Pm, True)
        return R
    R -= np.sum(Pm * R, axis=1, keepdims=True)
    R *= Pm
    return R


def _state_chunk(model, theta, X):
    A, Z = forward(model, theta, X)
    return A, probabilities(model, Z)


def _products(model, theta, X, y, Vt, out, state, exact):
    n_total = X.shape[0]
    rows = chunk_rows(model, n_total)
    out[...] = 0
    views = [model.unflatten(Vt[j]) for j in range(Vt.shape[0])]
    outs = [model.unflatten(out[j]) for j in range(out.shape[0])]
    p = model.unflatten(theta)
    for s in range(0, n_total, rows):
        e = min(n_total, s + rows)
        Xc = X[s:e]
        if state is None:
            A, Pm = _state_chunk(model, theta, Xc)
        else:
            A = None if state[0] is None else state[0][s:e]
            Pm = state[1][s:e]
        if model.kind == "logistic_binary":
            D = model.n_features
            Rz = Xc @ Vt[:, :D].T + Vt[:, D]  # [n, k]
            Rz *= output_hessian(Pm, Pm, True)
            out[:, :D] += Rz.T @ Xc
            out[:, D] += Rz.sum(axis=0)
            continue
        if model.kind == "logistic_softmax":
            for V, G in zip(views, outs, strict=True):
                u = output_curvature(model, Pm, Xc @ V["W"].T + V["b"])
                G["W"] += u.T @ Xc
                G["b"] += u.sum(axis=0)
            continue
        mask = A > 0
        if exact:
            delta = Pm.copy()
            delta[np.arange(e - s), y[s:e]] -= 1
        for V, G in zip(views, outs, strict=True):
            Rh = Xc @ V["W1"].T
            Rh += V["b1"]
            Rh *= mask
            Rz = Rh @ p["W2"].T + A @ V["W2"].T + V["b2"]
            Rd = output_curvature(model, Pm, Rz)
            G["W2"] += Rd.T @ A
            if exact:
                G["W2"] += delta.T @ Rh
            G["b2"] += Rd.sum(axis=0)
            Rda = Rd @ p["W2"]
            if exact:
                Rda += delta @ V["W2"]
            Rda *= mask
            G["W1"] += Rda.T @ Xc
            G["b1"] += Rda.sum(axis=0)


@register("hvp", "numpy", threads="blas")
def hvp(model, theta, X, y, Vt, out, *, state=None):
    _products(model, theta, X, y, Vt, out, state, True)


@register("ggn_vp", "numpy", threads="blas")
def ggn_vp(model, theta, X, y, Vt, out, *, state=None):
    _products(model, theta, X, y, Vt, out, state, False)


@register("curvature_state", "numpy", threads="blas")
def curvature_state(model, theta, X):
    n = X.shape[0]
    rows = chunk_rows(model, n)
    A = np.empty((n, model.n_hidden), X.dtype) if model.kind == "mlp" else None
    Pm = np.empty((n, model.n_outputs), X.dtype)
    for s in range(0, n, rows):
        a, pm = _state_chunk(model, theta, X[s : s + rows])
        if A is not None:
            A[s : s + rows] = a
        Pm[s : s + rows] = pm
    return A, Pm


@register("hessian", "numpy", threads="blas")
def hessian(model, theta, X, out):
    D, K = model.n_features, model.n_outputs
    n = X.shape[0]
    rows = max(1, min(n, max(64, (1 << 21) // (D + 1))))
    out[...] = 0
    # Parameter index of (output c, input d), d == D the bias.
    index = [np.r_[c * D : (c + 1) * D, K * D + c] for c in range(K)]
    for s in range(0, n, rows):
        Xc = X[s : s + rows]
        _, Pm = _state_chunk(model, theta, Xc)
        Xt = np.hstack([Xc, np.ones((Xc.shape[0], 1), X.dtype)])
        for c in range(K):
            for c2 in range(c, K):
                w = output_hessian(Pm[:, c], Pm[:, c2], c == c2)
                G = Xt.T @ (w[:, None] * Xt)
                out[np.ix_(index[c], index[c2])] += G
                if c != c2:
                    out[np.ix_(index[c2], index[c])] += G.T
