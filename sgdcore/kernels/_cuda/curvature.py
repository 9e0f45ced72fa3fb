"""CUDA curvature kernels: Hessian- and Gauss-Newton-vector products, the forward state
they reuse, and the closed-form logistic Hessian (contracts in
``sgdcore/kernels/_numpy/curvature.py``).

The R-pass runs its GEMMs through CuPy and its elementwise steps in ``sgdcore._cuda``
(the ReLU mask, the output curvature ``d2CE/dz2 R``). The binary logistic model's product
is one kernel that reads each row of X once (``logistic_hvp``).
"""

from __future__ import annotations

import cupy as cp

from ... import _cuda
from ..._backend import register
from ..formulas import output_hessian
from .device import empty_like_out, f64, inputs, launch, ptr, store, to_caller, views
from .passes import forward, relu_mask, residual


def _state(model, theta, X):
    """``(A, Pm)``: hidden activations (MLP, else None) and output probabilities."""
    A, Z = forward(model, theta, X)
    residual(model, Z, None, _cuda.PROBABILITIES)
    return A, Z


def output_curvature(Pm, R):
    """``R <- d2CE/dz2 R`` row by row, in place."""
    launch("output_curvature", f64(R), ptr(Pm), ptr(R), R.shape[0], R.shape[1])
    return R


def _logistic_binary(theta, X, Pm, Vt, res):
    n, D = X.shape
    partial = cp.empty(_cuda.logistic_hvp_partials(n, D), dtype=cp.float64)
    pm = None if Pm is None else cp.ascontiguousarray(Pm[:, 0])
    for j in range(Vt.shape[0]):
        launch(
            "logistic_hvp",
            f64(X),
            ptr(X),
            n,
            D,
            ptr(theta),
            ptr(pm),
            ptr(Vt[j]),
            ptr(partial),
            ptr(res[j]),
        )


def _products(model, theta, X, y, Vt, out, state, exact):
    theta, X, y, Vt = inputs(theta=theta, X=X, y=y, Vt=Vt)
    res = empty_like_out(out)
    if state is None:
        A, Pm = None, None
    else:
        A, Pm = inputs(A=state[0], Pm=state[1])
    if model.kind == "logistic_binary":
        _logistic_binary(theta, X, Pm, Vt, res)
        store(out, res)
        return
    if Pm is None:
        A, Pm = _state(model, theta, X)
    if model.kind == "mlp" and exact:
        delta = Pm.copy()  # dCE/dz, the residual the exact product adds
        delta[cp.arange(X.shape[0]), y] -= 1
    for j in range(Vt.shape[0]):
        V, G = views(model, Vt[j]), views(model, res[j])
        if model.kind == "logistic_softmax":
            u = X @ V["W"].T
            u += V["b"]
            output_curvature(Pm, u)
            cp.matmul(u.T, X, out=G["W"])
            cp.sum(u, axis=0, out=G["b"])
            continue
        p = views(model, theta)
        Rh = X @ V["W1"].T
        Rh += V["b1"]
        relu_mask(Rh, A)
        Rz = Rh @ p["W2"].T
        Rz += A @ V["W2"].T
        Rz += V["b2"]
        Rd = output_curvature(Pm, Rz)
        G["W2"][...] = Rd.T @ A
        Rda = Rd @ p["W2"]
        if exact:
            G["W2"] += delta.T @ Rh
            Rda += delta @ V["W2"]
        G["b2"][...] = Rd.sum(axis=0)
        relu_mask(Rda, A)
        cp.matmul(Rda.T, X, out=G["W1"])
        cp.sum(Rda, axis=0, out=G["b1"])
    store(out, res)


@register("hvp", "cuda", threads="blas")
def hvp(model, theta, X, y, Vt, out, *, state=None):
    _products(model, theta, X, y, Vt, out, state, True)


@register("ggn_vp", "cuda", threads="blas")
def ggn_vp(model, theta, X, y, Vt, out, *, state=None):
    _products(model, theta, X, y, Vt, out, state, False)


@register("curvature_state", "cuda", threads="blas")
def curvature_state(model, theta, X):
    theta_d, X_d = inputs(theta=theta, X=X)
    A, Pm = _state(model, theta_d, X_d)
    return (None if A is None else to_caller(A, X)), to_caller(Pm, X)


@register("hessian", "cuda", threads="blas", kinds=("logistic_binary", "logistic_softmax"))
def hessian(model, theta, X, out):
    theta_d, X_d = inputs(theta=theta, X=X)
    D, K = model.n_features, model.n_outputs
    _, Pm = _state(model, theta_d, X_d)
    Xt = cp.concatenate([X_d, cp.ones((X_d.shape[0], 1), dtype=X_d.dtype)], axis=1)
    res = empty_like_out(out)
    # Parameter index of (output c, input d), d == D the bias.
    index = [cp.asarray([*range(c * D, (c + 1) * D), K * D + c]) for c in range(K)]
    for c in range(K):
        for c2 in range(c, K):
            w = output_hessian(Pm[:, c], Pm[:, c2], c == c2)
            G = Xt.T @ (w[:, None] * Xt)
            res[cp.ix_(index[c], index[c2])] = G
            if c != c2:
                res[cp.ix_(index[c2], index[c])] = G.T
    store(out, res)
