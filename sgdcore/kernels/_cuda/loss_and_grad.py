"""CUDA ``loss_and_grad`` and ``predict_proba`` for every model."""

from __future__ import annotations

from ... import _cuda
from ..._backend import register
from .device import empty_like_out, inputs, store, to_caller
from .passes import backward, forward, proba, residual


@register("loss_and_grad", "cuda", threads="blas")
def loss_and_grad(model, theta, X, y, grad):
    theta_d, X_d, y_d = inputs(theta=theta, X=X, y=y)
    A, Z = forward(model, theta_d, X_d)
    mode = _cuda.LOSS_ONLY if grad is None else _cuda.RESIDUAL
    ce = residual(model, Z, y_d, mode)
    if grad is not None:
        g = empty_like_out(grad)
        backward(model, theta_d, X_d, A, Z, g)
        store(grad, g)
    return float(ce.sum())  # the loss goes to the host


@register("predict_proba", "cuda", threads="blas")
def predict_proba(model, theta, X):
    theta_d, X_d = inputs(theta=theta, X=X)
    return to_caller(proba(model, forward(model, theta_d, X_d)[1]), X)
