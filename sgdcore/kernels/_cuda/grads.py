"""CUDA per-example kernels: gradients, their squared norms, noise statistics,
covariance products and the gradient Gram matrix (contracts in ``sgdcore/grads.py``).

As in the NumPy backend, everything starts from the residual pass (activations ``A``,
``R = dCE_i/dz_i``, the MLP's hidden residual ``dA``); a dense layer's per-example
gradient is ``(delta_i a_i^T, delta_i)``. The squared norms come from the two factors
(``|delta_i|^2 (|a_i|^2 + 1)``, kernel ``layer_sqnorms``) without forming any ``g_i``, and
``F v`` from ``g_i . v = delta_i . (V_W a_i + v_b)`` (kernels ``row_dot_add`` and
``scale_rows`` around cuBLAS GEMMs).
"""

from __future__ import annotations

import cupy as cp

from ... import _cuda
from ..._backend import register
from .device import empty_like_out, f64, inputs, launch, ptr, store, views
from .passes import backward, forward, hidden_residual, layer_grads, layers, residual


def residuals(model, theta, X, y):
    """``(A, R, dA)``: activations (MLP, else None), ``dCE/dz`` and ``dCE/da`` (MLP)."""
    A, Z = forward(model, theta, X)
    residual(model, Z, y, _cuda.RESIDUAL)
    dA = hidden_residual(model, theta, A, Z) if model.kind == "mlp" else None
    return A, Z, dA


def row_sqnorms(model, X, A, R, dA):
    """``|g_i|^2`` (float64, shape (N,)), summed over the layers from their factors."""
    n = X.shape[0]
    out = cp.empty(n, dtype=cp.float64)
    for j, (delta, inp, _, _) in enumerate(layers(model, X, A, R, dA)):
        launch(
            "layer_sqnorms",
            f64(delta),
            ptr(delta),
            delta.shape[1],
            ptr(inp),
            inp.shape[1],
            n,
            ptr(out),
            j > 0,
        )
    return out


@register("per_example_grads", "cuda", threads="blas")
def per_example_grads(model, theta, X, y, out):
    theta_d, X_d, y_d = inputs(theta=theta, X=X, y=y)
    A, R, dA = residuals(model, theta_d, X_d, y_d)
    res = empty_like_out(out)
    offs = model.offsets()
    n = X_d.shape[0]
    for delta, inp, w, b in layers(model, X_d, A, R, dA):
        res[:, offs[w]] = (delta[:, :, None] * inp[:, None, :]).reshape(n, -1)
        res[:, offs[b]] = delta
    store(out, res)


@register("per_example_grad_norms", "cuda", threads="blas")
def per_example_grad_sqnorms(model, theta, X, y, out):
    theta_d, X_d, y_d = inputs(theta=theta, X=X, y=y)
    A, R, dA = residuals(model, theta_d, X_d, y_d)
    store(out, row_sqnorms(model, X_d, A, R, dA))


@register("gradient_noise", "cuda", threads="blas")
def gradient_noise(model, theta, X, y, grad, sqnorms):
    theta_d, X_d, y_d = inputs(theta=theta, X=X, y=y)
    A, Z = forward(model, theta_d, X_d)
    residual(model, Z, y_d, _cuda.RESIDUAL)
    g = empty_like_out(grad)
    dA = backward(model, theta_d, X_d, A, Z, g)
    store(sqnorms, row_sqnorms(model, X_d, A, Z, dA))
    total = float(cp.sum(cp.square(g, dtype=cp.float64)))  # goes to the host
    store(grad, g)
    return total


@register("cov_matvec", "cuda", threads="blas")
def cov_matvec(model, theta, X, y, Vt, shift, out, ssum):
    theta_d, X_d, y_d, Vt_d, shift_d = inputs(theta=theta, X=X, y=y, Vt=Vt, shift=shift)
    A, R, dA = residuals(model, theta_d, X_d, y_d)
    layer_list = layers(model, X_d, A, R, dA)
    n = X_d.shape[0]
    res = empty_like_out(out)
    sums = cp.empty(Vt_d.shape[0], dtype=cp.float64)
    for j in range(Vt_d.shape[0]):
        V = views(model, Vt_d[j])
        # s_i = sum over layers of delta_i . (V_W a_i + v_b) - shift_j, in float64
        s = cp.empty(n, dtype=cp.float64)
        s[...] = -shift_d[j].astype(cp.float64)
        for delta, inp, w, b in layer_list:
            U = inp @ V[w].reshape(-1, inp.shape[1]).T
            U += V[b]
            launch("row_dot_add", f64(delta), ptr(delta), ptr(U), n, delta.shape[1], ptr(s))
        sums[j] = s.sum()
        # sum_i s_i g_i: the backward pass with each residual scaled by s_i
        weighted = []
        for delta, inp, w, b in layer_list:
            ds = cp.empty_like(delta)
            launch("scale_rows", f64(delta), ptr(delta), ptr(s), n, delta.shape[1], ptr(ds))
            weighted.append((ds, inp, w, b))
        layer_grads(model, weighted, res[j])
    store(ssum, sums)
    store(out, res)


@register("grad_gram", "cuda", threads="blas")
def grad_gram(model, theta, X, y, out):
    theta_d, X_d, y_d = inputs(theta=theta, X=X, y=y)
    A, R, dA = residuals(model, theta_d, X_d, y_d)
    res = empty_like_out(out)
    res[...] = 0
    for delta, inp, _, _ in layers(model, X_d, A, R, dA):
        S = inp @ inp.T
        S += 1
        S *= delta @ delta.T
        res += S
    store(out, res)
