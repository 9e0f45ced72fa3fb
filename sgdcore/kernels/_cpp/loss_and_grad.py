"""C++ ``loss_and_grad`` (``csrc/cpu/loss_and_grad_cpu.cpp``)."""

from __future__ import annotations

from ... import _cpu
from ..._backend import register
from .dims import dims


@register("loss_and_grad", "cpp")
def loss_and_grad(model, theta, X, y, grad):
    return _cpu.loss_and_grad(*dims(model), theta, X, y, grad)
