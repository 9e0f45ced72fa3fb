"""Randomised estimates over a symmetric operator: the trace (Hutchinson, Hutch++), the
log-determinant and ``tr f(A)`` by stochastic Lanczos quadrature, and the spectral
density SLQ implies. Every estimate comes with its standard error and is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import is_int
from ._lanczos import _vectors, as_operator, gauss_quadrature, lanczos_tridiagonal

__all__ = ["Estimate", "SpectralDensity", "logdet", "slq", "spectral_density", "trace"]


@dataclass(frozen=True, eq=False)
class Estimate:
    """A randomised estimate and its standard error.

    Attributes
    ----------
    estimate : float
    std_error : float
        Standard error of ``estimate`` (sample standard deviation of the per-probe
        values over the square root of their number); 0 when the estimate is exact.
    n_probes : int
        Random probe vectors used.
    n_products : int
        Operator-vector products used.
    """

    estimate: float
    std_error: float
    n_probes: int
    n_products: int

    def __float__(self) -> float:
        return float(self.estimate)


@dataclass(frozen=True, eq=False)
class SpectralDensity:
    """The eigenvalue density of an operator estimated by SLQ.

    Attributes
    ----------
    grid : ndarray, shape (G,)
        Points at which the density is evaluated.
    density : ndarray, shape (G,)
        ``(1/P) sum_i N(x; lambda_i, sigma^2)`` estimated from the quadrature rules:
        integrates to 1 over the real line.
    nodes, weights : ndarray, shape (n_probes, steps)
        Each probe's Gauss quadrature rule (weights of one probe sum to 1; rules cut
        short by an invariant Krylov space are padded with weight 0).
    sigma : float
        Width of the Gaussian each node is smoothed by.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float


def _count(name, value, minimum=1):
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _rademacher(rng, n, k):
    return rng.integers(0, 2, size=(n, k)).astype(np.float64) * 2.0 - 1.0


def _mean_se(values):
    values = np.asarray(values, dtype=np.float64)
    m = values.size
    se = float(np.std(values, ddof=1) / np.sqrt(m)) if m > 1 else float("nan")
    return float(np.mean(values)), se


def trace(op, *, n_products=60, method="hutch++", seed=0):
    """Trace of a symmetric operator from ``n_products`` operator-vector products.

    ``"hutchinson"``: ``(1/m) sum_j z_j^T A z_j`` over ``m = n_products`` Rademacher
    probes ``z_j``. ``"hutch++"`` (Meyer, Musco, Musco & Woodruff 2021): a third of the
    products find ``Q``, an orthonormal basis of ``A S`` for random signs ``S``; a third
    give ``tr(Q^T A Q)`` exactly; the last third estimate the trace of the deflated
    remainder ``(I - Q Q^T) A (I - Q Q^T)`` by Hutchinson, whose variance is much
    smaller when the spectrum decays. Operators with ``P <= n_products`` are traced
    exactly through ``A I``.

    Parameters
    ----------
    op : LinearOperator, ndarray or sparse matrix, shape (P, P)
    n_products : int
        Budget of operator-vector products (``>= 2``; ``>= 6`` for Hutch++).
    method : {"hutch++", "hutchinson"}
    seed : int

    Returns
    -------
    Estimate
        ``std_error``: of the Hutchinson part (for Hutch++, conditional on ``Q``).
    """
    A = as_operator(op)
    n = A.shape[0]
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(f"method must be 'hutch++' or 'hutchinson', got {method!r}")
    m = _count("n_products", n_products, 6 if method == "hutch++" else 2)
    # Vector work on the operator's side: for an operator on the GPU the probes go there
    # once per block and only the per-probe values come back (see _lanczos).
    vs = _vectors(A)
    if n <= m:
        eye = vs.upload(np.eye(n))
        return Estimate(float(np.sum(vs.column_dots(eye, vs.matmat(eye)))), 0.0, 0, n)
    rng = np.random.default_rng(seed)
    if method == "hutchinson":
        Z = vs.upload(_rademacher(rng, n, m))
        vals = vs.column_dots(Z, vs.matmat(Z))
        est, se = _mean_se(vals)
        return Estimate(est, se, m, m)
    s = m // 3
    g = m - 2 * s
    # Dense algebra by SciPy (its BLAS is the compiled kernels'; see _lanczos).
    Q = vs.orthonormal_basis(vs.matmat(_rademacher(rng, n, s)))
    exact = vs.total_dot(Q, vs.matmat(Q))
    G = vs.deflate(Q, _rademacher(rng, n, g))
    vals = vs.column_dots(G, vs.matmat(G))
    est, se = _mean_se(vals)
    return Estimate(exact + est, se, g, 2 * s + g)


def _probe_rules(A, n_probes, steps, seed, reorth):
    """Gauss rules ``(nodes, weights)`` of ``n_probes`` Rademacher probes."""
    n = A.shape[0]
    rng = np.random.default_rng(seed)
    rules = []
    for _ in range(n_probes):
        z = _rademacher(rng, n, 1)[:, 0]
        alpha, beta = lanczos_tridiagonal(A, z / np.sqrt(n), steps, reorth=reorth)
        rules.append(gauss_quadrature(alpha, beta))
    return rules


