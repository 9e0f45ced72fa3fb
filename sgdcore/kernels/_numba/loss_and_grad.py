"""Numba ``loss_and_grad`` for every model."""

from __future__ import annotations

from numba import njit

from ..._backend import register
from .passes import backward, forward, residual


@njit(cache=True)
def _loss_and_grad(theta, X, y, grad, need_grad, kind, D, H, C):
    A, Z = forward(theta, X, kind, D, H, C)
    ce = residual(Z, y, kind, need_grad)
    if need_grad:
        backward(theta, X, A, Z, grad, kind, D, H, C)
    return ce


@register("loss_and_grad", "numba", threads="blas")
def loss_and_grad(model, theta, X, y, grad):
    need = grad is not None
    return _loss_and_grad(theta, X, y, grad if need else theta[:0], need, *model.dims)
