"""Hessian- and Gauss-Newton-vector products and the dense Hessian of the paper's cost."""

from __future__ import annotations

import numpy as np

from .. import _validate as chk
from .._arrays import accepts_device, namespace
from .._backend import get_kernel
from ..grads import MemoryBudgetError, memory_budget
from ..losses import finish

__all__ = ["curvature_state", "ggn_vp", "hessian", "hvp"]

#: Directions per kernel call when the dense MLP Hessian is built from HVPs.
HESSIAN_BLOCK = 32


def check_directions(model, v, dtype: np.dtype, *, finite: bool = True) -> np.ndarray:
    """``v`` of shape ``(P,)`` or ``(P, k)`` and ``dtype``, checked."""
    v = chk._array("v", v)
    P = model.n_params
    if not ((v.ndim == 1 and v.shape[0] == P) or (v.ndim == 2 and v.shape[0] == P)):
        raise ValueError(f"v must have shape ({P},) or ({P}, k), got {v.shape}")
    if v.dtype != dtype:
        raise TypeError(
            f"v has dtype {v.dtype} but theta has dtype {dtype}; cast one to match "
            f"(v.astype(np.{dtype}))"
        )
    if finite:
        chk.check_finite("v", v)
    return v


def _products(quantity, model, theta, X, y, v, reduction, l2, out, backend, check_finite):
    chk.check_reduction(reduction)
    l2 = chk.check_l2(l2)
    theta, X, y = chk.check_data(model, theta, X, y, finite=check_finite)
    v = check_directions(model, v, theta.dtype, finite=check_finite)
    res = chk.check_out(out, v.shape, theta.dtype, like=theta)
    xp = namespace(theta)
    if out is not None and xp.may_share_memory(res, v):
        raise ValueError("out must not share memory with v")
    _, kernel = get_kernel(model, quantity, backend, (theta, X))
    if v.ndim == 1:
        kernel(model, theta, X, y, xp.ascontiguousarray(v)[None, :], res[None, :])
    else:
        out_t = xp.empty((v.shape[1], v.shape[0]), dtype=theta.dtype)
        kernel(model, theta, X, y, xp.ascontiguousarray(v.T), out_t)
        res[...] = out_t.T
    finish(res, v, l2, reduction, X.shape[0])
    return res


@accepts_device("theta", "X", "y", "v", "out")
def hvp(
    model,
    theta,
    X,
    y,
    v,
    *,
    reduction="sum",
    l2=0.0,
    out=None,
    backend="auto",
    check_finite=True,
):
    """Exact Hessian-vector product of the cost, ``(sum_i H_i + l2 I) v``.

    ``H_i`` is the Hessian of example ``i``'s cross-entropy. Logistic regression:
    ``X~^T (p (1 - p) * (X~ v))`` with ``X~ = [X, 1]`` (softmax: ``(diag p - p p^T)``
    applied to ``V x + c`` per example), reading each block of ``X`` once for both
    products. MLP: the true Hessian by Pearlmutter's R-operator -- a forward R-pass
    ``R(a) = V1 x + c1``, ``R(h) = relu'(a) R(a)``, ``R(z) = W2 R(h) + V2 h + c2`` and a
    backward R-pass that keeps the cross-layer terms ``delta R(h)^T`` and
    ``V2^T delta`` the Gauss-Newton matrix drops (``relu'' = 0`` almost everywhere).

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
    X : ndarray, shape (N, D), theta's dtype, C-contiguous
    y : ndarray of int, shape (N,)
    v : ndarray, shape (P,) or (P, k), theta's dtype
        One direction, or ``k`` directions as columns (done in one pass over ``X``:
        the forward pass is shared).
    reduction : {"sum", "mean"}
        ``"mean"`` divides everything, the ``l2 v`` term included, by ``N``.
    l2 : float
        The paper's regularisation coefficient lambda.
    out : ndarray, shape of v, optional
        Receives the result (must not overlap ``v``).
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    check_finite : bool
        Refuse NaN or inf in ``theta``, ``X`` and ``v``.

    Returns
    -------
    ndarray, shape of v, theta's dtype

    Examples
    --------
    For the binary model at ``theta = 0`` every ``p = 1/2``, so the Hessian is
    ``X~^T X~ / 4 + l2 I``:

    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(2)
    >>> X = np.array([[1.0, 0.0], [0.0, 2.0]]); y = np.array([0, 1])
    >>> sgdcore.hvp(m, np.zeros(3), X, y, np.array([1.0, 0.0, 0.0]), l2=0.5).tolist()
    [0.75, 0.0, 0.25]
    """
    return _products("hvp", model, theta, X, y, v, reduction, l2, out, backend, check_finite)


