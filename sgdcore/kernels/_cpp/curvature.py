"""C++ curvature kernels (``csrc/cpu/hvp_cpu.cpp``, ``ggn_vp_cpu.cpp``,
``curvature_state_cpu.cpp``, ``hessian_cpu.cpp``); contracts as in
``sgdcore/kernels/_numpy/curvature.py``. Sparse MLP inputs take the first layer on their
non-zeros (``sparse.py``).
"""

from __future__ import annotations

import numpy as np

from ... import _cpu
from ..._backend import register
from ..._blas import one_blas_thread
from .dims import dims
from .sparse import ForwardState, sparse_inputs


def _state_args(state):
    return (None, None) if state is None else state


def _products(fn, model, theta, X, y, Vt, out, state):
    # A state is X's own forward pass: its path was decided when it was computed.
    sparse = state.sparse if isinstance(state, ForwardState) else sparse_inputs(model, X)
    with one_blas_thread(sparse):
        fn(*dims(model), theta, X, y, Vt, out, *_state_args(state), sparse=sparse)


@register("hvp", "cpp")
def hvp(model, theta, X, y, Vt, out, state=None):
    _products(_cpu.hvp, model, theta, X, y, Vt, out, state)


@register("ggn_vp", "cpp")
def ggn_vp(model, theta, X, y, Vt, out, state=None):
    _products(_cpu.ggn_vp, model, theta, X, y, Vt, out, state)


@register("curvature_state", "cpp")
def curvature_state(model, theta, X):
    n = X.shape[0]
    A = np.empty((n, model.n_hidden), X.dtype) if model.kind == "mlp" else None
    Pm = np.empty((n, model.n_outputs), X.dtype)
    sparse = sparse_inputs(model, X)
    with one_blas_thread(sparse):
        _cpu.curvature_state(*dims(model), theta, X, A, Pm, sparse=sparse)
    return ForwardState(A, Pm, sparse)


@register("hessian", "cpp", kinds=("logistic_binary", "logistic_softmax"))
def hessian(model, theta, X, out):
    _cpu.logistic_hessian(*dims(model), theta, X, out)
