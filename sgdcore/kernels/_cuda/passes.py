"""Forward pass, output residual and backward pass of the three models on the GPU.

The same three steps as the NumPy backend's ``passes.py``: GEMMs through CuPy (cuBLAS),
and the elementwise work between them fused into ``sgdcore._cuda``'s kernels (bias + ReLU,
the softmax / sigmoid cross-entropy and its residual, the ReLU mask).
"""

from __future__ import annotations

import cupy as cp

from ... import _cuda
from .device import f64, launch, ptr, views


def forward(model, theta, X):
    """``(A, Z)``: ReLU activations (MLP, else None) and logits, shape (N, K)."""
    p = views(model, theta)
    if model.kind == "mlp":
        A = X @ p["W1"].T
        launch("bias_relu", f64(A), ptr(A), ptr(p["b1"]), A.shape[0], A.shape[1])
        Z = A @ p["W2"].T
        Z += p["b2"]
        return A, Z
    if model.kind == "logistic_binary":
        Z = (X @ p["w"])[:, None] + p["b"]
        return None, cp.ascontiguousarray(Z)
    Z = X @ p["W"].T
    Z += p["b"]
    return None, Z


def residual(model, Z, y, mode):
    """Per-example cross-entropy (float64, shape (N,)), and ``Z`` rewritten in place:
    ``mode`` is ``_cuda.RESIDUAL`` (``dCE/dz``), ``LOSS_ONLY`` or ``PROBABILITIES``
    (``y`` may then be None).
    """
    n, K = Z.shape
    ce = None if mode == _cuda.PROBABILITIES else cp.empty(n, dtype=cp.float64)
    launch("output_residual", f64(Z), ptr(Z), ptr(y), n, K, ptr(ce), mode)
    return ce


def relu_mask(D, A) -> None:
    """``D *= relu'(A)`` in place."""
    launch("relu_mask", f64(D), ptr(D), ptr(A), D.shape[0], D.shape[1])


def hidden_residual(model, theta, A, R):
    """``dA = relu'(a) * (R W2)``: the MLP's hidden-layer residual."""
    dA = R @ views(model, theta)["W2"]
    relu_mask(dA, A)
    return dA


def layers(model, X, A, R, dA):
    """``[(delta, input, weight name, bias name), ...]`` for each dense layer."""
    if model.kind == "mlp":
        return [(dA, X, "W1", "b1"), (R, A, "W2", "b2")]
    (w, _), (b, _) = model.shapes
    return [(R, X, w, b)]


def layer_grads(model, layer_list, grad) -> None:
    """Write ``sum_i (delta_i a_i^T, delta_i)`` of every layer into the device ``grad``."""
    g = views(model, grad)
    for delta, inp, w, b in layer_list:
        cp.matmul(delta.T, inp, out=g[w].reshape(delta.shape[1], inp.shape[1]))
        cp.sum(delta, axis=0, out=g[b])


def backward(model, theta, X, A, R, grad):
    """Write ``sum_i dCE_i/dtheta`` into ``grad`` from the residual ``R``; return the
    hidden residual ``dA`` (MLP, else None).
    """
    dA = hidden_residual(model, theta, A, R) if model.kind == "mlp" else None
    layer_grads(model, layers(model, X, A, R, dA), grad)
    return dA


def proba(model, Z):
    """Class probabilities from logits ``Z`` (binary: ``[1 - p, p]``); Z is overwritten."""
    residual(model, Z, None, _cuda.PROBABILITIES)
    if model.kind == "logistic_binary":
        return cp.concatenate([1 - Z, Z], axis=1)
    return Z
