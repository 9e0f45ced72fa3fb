"""C++ curvature kernels (``csrc/cpu/hvp_cpu.cpp``, ``ggn_vp_cpu.cpp``,
``curvature_state_cpu.cpp``, ``hessian_cpu.cpp``); contracts as in
``sgdcore/kernels/_numpy/curvature.py``.
"""

from __future__ import annotations

import numpy as np

from ... import _cpu
from ..._backend import register
from .dims import dims


def _state_args(state):
    return (None, None) if state is None else state


@register("hvp", "cpp")
def hvp(model, theta, X, y, Vt, out, state=None):
    _cpu.hvp(*dims(model), theta, X, y, Vt, out, *_state_args(state))


@register("ggn_vp", "cpp")
def ggn_vp(model, theta, X, y, Vt, out, state=None):
    _cpu.ggn_vp(*dims(model), theta, X, y, Vt, out, *_state_args(state))


@register("curvature_state", "cpp")
def curvature_state(model, theta, X):
    n = X.shape[0]
    A = np.empty((n, model.n_hidden), X.dtype) if model.kind == "mlp" else None
    Pm = np.empty((n, model.n_outputs), X.dtype)
    _cpu.curvature_state(*dims(model), theta, X, A, Pm)
    return A, Pm


@register("hessian", "cpp", kinds=("logistic_binary", "logistic_softmax"))
def hessian(model, theta, X, out):
    _cpu.logistic_hessian(*dims(model), theta, X, out)