@accepts_device("theta", "X", "y", "v", "out")
def ggn_vp(
    model,
    theta,
    X,
    y,
    v,
    *,
    reduction="sum",
    l2=0.0,
    out=None,
    backend="auto",
    check_finite=True,
):
    """Generalised Gauss-Newton-vector product ``(sum_i J_i^T H_out,i J_i + l2 I) v``.

    ``J_i = dz_i/dtheta`` is the Jacobian of example ``i``'s logits and ``H_out,i`` the
    Hessian of its cross-entropy in the logits (``p (1 - p)`` or ``diag p - p p^T``).
    Equal to :func:`hvp` for logistic regression; for the MLP it is the R-operator
    without the cross-layer terms, a positive semi-definite matrix. Arguments and
    result as in :func:`hvp`.

    Returns
    -------
    ndarray, shape of v, theta's dtype
    """
    return _products("ggn_vp", model, theta, X, y, v, reduction, l2, out, backend, check_finite)


def curvature_state(model, theta, X, backend="auto"):
    """The forward state curvature kernels reuse: ``(A [N, H] or None, P [N, K])``."""
    _, kernel = get_kernel(model, "curvature_state", backend, (theta, X))
    return kernel(model, theta, X)


@accepts_device("theta", "X", "y", "out")
def hessian(
    model,
    theta,
    X,
    y,
    *,
    reduction="sum",
    l2=0.0,
    out=None,
    backend="auto",
    check_finite=True,
    max_bytes=None,
):
    """Dense Hessian of the cost, ``sum_i H_i + l2 I``, shape ``(P, P)``.

    Logistic regression in closed form through one Gram product per pair of outputs:
    binary ``X~^T diag(p (1 - p)) X~ + l2 I`` with ``X~ = [X, 1]`` (a SYRK), softmax
    ``X~^T diag(p_c ([c = c'] - p_c')) X~`` for each block ``(c, c')``. Other models:
    :func:`hvp` against the columns of the identity, in blocks of
    :data:`HESSIAN_BLOCK` directions that share one forward pass.

    Parameters
    ----------
    model, theta, X, y, reduction, l2, backend, check_finite
        As in :func:`hvp` (``"mean"`` divides the ``l2 I`` term by ``N`` too).
    out : ndarray, shape (P, P), optional
        Receives the result.
    max_bytes : int, optional
        Refuse (:class:`~sgdcore.MemoryBudgetError`) when the ``P x P`` result would
        exceed this; default :func:`sgdcore.memory_budget`.

    Returns
    -------
    ndarray, shape (P, P), theta's dtype
        Symmetric (the HVP-built matrix to rounding).

    Raises
    ------
    MemoryBudgetError
        If ``P^2`` entries will not fit; use
        :class:`~sgdcore.curvature.HessianOperator` instead.
    """
    chk.check_reduction(reduction)
    l2 = chk.check_l2(l2)
    theta, X, y = chk.check_data(model, theta, X, y, finite=check_finite)
    P = model.n_params
    nbytes = P * P * theta.dtype.itemsize
    budget = memory_budget() if max_bytes is None else int(max_bytes)
    if out is None and nbytes > budget:
        raise MemoryBudgetError(
            f"the dense Hessian of {model!r} has P^2 = {P * P:,} entries "
            f"({nbytes / 2**30:.2f} GiB in {theta.dtype}), over the memory budget of "
            f"{budget / 2**30:.2f} GiB; use sgdcore.curvature.HessianOperator (matrix-free "
            "products) or raise max_bytes"
        )
    res = chk.check_out(out, (P, P), theta.dtype, like=theta)
    if model.kind != "mlp":
        _, kernel = get_kernel(model, "hessian", backend, (theta, X))
        kernel(model, theta, X, res)
    else:
        _, kernel = get_kernel(model, "hvp", backend, (theta, X))
        state = curvature_state(model, theta, X, backend)
        xp = namespace(theta)
        for start in range(0, P, HESSIAN_BLOCK):
            stop = min(P, start + HESSIAN_BLOCK)
            E = xp.zeros((stop - start, P), dtype=theta.dtype)
            E[xp.arange(stop - start), xp.arange(start, stop)] = 1
            kernel(model, theta, X, y, E, res[start:stop], state=state)
    return finish(res, None, l2, reduction, X.shape[0])
