"""Matrix-free curvature operators over a data set, as SciPy ``LinearOperator``s."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .. import _validate as chk
from .._arrays import check_current_device, check_side, namespace, on_device, to_device, to_host
from .._backend import get_kernel, is_gpu, resolve
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
        #: Whether the data came as CuPy arrays (then Lanczos's eigenvectors are CuPy
        #: arrays too; NumPy data for a GPU backend gets NumPy eigenvectors).
        self.returns_device = check_side(theta=theta, X=X, y=y)
        if not self.returns_device and is_gpu(backend):
            # NumPy data for a GPU backend: to the device once, for every product
            resolve(backend)
            theta, X, y = to_device(theta), to_device(X), to_device(y)
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
        if on_device(theta):
            # Lanczos, Hutchinson and SLQ then keep their vectors on the GPU
            self.device_matmat = self._device_matmat

    def _products(self, Vt):
        """``A V`` as ``[k, P]`` from ``Vt = V^T`` (C-contiguous, on the data's side)."""
        out = namespace(Vt).empty_like(Vt)
        self._kernel(self.model, self.theta, self.X, self.y, Vt, out, state=self.state)
        finish(out, Vt, self.l2, self.reduction, self.X.shape[0])
        self.n_products += Vt.shape[0]
        return out

    def _check_vectors(self, x) -> None:
        """Raise unless the CuPy array ``x`` has shape (P,) or (P, k), on this device."""
        P = self.shape[0]
        if x.ndim not in (1, 2) or x.shape[0] != P:
            raise ValueError(f"x must have shape ({P},) or ({P}, k), got {x.shape}")
        check_current_device("x", x)  # (any layout: x^T is copied to C order below)

    def _device_matmat(self, V):
        """``A V`` for a CuPy array ``V [P, k]`` (cast to the operator's dtype), on the GPU."""
        self._check_vectors(V)
        xp = namespace(self.theta)
        return self._products(xp.ascontiguousarray(V.T, dtype=self.dtype)).T

    def _matmat(self, V):
        V = np.asarray(V)
        if V.ndim == 1:
            V = V[:, None]
        Vt = np.ascontiguousarray(V.T, dtype=self.dtype)
        return to_host(self._products(to_device(Vt) if on_device(self.theta) else Vt)).T

    def dot(self, x):
        """``A x`` (``A @ x``): CuPy in gives CuPy out, computed on the GPU."""
        if on_device(x):
            self._check_vectors(x)
            return self._device_matmat(x.reshape(x.shape[0], -1)).reshape(x.shape)
        return super().dot(x)

    def matvec(self, x):
        return self.dot(x) if on_device(x) else super().matvec(x)

    def matmat(self, X):
        return self.dot(X) if on_device(X) else super().matmat(X)

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
