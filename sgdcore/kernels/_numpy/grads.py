"""NumPy per-example kernels: gradients, their squared norms, noise statistics,
covariance products and the gradient Gram matrix (contracts in ``sgdcore/grads.py``).

Everything starts from the residual pass: activations ``A`` (MLP), ``R = dCE_i/dz_i`` and
(MLP) the hidden residual ``dA = relu'(a) * (R W2)``. A dense layer ``z = W a + b`` then
has per-example gradient ``(delta_i a_i^T, delta_i)`` with ``delta = R`` (output layer)
or ``dA`` (hidden layer, input ``x``).
"""

from __future__ import annotations

import numpy as np

from ..._backend import register
from .passes import backward, forward, residual


def residuals(model, theta, X, y):
    """``(A, R, dA)``: activations (MLP, else None), ``dCE/dz`` and ``dCE/da`` (MLP)."""
    A, Z = forward(model, theta, X)
    _, R = residual(model, Z, y)
    if model.kind != "mlp":
        return None, R, None
    dA = R @ model.unflatten(theta)["W2"]
    dA *= A > 0
    return A, R, dA


def _layers(model, X, A, R, dA):
    """``[(delta, input, weight name, bias name), ...]`` for each dense layer."""
    if model.kind == "mlp":
        return [(dA, X, "W1", "b1"), (R, A, "W2", "b2")]
    (w, _), (b, _) = model.shapes
    return [(R, X, w, b)]


def _rowsq(M):
    return np.einsum("ij,ij->i", M, M, dtype=np.float64)


def _sqnorms(model, X, A, R, dA):
    """``|g_i|^2 = sum over layers of |delta_i|^2 (|a_i|^2 + 1)``, float64."""
    return sum(_rowsq(d) * (_rowsq(a) + 1.0) for d, a, _, _ in _layers(model, X, A, R, dA))


@register("per_example_grads", "numpy", threads="blas")
def per_example_grads(model, theta, X, y, out):
    A, R, dA = residuals(model, theta, X, y)
    offs = model.offsets()
    for delta, inp, w, b in _layers(model, X, A, R, dA):
        shape = (X.shape[0], delta.shape[1], inp.shape[1])
        W = out[:, offs[w]].reshape(shape, copy=False)
        np.multiply(delta[:, :, None], inp[:, None, :], out=W)
        out[:, offs[b]] = delta


@register("per_example_grad_norms", "numpy", threads="blas")
def per_example_grad_sqnorms(model, theta, X, y, out):
    A, R, dA = residuals(model, theta, X, y)
    out[:] = _sqnorms(model, X, A, R, dA)


@register("gradient_noise", "numpy", threads="blas")
def gradient_noise(model, theta, X, y, grad, sqnorms):
    A, Z = forward(model, theta, X)
    _, R = residual(model, Z, y)
    backward(model, theta, X, A, R, grad)
    dA = None
    if model.kind == "mlp":
        dA = R @ model.unflatten(theta)["W2"]
        dA *= A > 0
    sqnorms[:] = _sqnorms(model, X, A, R, dA)
    return float(np.einsum("i,i->", grad, grad, dtype=np.float64))


@register("cov_matvec", "numpy", threads="blas")
def cov_matvec(model, theta, X, y, Vt, shift, out, ssum):
    A, R, dA = residuals(model, theta, X, y)
    layers = _layers(model, X, A, R, dA)
    for j in range(Vt.shape[0]):
        V, G = model.unflatten(Vt[j]), model.unflatten(out[j])
        # s_i = sum over layers of delta_i . (V_W a_i + v_b) - shift_j
        s = np.full(X.shape[0], -float(shift[j]))
        for delta, inp, w, b in layers:
            U = inp @ V[w].reshape(-1, inp.shape[1]).T + V[b]
            s += np.einsum("ij,ij->i", delta, U, dtype=np.float64)
        ssum[j] = s.sum()
        s = s.astype(X.dtype)
        # sum_i s_i g_i: the backward pass with each residual scaled by s_i
        for delta, inp, w, b in layers:
            ds = delta * s[:, None]
            np.matmul(ds.T, inp, out=G[w].reshape(-1, inp.shape[1], copy=False))
            np.sum(ds, axis=0, out=G[b])


@register("grad_gram", "numpy", threads="blas")
def grad_gram(model, theta, X, y, out):
    A, R, dA = residuals(model, theta, X, y)
    out[:] = 0
    for delta, inp, _, _ in _layers(model, X, A, R, dA):
        S = inp @ inp.T
        S += 1
        S *= delta @ delta.T
        out += S
