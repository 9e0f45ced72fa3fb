"""C++ ``loss_and_grad`` (``csrc/cpu/loss_and_grad_cpu.cpp``). Sparse MLP inputs take
the first layer on their non-zeros (``sparse.py``).
"""

from __future__ import annotations

from ... import _cpu
from ..._backend import register
from .sparse import SPARSE_OWN


@register("loss_and_grad", "cpp", threads=SPARSE_OWN)
def loss_and_grad(model, theta, X, y, grad, *, sparse):
    return _cpu.loss_and_grad(*model.dims, theta, X, y, grad, sparse=sparse)
