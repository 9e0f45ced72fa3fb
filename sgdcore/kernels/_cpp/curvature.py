"""C++ curvature kernels (``csrc/cpu/hvp_cpu.cpp``, ``ggn_vp_cpu.cpp``,
``curvature_state_cpu.cpp``, ``hessian_cpu.cpp``); contracts as in
``sgdcore/kernels/_numpy/curvature.py``. Sparse MLP inputs take the first layer on their
non-zeros (``sparse.py``).
"""

from __future__ import annotations

import numpy as np

from ... import _cpu
from ..._backend import register
from .sparse import SPARSE_OWN, ForwardState


def _state_args(state):
    return (None, None) if state is None else state


def _products(fn, model, theta, X, y, Vt, out, state, sparse):
    fn(*model.dims, theta, X, y, Vt, out, *_state_args(state), sparse=sparse)


@register("hvp", "cpp", threads=SPARSE_OWN)
def hvp(model, theta, X, y, Vt, out, *, state=None, sparse):
    _products(_cpu.hvp, model, theta, X, y, Vt, out, state, sparse)


@register("ggn_vp", "cpp", threads=SPARSE_OWN)
def ggn_vp(model, theta, X, y, Vt, out, *, state=None, sparse):
    _products(_cpu.ggn_vp, model, theta, X, y, Vt, out, state, sparse)


@register("curvature_state", "cpp", threads=SPARSE_OWN)
def curvature_state(model, theta, X, *, sparse):
    n = X.shape[0]
    A = np.empty((n, model.n_hidden), X.dtype) if model.kind == "mlp" else None
    Pm = np.empty((n, model.n_outputs), X.dtype)
    _cpu.curvature_state(*model.dims, theta, X, A, Pm, sparse=sparse)
    return ForwardState(A, Pm, sparse)


@register("hessian", "cpp", threads="blas")
def hessian(model, theta, X, out):
    _cpu.logistic_hessian(*model.dims, theta, X, out)
