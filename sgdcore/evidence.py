"""Bayesian evidence of the paper's models by Laplace's method (Smith & Le, Eqs. 5-9).

With the Gaussian prior ``P(theta) = (l2 / 2 pi)^{P/2} exp(-l2 |theta|^2 / 2)`` and the
summed cost ``C(theta) = sum_i CE_i + (l2/2) |theta|^2``, the evidence is
``P(y | X) = (l2 / 2 pi)^{P/2} int exp(-C)``. Expanding ``C`` to second order about its
minimum ``theta_0`` (Eq. 7)::

    ln P(y | X) ~= -( C(theta_0) + 1/2 sum_i ln(lambda_i / l2) )

where ``lambda_i`` are the eigenvalues of the Hessian of ``C`` (the ``l2 I`` included).
The second term is the Occam term, ``-ln`` of the Occam factor: the log of the fraction
of prior volume the data rule out. The paper compares with the null model that gives
each of ``n`` classes probability ``1/n`` (Eq. 8: ``ln P = -N ln n``) and plots (Eq. 9)::

    E = C(theta_0) + 1/2 sum_i ln(lambda_i / l2) - N ln n

the log evidence ratio in favour of the null model: ``E < 0`` means the model is
``e^{-E}`` times more plausible than uniform guessing.

**The paper's rule away from a minimum.** Eq. 7 needs every ``lambda_i >= l2``, i.e. a
positive semi-definite Hessian of the cross-entropy. Where that fails (an MLP not at a
minimum, or a saddle), the paper sums only over ``lambda_i >= l2``; :func:`laplace`
applies this rule in every method and reports how many eigenvalues it dropped. For
logistic regression the rule never drops anything: the cross-entropy is convex, so its
Hessian is positive semi-definite at every ``theta`` and every ``lambda_i >= l2``.

**laplace-torch.** The same number is laplace-torch's
``Laplace(model, "classification", subset_of_weights="all", hessian_structure="full",
prior_precision=l2, prior_mean=0, temperature=1).log_marginal_likelihood()`` after
``fit`` on the training set at ``theta_0``, with the exact Hessian as curvature
(``backend=CurvlinopsHessian``; any GGN backend gives the same matrix for logistic
regression). The mapping: its ``prior_precision`` is our ``l2``; its ``loss`` (the
cross-entropy summed over the loader) is ``sum_i CE_i``; its ``log_det_ratio`` is
``ln det(H) - P ln l2 = sum_i ln(lambda_i / l2)`` (``H`` including ``l2 I``); its
``scatter`` is ``l2 |theta_0|^2``; so ``log_marginal_likelihood = -loss -
(log_det_ratio + scatter) / 2 = -(C(theta_0) + occam)`` is our ``log_evidence``. Our
binary model (one sigmoid output) is its two-logit model ``[0, z]``, since
``softmax([0, z])_1 = sigmoid(z)``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sl

from . import _cholesky
from . import _validate as chk
from ._arrays import check_side, namespace, on_device, to_device, to_host
from ._backend import is_gpu, resolve
from ._blas import cores, norm, one_blas_thread
from .curvature import ConvergenceError, HessianOperator, hessian, slq
from .losses import loss_and_grad
from .models import LogisticRegression

__all__ = [
    "ConvergenceError",
    "LaplaceResult",
    "MapFit",
    "evidence_path",
    "fit_map",
    "laplace",
    "laplace_from_hessian",
]

#: ``method="auto"`` in :func:`laplace` diagonalises the MLP's dense Hessian up to this P.
DENSE_MAX_PARAMS = 4096

#: Dense Newton and Laplace work on at most this many parameters runs with BLAS limited to
#: one thread: at this size threads gain little, and a threaded BLAS stalls badly when the
#: cores are oversubscribed.
SINGLE_THREAD_MAX_PARAMS = 1024


def _blas_threads(n_params: int):
    """Context limiting BLAS to one thread for small dense problems (else a no-op)."""
    return one_blas_thread(n_params <= SINGLE_THREAD_MAX_PARAMS)


@dataclass(frozen=True, eq=False)
class MapFit:
    """The minimum of the cost found by :func:`fit_map`.

    Attributes
    ----------
    theta : ndarray, shape (P,), float64
    cost : float
        ``C(theta)``, summed.
    grad_norm : float
        ``|grad C(theta)|``.
    grad_scale : float
        The norm the tolerance is relative to: ``|grad C(0)|`` (Newton) or
        ``|grad C(theta0)|`` (L-BFGS).
    n_iter : int
        Newton or L-BFGS iterations.
    method : str
        ``"newton"`` or ``"lbfgs"``.
    l2 : float
    n : int
        Number of training examples.
    status : str
        ``"converged"``: the gradient tolerance was met. ``"stalled"`` (L-BFGS only):
        the cost stopped decreasing (relative change below 1e-15) while ``|grad C|`` was
        above the tolerance -- a ReLU network's cost is not differentiable where a
        hidden pre-activation is exactly 0, and with L2 its minima often lie on such
        kinks, where the gradient of either side does not vanish. (On a smooth cost
        it means ``gtol`` asked for more than float64 resolves.)
    """

    theta: np.ndarray
    cost: float
    grad_norm: float
    grad_scale: float
    n_iter: int
    method: str
    l2: float
    n: int
    status: str = "converged"
    # Cholesky factor of the Hessian at theta over the active parameters (Newton only).
    _factor: tuple | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, eq=False)
class LaplaceResult:
    """The Laplace evidence of a model at ``theta`` (see the module docstring).

    Attributes
    ----------
    cost : float
        ``C(theta_0)``, the summed cost, L2 term included.
    occam : float
        ``1/2 sum_{lambda_i >= l2} ln(lambda_i / l2)``, the Occam term.
    log_evidence : float
        ``-(cost + occam)``, the log evidence ``ln P(y | X)``.
    null_log_evidence : float
        ``-N ln n``, the log evidence of the null model (``n`` classes).
    log_ratio : float
        ``E = cost + occam - N ln n``, the log evidence ratio in favour of the null.
    log_ratio_per_example : float
        ``E / N``.
    std_error : float
        Standard error of ``occam`` (and so of ``log_evidence`` and ``log_ratio``);
        0 for the exact methods.
    method : str
        ``"cholesky"``, ``"eigh"`` or ``"slq"``.
    n, n_params, n_classes : int
    l2 : float
    grad_norm : float
        ``|grad C(theta)|``: how close ``theta`` is to a minimum.
    n_excluded : float
        Eigenvalues dropped by the rule (``lambda_i < l2``); for ``"slq"`` an estimate,
        for an MLP's ``"cholesky"`` NaN (that method applies no rule).
    eigenvalues : ndarray or None
        The Hessian's spectrum, ascending (``"eigh"`` only).
    theta : ndarray, shape (P,), float64
    fit : MapFit or None
        The fit ``theta`` came from, when one was given.
    """

    cost: float
    occam: float
    log_evidence: float
    null_log_evidence: float
    log_ratio: float
    log_ratio_per_example: float
    std_error: float
    method: str
    n: int
    n_params: int
    n_classes: int
    l2: float
    grad_norm: float
    n_excluded: float
    eigenvalues: np.ndarray | None = field(default=None, repr=False)
    theta: np.ndarray | None = field(default=None, repr=False)
    fit: MapFit | None = field(default=None, repr=False)


# ------------------------------------------------------------------------ helpers


def _as_float64(model, X, y, check_finite, backend="auto"):
    """``(X, y)`` checked, with ``X`` in float64 (a copy only when needed).

    CuPy arrays stay on the GPU; NumPy arrays for a GPU backend are copied there (once
    per public call: the fits and evidences of a path share the copy). The fits then
    keep their ``P``-vectors on the host and do the data passes and the ``P x P``
    algebra (Hessian, Cholesky) on the device.
    """
    chk.check_model(model)
    check_side(X=X, y=y)
    X = chk._array("X", X)
    if X.dtype not in chk.FLOATS:
        raise TypeError(f"X must be float32 or float64, got {X.dtype}")
    if not on_device(X) and is_gpu(backend):
        resolve(backend)
        X, y = to_device(X), to_device(y)
    X = namespace(X).ascontiguousarray(X, dtype=np.float64)
    chk.check_X(model, X, np.dtype(np.float64), finite=check_finite)
    return X, chk.check_y(model, y, X.shape[0])


def _theta64(model, theta, name="theta"):
    theta = to_host(theta)  # the fits keep their P-vectors on the host
    if not isinstance(theta, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(theta).__name__}")
    if theta.shape != (model.n_params,):
        raise ValueError(
            f"{name} must have shape ({model.n_params},) for {model!r}, got {theta.shape}"
        )
    if theta.dtype not in chk.FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {theta.dtype}")
    theta = np.array(theta, dtype=np.float64, order="C")
    chk.check_finite(name, theta)
    return theta


def _reduction(model, X):
    """Logistic regression on the columns of ``X`` that are not all zero.

    A column that is zero in every example never reaches a logit: its weights have
    gradient ``l2 w`` (so they are 0 at the minimum) and a Hessian block ``l2 I``
    (contributing ``ln(l2 / l2) = 0`` to the Occam term). Solving on the other columns
    is exact and cheaper. Returns ``(model_r, X_r, index)`` with ``index`` the
    positions of the reduced parameters in ``theta``, or None when every column is used.
    """
    active = np.flatnonzero(to_host(namespace(X).any(X != 0, axis=0)))
    D, K = model.n_features, model.n_outputs
    if active.size == D:
        return None
    if active.size == 0:
        active = np.array([0])
    index = np.concatenate([c * D + active for c in range(K)] + [K * D + np.arange(K)])
    X_r = namespace(X).ascontiguousarray(X[:, to_device(active) if on_device(X) else active])
    return LogisticRegression(int(active.size), model.n_classes), X_r, index


def _norm(x) -> float:
    return norm(x)


def _on_side(theta, X):
    """``theta`` where ``X`` lives (the fits keep theta on the host)."""
    return to_device(theta) if on_device(X) else theta


def _cost_grad(model, theta, X, y, l2, backend):
    c, g = loss_and_grad(
        model, _on_side(theta, X), X, y, l2=l2, backend=backend, check_finite=False
    )
    return c, to_host(g)


def _hessian(model, theta, X, y, l2, backend):
    """The dense Hessian, on the side of ``X``."""
    return hessian(model, _on_side(theta, X), X, y, l2=l2, backend=backend, check_finite=False)


# ------------------------------------------------------------------------ fit_map


def fit_map(
    model,
    X,
    y,
    l2,
    *,
    theta0=None,
    method="auto",
    gtol=None,
    max_iter=None,
    backend="auto",
    check_finite=True,
):
    """Minimise the cost ``C(theta) = sum_i CE_i + (l2/2) |theta|^2`` (float64).

    Logistic regression (``method="newton"``): Newton's method with the exact dense
    Hessian (closed form), a Cholesky solve and a backtracking (Armijo) line search,
    until ``|grad C(theta)| <= gtol |grad C(0)|`` (default ``gtol = 1e-10``). Columns
    of ``X`` that are zero in every example are solved in closed form (their weights
    are 0). The cost is convex, so the minimum found is the global one (unique for
    ``l2 > 0``). MLP (``method="lbfgs"``): L-BFGS from ``theta0`` (e.g. an SGD result)
    until ``|grad C| <= gtol |grad C(theta0)|`` (default ``gtol = 1e-6``) or until the
    cost stops decreasing (``status="stalled"``: a minimum on a ReLU kink, see
    :class:`MapFit`): a local minimum near the start.

    Parameters
    ----------
    model : LogisticRegression or MLP
    X : ndarray, shape (N, D), float32 or float64
        Cast to float64.
    y : ndarray of int, shape (N,)
    l2 : float
        The regularisation coefficient (``>= 0``; with 0 and separable data there is no
        minimum and the fit fails with :class:`ConvergenceError`).
    theta0 : ndarray, shape (P,), optional
        Starting point; default 0 (logistic); required for the MLP.
    method : {"auto", "newton", "lbfgs"}
        ``"auto"``: Newton for logistic regression, L-BFGS for the MLP.
    gtol : float, optional
        Relative gradient-norm tolerance.
    max_iter : int, optional
        Iterations allowed (default 100 Newton, 20,000 L-BFGS).
    backend : str
    check_finite : bool

    Returns
    -------
    MapFit

    Raises
    ------
    ConvergenceError
        If the tolerance is not reached (the message gives the gradient norm reached),
        or, with ``l2 = 0``, if the data are separable (the cost has no minimum: the
        fit classifies every example correctly while its weights grow without bound).
    """
    l2 = chk.check_l2(l2)
    X, y = _as_float64(model, X, y, check_finite, backend)
    if method == "auto":
        method = "lbfgs" if model.kind == "mlp" else "newton"
    if method not in ("newton", "lbfgs"):
        raise ValueError(f"method must be 'auto', 'newton' or 'lbfgs', got {method!r}")
    if method == "newton" and model.kind == "mlp":
        raise ValueError(
            "method='newton' is for logistic regression (a convex cost); fit the MLP "
            "with method='lbfgs' from a starting point theta0"
        )
    if theta0 is None and model.kind == "mlp":
        raise ValueError(
            "fit_map needs theta0 for the MLP: its cost is not convex, so the minimum "
            "depends on where the fit starts (pass e.g. the parameters SGD reached)"
        )
    theta0 = None if theta0 is None else _theta64(model, theta0, "theta0")
    if gtol is None:
        gtol = 1e-10 if method == "newton" else 1e-6
    if not (np.isfinite(gtol) and gtol > 0):
        raise ValueError(f"gtol must be a finite number > 0, got {gtol}")
    if method == "newton":
        with _blas_threads(model.n_params):
            return _newton(
                model, X, y, l2, theta0, gtol, 100 if max_iter is None else int(max_iter), backend
            )
    return _lbfgs(
        model, X, y, l2, theta0, gtol, 20_000 if max_iter is None else int(max_iter), backend
    )


def _newton(model, X, y, l2, theta0, gtol, max_iter, backend):
    red = _reduction(model, X)
    model_r, X_r, index = (model, X, None) if red is None else red
    start = None
    if theta0 is not None:
        start = theta0 if index is None else theta0[index]
    theta_r, cost, gnorm, scale, n_iter, factor = _newton_core(
        model_r, X_r, y, l2, start, gtol, max_iter, backend
    )
    theta = theta_r
    if index is not None:
        theta = np.zeros(model.n_params)
        theta[index] = theta_r
    # Inactive weights sit at 0; if a start put them elsewhere the reduced fit has
    # still found the full minimum, whose cost and gradient are those of theta.
    cost, grad = _cost_grad(model, theta, X, y, l2, backend)
    if l2 == 0 and _separates(model, theta, X, y):
        raise ConvergenceError(
            "fit_map: with l2 = 0 and separable data the cost has no minimum (the fit "
            f"classifies all {X.shape[0]} examples correctly and |grad C| only shrinks as "
            "the weights grow); use l2 > 0"
        )
    return MapFit(
        theta=theta,
        cost=float(cost),
        grad_norm=_norm(grad),
        grad_scale=scale,
        n_iter=n_iter,
        method="newton",
        l2=l2,
        n=X.shape[0],
        _factor=(factor, index),
    )


def _separates(model, theta, X, y):
    """Whether ``theta`` classifies every example correctly with a strict margin."""
    X, y = to_host(X), to_host(y)  # (only with l2 = 0, once per fit)
    p = model.unflatten(theta)
    if model.kind == "logistic_binary":
        z = X @ p["w"] + p["b"][0]
        return bool(np.all(np.where(y == 1, z, -z) > 0))
    Z = X @ p["W"].T + p["b"]
    zy = Z[np.arange(len(y)), y]
    Z[np.arange(len(y)), y] = -np.inf
    return bool(np.all(zy > Z.max(axis=1)))


def _newton_core(model, X, y, l2, theta0, gtol, max_iter, backend):
    P = model.n_params
    zero = np.zeros(P)
    c0, g0 = _cost_grad(model, zero, X, y, l2, backend)
    scale = _norm(g0)
    if theta0 is None:
        theta, cost, grad = zero, c0, g0
    else:
        theta = theta0.copy()
        cost, grad = _cost_grad(model, theta, X, y, l2, backend)
    tol = gtol * scale
    for it in range(max_iter + 1):
        H = _hessian(model, theta, X, y, l2, backend)
        gnorm = _norm(grad)
        if gnorm <= tol:
            try:
                factor = _cholesky.factor(H)
            except np.linalg.LinAlgError:
                factor = None
            return theta, float(cost), gnorm, scale, it, factor
        if it == max_iter:
            break
        try:
            d = -_cholesky.solve(_cholesky.factor(H), grad)
        except np.linalg.LinAlgError:
            # Singular Hessian (l2 = 0): the minimum-norm step.
            d = -_cholesky.lstsq(H, grad)
        slope = float(np.einsum("i,i->", grad, d))
        if not slope < 0:
            d, slope = -grad, -(gnorm**2)
        if -slope <= 1e-12 * max(abs(cost), 1.0):
            # Newton decrement at the rounding floor of C: take the full step.
            theta = theta + d
            cost, grad = _cost_grad(model, theta, X, y, l2, backend)
            continue
        t = 1.0
        while True:
            trial = theta + t * d
            c_new, g_new = _cost_grad(model, trial, X, y, l2, backend)
            if c_new <= cost + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-14:
                raise ConvergenceError(
                    f"fit_map: the Newton line search failed at |grad C| = {gnorm:.3e} "
                    f"(target {tol:.3e}); the cost may not be bounded below (l2 = {l2})"
                )
        theta, cost, grad = trial, c_new, g_new
    raise ConvergenceError(
        f"fit_map: Newton's method did not reach |grad C| <= {gtol:g} |grad C(0)| = "
        f"{tol:.3e} in {max_iter} iterations (reached {gnorm:.3e}); with l2 = {l2} "
        + ("and separable data the cost has no minimum" if l2 == 0 else "raise max_iter")
    )


def _lbfgs(model, X, y, l2, theta0, gtol, max_iter, backend):
    from scipy.optimize import minimize

    if theta0 is None:
        theta0 = np.zeros(model.n_params)
    last = {}

    def fun(theta):
        c, g = _cost_grad(model, np.ascontiguousarray(theta), X, y, l2, backend)
        last["x"], last["g"] = theta.copy(), g
        return c, g

    _, g0 = fun(theta0)
    scale = _norm(g0)
    tol = gtol * scale

    def callback(intermediate_result):
        if np.array_equal(last["x"], intermediate_result.x) and _norm(last["g"]) <= tol:
            raise StopIteration

    res = minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": max_iter, "maxcor": 20, "ftol": 1e-15, "gtol": 0.0, "maxls": 50},
    )
    theta = np.ascontiguousarray(res.x)
    cost, grad = _cost_grad(model, theta, X, y, l2, backend)
    gnorm = _norm(grad)
    status = "converged"
    if gnorm > tol:
        if res.nit >= max_iter:
            raise ConvergenceError(
                f"fit_map: L-BFGS used its {max_iter} iterations and reached |grad C| = "
                f"{gnorm:.3e}, above {gtol:g} |grad C(theta0)| = {tol:.3e}; raise max_iter"
            )
        status = "stalled"  # the cost stopped decreasing: a minimum on a ReLU kink
    return MapFit(theta, float(cost), gnorm, scale, int(res.nit), "lbfgs", l2, X.shape[0], status)


# ------------------------------------------------------------------------ laplace


#: Eigenvalues within this fraction of the Hessian's largest |eigenvalue| below ``l2``
#: count as equal to it (rounding), not as excluded by the rule.
RULE_RTOL = 1e-11


def _occam_from_eigenvalues(ev, l2):
    """``1/2 sum ln(lambda_i / l2)`` over ``lambda_i >= l2`` and how many were dropped."""
    tol = RULE_RTOL * max(float(np.max(np.abs(ev))), l2)
    keep = ev >= l2 - tol
    return 0.5 * float(np.sum(np.log(np.maximum(ev[keep], l2) / l2))), int(np.sum(~keep))


def _dense_occam(model, theta, X, y, l2, method, fit, backend):
    """Exact Occam term from the dense Hessian: ``(occam, n_excluded, eigenvalues)``."""
    P = model.n_params
    red = _reduction(model, X) if model.kind != "mlp" else None
    model_r, X_r, index = (model, X, None) if red is None else red
    theta_r = theta if index is None else theta[index]
    factor = None
    if method == "cholesky" and fit is not None and fit._factor is not None:
        factor, f_index = fit._factor
        if not (
            (f_index is None and index is None)
            or (f_index is not None and index is not None and np.array_equal(f_index, index))
        ):
            factor = None
    if factor is None:
        H = _hessian(model_r, theta_r, X_r, y, l2, backend)
    if method == "cholesky":
        try:
            if factor is None:
                factor = _cholesky.factor(H)
        except np.linalg.LinAlgError:
            raise ValueError(
                "laplace: the Hessian is not positive definite at theta (not a minimum?); "
                "use method='eigh', which applies the paper's rule lambda_i >= l2"
            ) from None
        logdet = _cholesky.logdet(factor)
        # Logistic regression: every eigenvalue >= l2, nothing to exclude. MLP: the full
        # log-determinant, without the rule; how many fall below l2 is not known here.
        excluded = 0 if model.kind != "mlp" else float("nan")
        return 0.5 * (logdet - model_r.n_params * np.log(l2)), excluded, None
    ev = (
        to_host(namespace(H).linalg.eigvalsh(H))
        if on_device(H)
        else sl.eigvalsh(H, check_finite=False)
    )
    if index is not None:  # the inactive parameters' eigenvalues are exactly l2
        ev = np.sort(np.concatenate([ev, np.full(P - index.size, l2)]))
    occam, n_excluded = _occam_from_eigenvalues(ev, l2)
    return occam, n_excluded, ev


def laplace(
    model,
    theta_map,
    X,
    y,
    l2,
    *,
    method="auto",
    n_probes=30,
    steps=40,
    seed=0,
    backend="auto",
    check_finite=True,
):
    """The Laplace evidence at ``theta_map`` (Smith & Le, Eqs. 7-9).

    Returns ``C(theta_0)``, the Occam term ``1/2 sum ln(lambda_i / l2)`` over the
    eigenvalues ``lambda_i >= l2`` of the Hessian of ``C`` (the paper's rule; see the
    module docstring), the log evidence, the null model's ``-N ln n`` and the log
    ratio ``E`` in favour of the null, with ``E / N``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta_map : ndarray, shape (P,), or MapFit
        The minimum (from :func:`fit_map`; a MapFit lets the logistic evidence reuse
        the fit's Cholesky factor).
    X : ndarray, shape (N, D), float32 or float64
        The training set (cast to float64).
    y : ndarray of int, shape (N,)
    l2 : float
        The prior precision, ``> 0``.
    method : {"auto", "cholesky", "eigh", "slq"}
        ``"cholesky"``: ``sum ln lambda_i = 2 sum ln diag(L)`` over every eigenvalue of
        the exact dense Hessian (default for logistic regression, whose every
        ``lambda_i >= l2``, so the rule has nothing to drop). For an MLP this is the
        Laplace evidence without the rule -- laplace-torch's convention -- and
        ``n_excluded`` is NaN; it fails if the Hessian is not positive definite.
        ``"eigh"``: the dense Hessian's eigenvalues, with the rule applied (exact;
        default for an MLP with ``P <=`` :data:`DENSE_MAX_PARAMS`). ``"slq"``:
        stochastic Lanczos quadrature of ``tr f(H)`` with
        ``f(x) = ln(x / l2) [x >= l2]`` on :class:`~sgdcore.curvature.HessianOperator`
        (default for larger MLPs), with a standard error.
    n_probes, steps, seed : int
        SLQ's probes, Lanczos steps per probe and seed.
    backend : str
    check_finite : bool

    Returns
    -------
    LaplaceResult

    Examples
    --------
    One example ``x = 0`` (so only the bias matters) at the minimum ``theta = 0``:
    ``C = ln 2``, the bias's Hessian is ``1/4 + l2``, and ``E = occam`` since
    ``C = N ln 2``:

    >>> import numpy as np
    >>> from sgdcore import evidence, models
    >>> r = evidence.laplace(models.LogisticRegression(1), np.zeros(2), np.zeros((1, 1)),
    ...                      np.array([1]), l2=0.25)
    >>> bool(np.isclose(r.log_ratio, 0.5 * np.log(2.0)))
    True
    """
    l2 = chk.check_l2(l2)
    if l2 <= 0:
        raise ValueError("laplace needs l2 > 0: the Gaussian prior of precision l2 is improper")
    X, y = _as_float64(model, X, y, check_finite, backend)
    fit = None
    if isinstance(theta_map, MapFit):
        fit = theta_map
        if fit.l2 != l2 or fit.n != X.shape[0] or fit.theta.shape != (model.n_params,):
            raise ValueError(
                f"the MapFit was made with l2={fit.l2} on {fit.n} examples, not "
                f"l2={l2} on {X.shape[0]}; pass its theta instead"
            )
        theta = fit.theta
    else:
        theta = _theta64(model, theta_map, "theta_map")
    if method == "auto":
        if model.kind != "mlp":
            method = "cholesky"
        else:
            method = "eigh" if model.n_params <= DENSE_MAX_PARAMS else "slq"
    if method not in ("cholesky", "eigh", "slq"):
        raise ValueError(f"method must be 'auto', 'cholesky', 'eigh' or 'slq', got {method!r}")
    cost, grad = _cost_grad(model, theta, X, y, l2, backend)
    n, P = X.shape[0], model.n_params
    std_error, eigenvalues, n_excluded = 0.0, None, 0

    if method == "slq":
        op = HessianOperator(
            model, _on_side(theta, X), X, y, l2=l2, backend=backend, check_finite=False
        )
        est, below = slq(
            op,
            (
                lambda x: np.where(x >= l2, np.log(np.maximum(x, l2) / l2), 0.0),
                lambda x: (x < l2 - RULE_RTOL * max(float(np.abs(x).max()), l2)).astype(float),
            ),
            n_probes=n_probes,
            steps=steps,
            seed=seed,
        )
        occam, std_error, n_excluded = 0.5 * est.estimate, 0.5 * est.std_error, below.estimate
    else:
        with _blas_threads(P):
            occam, n_excluded, eigenvalues = _dense_occam(
                model, theta, X, y, l2, method, fit, backend
            )
    return _result(
        cost,
        occam,
        std_error,
        method,
        n,
        P,
        model.n_classes,
        l2,
        _norm(grad),
        n_excluded,
        eigenvalues,
        theta,
        fit,
    )


def _result(
    cost,
    occam,
    std_error,
    method,
    n,
    P,
    n_classes,
    l2,
    grad_norm,
    n_excluded,
    eigenvalues=None,
    theta=None,
    fit=None,
):
    cost, occam = float(cost), float(occam)
    log_ratio = cost + occam - n * np.log(n_classes)
    return LaplaceResult(
        cost=cost,
        occam=occam,
        log_evidence=-(cost + occam),
        null_log_evidence=float(-n * np.log(n_classes)),
        log_ratio=float(log_ratio),
        log_ratio_per_example=float(log_ratio / n),
        std_error=float(std_error),
        method=method,
        n=int(n),
        n_params=int(P),
        n_classes=int(n_classes),
        l2=float(l2),
        grad_norm=float(grad_norm),
        n_excluded=n_excluded,
        eigenvalues=eigenvalues,
        theta=theta,
        fit=fit,
    )


def laplace_from_hessian(cost, H, l2, *, n, n_classes):
    """The Laplace evidence from the cost at a minimum and the dense Hessian there.

    The model-free core of :func:`laplace`, for any twice-differentiable cost
    ``C = -ln P(y | theta) + (l2/2) |theta|^2`` with prior ``N(0, I / l2)``:
    ``ln P(y) ~= -(C(theta_0) + 1/2 sum_{lambda_i >= l2} ln(lambda_i / l2))``, exact
    when ``C`` is quadratic (a conjugate Gaussian model).

    Parameters
    ----------
    cost : float
        ``C(theta_0)``, including ``(l2/2) |theta_0|^2`` and every normalising constant
        of the likelihood.
    H : ndarray, shape (P, P)
        The Hessian of ``C`` at ``theta_0`` (including ``l2 I``), symmetric.
    l2 : float
        The prior precision, ``> 0``.
    n : int
        Number of observations (for ``E / N``).
    n_classes : int
        ``n`` of the null model ``-N ln n``.

    Returns
    -------
    LaplaceResult
        ``method="eigh"``, with the spectrum; ``grad_norm`` is NaN (unknown here).
    """
    l2 = chk.check_l2(l2)
    if l2 <= 0:
        raise ValueError("laplace_from_hessian needs l2 > 0")
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square matrix, got shape {H.shape}")
    chk.check_finite("H", H)
    ev = sl.eigvalsh(H)
    occam, n_excluded = _occam_from_eigenvalues(ev, l2)
    return _result(
        cost, occam, 0.0, "eigh", n, H.shape[0], n_classes, l2, float("nan"), n_excluded, ev
    )


# ------------------------------------------------------------------ regularisation path


def evidence_path(
    model, X, y, l2_values, *, gtol=1e-10, max_iter=100, backend="auto", workers=None
):
    """MAP fit and Laplace evidence of logistic regression at each of ``l2_values``.

    The values are visited from the strongest regularisation to the weakest. Each fit
    starts from the previous minimum moved along the path's tangent,
    ``d theta / d ln l2 = -l2 H^{-1} theta`` (one triangular solve with the previous
    Cholesky factor), so Newton's method needs few iterations; each evidence reuses the
    factor its fit ended with. Every fit meets ``gtol`` on its own; the path only
    changes where it starts.

    Parameters
    ----------
    model : LogisticRegression
    X : ndarray, shape (N, D), float32 or float64
    y : ndarray of int, shape (N,)
    l2_values : sequence of float
        Each ``> 0``.
    gtol, max_iter : as in :func:`fit_map`
    backend : str
    workers : int, optional
        Chains of the path run side by side when the model is small (at most
        ``SINGLE_THREAD_MAX_PARAMS`` parameters; BLAS then runs on one thread): the
        sorted values are cut into this many contiguous stretches, each warm-started on
        its own. Default: one per core; pass 1 when calling from parallel workers.

    Returns
    -------
    list of LaplaceResult
        In the order of ``l2_values``; ``result.fit`` is the :class:`MapFit`.
    """
    if model.kind == "mlp":
        raise ValueError("evidence_path is for logistic regression; use fit_map and laplace")
    lams = np.asarray(l2_values, dtype=np.float64).reshape(-1)
    if lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams <= 0):
        raise ValueError(f"l2_values must be finite and > 0, got {l2_values!r}")
    X, y = _as_float64(model, X, y, True, backend)
    order = np.argsort(-lams, kind="stable")
    results: list[LaplaceResult | None] = [None] * lams.size
    if model.n_params > SINGLE_THREAD_MAX_PARAMS or on_device(X):
        # BLAS threads share each fit; or the GPU does the work (one chain, the caller's
        # thread, whose current device and stream hold the data)
        _path(model, X, y, lams, order, results, gtol, max_iter, backend)
        return results
    # Small problems: BLAS on one thread and the path cut into one contiguous chain per
    # core, run side by side (each chain warm-starts along its own stretch).
    n_chains = cores() if workers is None else int(workers)
    if n_chains < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    chains = [c for c in np.array_split(order, min(n_chains, lams.size)) if c.size]
    with _blas_threads(model.n_params), ThreadPoolExecutor(len(chains)) as pool:
        for f in [
            pool.submit(_path, model, X, y, lams, c, results, gtol, max_iter, backend)
            for c in chains
        ]:
            f.result()
    return results


def _path(model, X, y, lams, order, results, gtol, max_iter, backend):
    """Fits and evidences at lams[order], in that order, warm-started along the way, into
    results[order].
    """
    start, prev, before = None, None, None
    for i in order:
        lam = float(lams[i])
        if prev is not None and prev.fit._factor[0] is not None:
            start = _predict(prev, before, lam)
        fit = fit_map(
            model,
            X,
            y,
            lam,
            theta0=start,
            gtol=gtol,
            max_iter=max_iter,
            backend=backend,
            check_finite=False,
        )
        before = prev
        prev = results[i] = laplace(model, fit, X, y, lam, backend=backend, check_finite=False)


def _predict(prev, before, lam):
    """Start of the next fit: ``theta(s)`` extrapolated in ``s = ln l2`` from the last
    minimum, its tangent ``d theta / ds = -l2 H^{-1} theta`` and (when there is one) the
    minimum before it (a quadratic through the three).
    """
    factor, index = prev.fit._factor
    sub = (lambda t: t) if index is None else (lambda t: t[index])
    th = sub(prev.theta)
    tangent = -prev.l2 * _cholesky.solve(factor, th)
    h = np.log(lam) - np.log(prev.l2)
    step = h * tangent
    if before is not None:
        h1 = np.log(prev.l2) - np.log(before.l2)
        curvature = (sub(before.theta) - th + h1 * tangent) / h1**2
        step += h**2 * curvature
    start = prev.theta.copy()
    if index is None:
        start += step
    else:
        start[index] += step
    return start
