"""Loss, gradient and predictions of the paper's cost.

The cost is summed over examples, as in the paper:
``C(theta) = sum_i CE_i(theta) + (l2 / 2) |theta|^2`` (biases included in the L2 term).
``reduction="mean"`` returns ``C / N``, the cost whose gradient SGD follows
(``theta -= eps * (mean_i g_i + (l2 / N) theta)``).
"""

from __future__ import annotations

from . import _validate as v
from ._arrays import accepts_device, namespace, sqnorm
from ._backend import get_kernel

__all__ = ["accuracy", "loss", "loss_and_grad", "predict_proba"]


def finish(res, v, l2: float, reduction: str, n: int):
    """The cost's L2 term and reduction on a derivative of the summed cross-entropy, in
    place: ``res += l2 v`` (``v`` None: ``l2`` added to the diagonal of the square
    ``res``), then ``res /= n`` for the ``"mean"`` reduction. Returns ``res``.

    The one place the gradient, the Hessian and its products get ``l2`` and ``1 / N``.
    """
    scalar = res.dtype.type  # a NumPy scalar of res's dtype: the same on either side
    if l2:
        if v is None:
            res[namespace(res).diag_indices(res.shape[0])] += scalar(l2)
        else:
            res += scalar(l2) * v
    if reduction == "mean":
        res *= scalar(1.0 / n)
    return res


def _finish(model, theta, ce, grad, n, reduction, l2):
    """Add the L2 term to the summed cross-entropy (and gradient) and apply reduction."""
    total = ce + (0.5 * l2 * sqnorm(theta) if l2 else 0.0)
    if grad is not None:
        finish(grad, theta, l2, reduction, n)
    return total * (1.0 / n) if reduction == "mean" else total


@accepts_device("theta", "X", "y")
def loss(model, theta, X, y, *, reduction="sum", l2=0.0, backend="auto", check_finite=True):
    """The cost ``C(theta)`` on ``(X, y)``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
        Flat parameters (layout in :mod:`sgdcore.models`).
    X : ndarray, shape (N, D), same dtype as theta, C-contiguous
    y : ndarray of int, shape (N,)
    reduction : {"sum", "mean"}
        ``"sum"``: ``C = sum_i CE_i + (l2/2)|theta|^2``; ``"mean"``: ``C / N``.
    l2 : float
        The paper's regularisation coefficient lambda.
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    check_finite : bool
        Refuse NaN or inf in ``theta`` and ``X`` (one extra pass over ``X``).

    Returns
    -------
    float
    """
    v.check_reduction(reduction)
    l2 = v.check_l2(l2)
    theta, X, y = v.check_data(model, theta, X, y, finite=check_finite)
    _, kernel = get_kernel(model, "loss_and_grad", backend, (theta, X))
    ce = kernel(model, theta, X, y, None)
    return _finish(model, theta, ce, None, X.shape[0], reduction, l2)


@accepts_device("theta", "X", "y", "out")
def loss_and_grad(
    model, theta, X, y, *, reduction="sum", l2=0.0, out=None, backend="auto", check_finite=True
):
    """The cost and its gradient in one pass.

    Same arguments as :func:`loss`; ``out`` (shape (P,), theta's dtype) receives the
    gradient when given.

    Returns
    -------
    loss : float
        ``C`` (or ``C / N``), accumulated in float64.
    grad : ndarray, shape (P,), theta's dtype
        ``sum_i dCE_i/dtheta + l2 * theta`` (divided by N for ``"mean"``); ``out`` if given.

    Examples
    --------
    At ``theta = 0`` a binary logistic model predicts 1/2 for every example, so the
    summed cost is ``N ln 2``:

    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.ones((4, 3)); y = np.array([0, 1, 1, 0])
    >>> c, g = sgdcore.loss_and_grad(m, np.zeros(4), X, y, backend="numpy")
    >>> bool(np.isclose(c, 4 * np.log(2))), g.tolist()
    (True, [0.0, 0.0, 0.0, 0.0])
    """
    v.check_reduction(reduction)
    l2 = v.check_l2(l2)
    theta, X, y = v.check_data(model, theta, X, y, finite=check_finite)
    grad = v.check_out(out, theta.shape, theta.dtype, like=theta)
    _, kernel = get_kernel(model, "loss_and_grad", backend, (theta, X))
    ce = kernel(model, theta, X, y, grad)
    return _finish(model, theta, ce, grad, X.shape[0], reduction, l2), grad


@accepts_device("theta", "X")
def predict_proba(model, theta, X, *, backend="auto", check_finite=True):
    """Class probabilities, shape (N, n_classes) (binary: columns ``[1 - p, p]``)."""
    theta, X = v.check_data(model, theta, X, finite=check_finite)
    _, kernel = get_kernel(model, "predict_proba", backend, (theta, X))
    return kernel(model, theta, X)


@accepts_device("theta", "X", "y")
def accuracy(model, theta, X, y, *, backend="auto", check_finite=True):
    """Fraction of examples whose most probable class is the label."""
    theta, X, y = v.check_data(model, theta, X, y, finite=check_finite)
    proba = predict_proba(model, theta, X, backend=backend, check_finite=False)
    xp = namespace(proba)
    return float(xp.mean(xp.argmax(proba, axis=1) == y))
