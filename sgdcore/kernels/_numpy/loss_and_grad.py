"""NumPy ``loss_and_grad`` and ``predict_proba`` for every model."""

from __future__ import annotations

from ..._backend import register
from .passes import backward, forward, proba, residual


@register("loss_and_grad", "numpy", threads="blas")
def loss_and_grad(model, theta, X, y, grad):
    A, Z = forward(model, theta, X)
    ce, R = residual(model, Z, y, need_residual=grad is not None)
    if grad is not None:
        backward(model, theta, X, A, R, grad)
    return ce


@register("predict_proba", "numpy", threads="blas")
def predict_proba(model, theta, X):
    return proba(model, forward(model, theta, X)[1])