def slq(op, f, *, n_probes=20, steps=30, seed=0, reorth=True):
    """``tr f(A)`` by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017).

    For each Rademacher probe ``z`` (``|z|^2 = P``), ``steps`` Lanczos steps from
    ``z / |z|`` give a Gauss rule ``(theta_j, tau_j^2)`` with
    ``z^T f(A) z ~= P sum_j tau_j^2 f(theta_j)``; the estimate is the mean over probes.

    Parameters
    ----------
    op : LinearOperator, ndarray or sparse matrix, shape (P, P)
        Symmetric.
    f : callable or tuple of callables
        Applied element-wise to an array of Ritz values. Several functions share the
        same probes and Lanczos runs.
    n_probes : int
        ``>= 2`` (the standard error needs two).
    steps : int
        Lanczos steps per probe (capped at ``P``; fewer when the Krylov space becomes
        invariant, where the rule is exact).
    seed : int
    reorth : bool
        Full reorthogonalisation (``steps x P`` memory); keeps the rule's nodes free of
        spurious copies.

    Returns
    -------
    Estimate, or a tuple of Estimate (one per function) when ``f`` is a tuple
    """
    A = as_operator(op)
    n = A.shape[0]
    _count("n_probes", n_probes, 2)
    _count("steps", steps)
    funcs = f if isinstance(f, tuple) else (f,)
    if not all(callable(g) for g in funcs):
        raise TypeError("f must be a callable or a tuple of callables")
    rules = _probe_rules(A, n_probes, steps, seed, reorth)
    n_products = sum(len(x) for x, _ in rules)
    out = []
    for g in funcs:
        vals = [n * float(np.sum(w * np.asarray(g(x), dtype=np.float64))) for x, w in rules]
        est, se = _mean_se(vals)
        out.append(Estimate(est, se, n_probes, n_products))
    return tuple(out) if isinstance(f, tuple) else out[0]


def logdet(op, *, shift=0.0, n_probes=20, steps=30, seed=0, reorth=True):
    """``log det(A + shift I)`` of a symmetric positive-definite operator by SLQ.

    ``tr log(A + shift I)`` through :func:`slq` with ``f(x) = log(x + shift)``.

    Parameters
    ----------
    op : LinearOperator, ndarray or sparse matrix, shape (P, P)
    shift : float
        Added to the diagonal (e.g. a prior precision).
    n_probes, steps, seed, reorth
        As in :func:`slq`.

    Returns
    -------
    Estimate

    Raises
    ------
    ValueError
        If a Ritz value of ``A + shift I`` is not positive (the operator is not
        positive definite).
    """
    shift = float(shift)
    if not np.isfinite(shift):
        raise ValueError(f"shift must be finite, got {shift}")

    def f(x):
        x = x + shift
        if np.any(x <= 0):
            raise ValueError(
                f"logdet: A + shift I is not positive definite (a Ritz value is "
                f"{float(np.min(x)):.6g}); log det is undefined"
            )
        return np.log(x)

    return slq(op, f, n_probes=n_probes, steps=steps, seed=seed, reorth=reorth)


def spectral_density(
    op, *, n_probes=10, steps=60, grid=None, n_grid=512, sigma=None, seed=0, reorth=True
):
    """Smoothed eigenvalue density of a symmetric operator by SLQ (for plots).

    Each probe's Gauss rule ``(theta_j, tau_j^2)`` contributes
    ``tau_j^2 N(x; theta_j, sigma^2)``; the density is the mean over probes
    (Ghorbani, Krishnan & Xiao 2019; PyHessian's ``density``).

    Parameters
    ----------
    op : LinearOperator, ndarray or sparse matrix, shape (P, P)
    n_probes, steps, seed, reorth
        As in :func:`slq` (here one probe is allowed).
    grid : ndarray, optional
        Where to evaluate; default ``n_grid`` points spanning the nodes plus 5 sigma.
    n_grid : int
    sigma : float, optional
        Smoothing width; default 1 % of the span of the nodes.

    Returns
    -------
    SpectralDensity
    """
    A = as_operator(op)
    _count("n_probes", n_probes)
    _count("steps", steps)
    rules = _probe_rules(A, n_probes, steps, seed, reorth)
    width = max(len(x) for x, _ in rules)
    nodes = np.zeros((n_probes, width))
    weights = np.zeros((n_probes, width))
    for i, (x, w) in enumerate(rules):
        nodes[i, : len(x)] = x
        nodes[i, len(x) :] = x[-1]
        weights[i, : len(w)] = w
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    sigma = float(sigma)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, _count("n_grid", n_grid, 2))
    grid = np.asarray(grid, dtype=np.float64)
    diff = (grid[:, None] - nodes.ravel()[None, :]) / sigma
    kern = np.exp(-0.5 * diff**2) / (sigma * np.sqrt(2 * np.pi))
    density = kern @ weights.ravel() / n_probes
    return SpectralDensity(grid, density, nodes, weights, sigma)
