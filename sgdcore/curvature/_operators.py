"""Matrix-free curvature operators over a data set, as SciPy ``LinearOperator``s."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .. import _validate as chk
from .._backend import get_kernel
from ..grads import memory_budget
from ..losses import finish
from ._products import curvature_state

__all__ = ["GGNOperator", "HessianOperator"]

#: ``cache_state="auto"`` keeps the forward state when it takes at most this many bytes
#: (and at most a quarter of :func:`sgdcore.memory_budget`).
STATE_CACHE_BYTES = 256 << 20


class _CurvatureOperator(LinearOperator):
    _quantity = ""

    def __init__(
        self,
        model,
        theta,
        X,
        y,
        *,
        l2=0.0,
        reduction="sum",
        backend="auto",
        cache_state="auto",
        check_finite=True,
    ):
        chk.check_reduction(reduction)
        self.l2 = chk.check_l2(l2)
        theta, X, y = chk.check_data(model, theta, X, y, finite=check_finite)
        self.model, self.theta, self.X, self.y = model, theta, X, y
        self.reduction = reduction
        self.backend, self._kernel = get_kernel(model, self._quantity, backend, (theta, X))
        n = X.shape[0]
        width = getattr(model, "n_hidden", 0) + model.n_outputs
        state_bytes = n * width * theta.dtype.itemsize
        if cache_state == "auto":
            cache_state = state_bytes <= min(STATE_CACHE_BYTES, memory_budget() // 4)
        elif not isinstance(cache_state, bool):
            raise ValueError(f"cache_state must be True, False or 'auto', got {cache_state!r}")
        self.state = curvature_state(model, theta, X, self.backend) if cache_state else None
        #: Number of operator-vector products done so far (columns of matmat count each).
        self.n_products = 0
        P = model.n_params
        super().__init__(dtype=theta.dtype, shape=(P, P))

    def _matmat(self, V):
        V = np.asarray(V)
        if V.ndim == 1:
            V = V[:, None]
        Vt = np.ascontiguousarray(V.T, dtype=self.dtype)
        out = np.empty_like(Vt)
        self._kernel(self.model, self.theta, self.X, self.y, Vt, out, state=self.state)
        finish(out, Vt, self.l2, self.reduction, self.X.shape[0])
        self.n_products += Vt.shape[0]
        return out.T

    def _matvec(self, v):
        return self._matmat(np.reshape(v, (-1, 1)))[:, 0]

    def _rmatvec(self, v):
        return self._matvec(v)

    def _rmatmat(self, V):
        return self._matmat(V)

    def _adjoint(self):
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.model!r}, N={self.X.shape[0]}, l2={self.l2}, "
            f"reduction={self.reduction!r}, backend={self.backend!r}, "
            f"dtype={self.dtype}, cached_state={self.state is not None})"
        )


class HessianOperator(_CurvatureOperator):
    """The exact Hessian of the cost, ``sum_i H_i + l2 I``, as a ``LinearOperator``.

    Each product is :func:`sgdcore.hvp` over the whole data set (blocks of vectors in
    one pass: ``matmat``), evaluated by the compiled kernels in chunks of rows, so
    ``N = 60,000`` MNIST digits fit in bounded memory. The forward state the products
    share (the MLP's hidden activations and the output probabilities, ``N (H + K)``
    numbers) is computed once and kept when it is small enough; otherwise every
    product recomputes it chunk by chunk.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
        The point the Hessian is taken at (not copied: do not modify it).
    X : ndarray, shape (N, D), theta's dtype
    y : ndarray of int, shape (N,)
    l2 : float
        Adds ``l2 I``.
    reduction : {"sum", "mean"}
        ``"mean"`` divides the operator (L2 term included) by ``N``.
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    cache_state : bool or "auto"
        Keep the forward state between products; ``"auto"``: when it takes at most
        :data:`STATE_CACHE_BYTES` (and a quarter of the memory budget).
    check_finite : bool
        Refuse NaN or inf in ``theta`` and ``X`` (checked once, here).

    Notes
    -----
    The operator is symmetric (``H = H^T``), has ``shape = (P, P)`` and ``dtype`` of
    ``theta``; vectors of another dtype are cast. ``n_products`` counts the products
    done so far.

    Examples
    --------
    >>> import numpy as np, scipy.sparse.linalg as sla, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.eye(3); y = np.array([0, 1, 1])
    >>> H = sgdcore.curvature.HessianOperator(m, np.zeros(4), X, y, l2=1.0)
    >>> bool(np.allclose(H @ np.eye(4), sgdcore.hessian(m, np.zeros(4), X, y, l2=1.0)))
    True
    """

    _quantity = "hvp"


class GGNOperator(_CurvatureOperator):
    """The generalised Gauss-Newton matrix ``sum_i J_i^T H_out,i J_i + l2 I`` as a
    ``LinearOperator`` (see :func:`sgdcore.ggn_vp`); positive semi-definite, equal to
    :class:`HessianOperator` for logistic regression. Parameters as in
    :class:`HessianOperator`.
    """

    _quantity = "ggn_vp"
