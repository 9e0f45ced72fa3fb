"""Stationary fluctuations of momentum SGD near a minimum (Smith & Le, Appendix D).

Near a minimum the mean cost ``C/N`` is quadratic with Hessian ``H`` (of ``C/N``) and a
mini-batch gradient is ``H θ + ξ`` with noise ``ξ`` of covariance ``S``. For batches of
``B`` examples drawn without replacement, ``S = F (N/B - 1) / N`` in the paper's form
(Section 5: ``<α α> = N (N/B - 1) F`` for the summed gradient, divided by ``N^2``;
exactly ``F (N - B) / (B (N - 1))``), with ``F`` the per-example gradient covariance.

**The SDE's prediction.** Appendix D matches heavy-ball momentum SGD,
``v <- m v - ε (H θ + ξ)``, ``θ <- θ + v``, to the underdamped Langevin equation
``d²ω/dt² = -γ dω/dt - dC/dω + η``, ``<η η> = g γ F δ``, with ``Δt = (ε/N)^{1/2}`` and
``m = 1 - γ Δt``, and finds the noise scale ``g = ε (N/B - 1) / (1 - m)``. Where the
damping is strong on the time scale of the cost (``ε h << 1 - m`` for every curvature
``h``), the velocity relaxes fast and the position obeys the overdamped equation
``dω/dt = -dC/dω + η`` with ``<η η> = g F δ`` (Eq. 11), so the stationary covariance
``Σ`` of ``θ`` solves the Lyapunov equation of its Ornstein-Uhlenbeck process,
``N H Σ + Σ N H = g F``, i.e.::

    H Σ + Σ H = (g / N) F = (ε / (1 - m)) S                         (SDE)

In one dimension, ``Var θ = g F / (2 N h) = ε s² / (2 h (1 - m))`` with ``s² = S``:
the effective learning rate ``ε / (1 - m)`` and the noise scale ``g`` set the
temperature, as the paper says.

**The exact answer.** The recursion is linear in the state ``z = (θ, v)``:
``z' = A z + b ξ`` with ``A = [[I - ε H, m I], [-ε H, m I]]`` and ``b = (-ε I, -ε I)``,
so ``Σ_z = A Σ_z Aᵀ + ε² [[S, S], [S, S]]`` (a discrete Lyapunov equation) for any ``ε``
inside the stability region. In one dimension it is the AR(2) process
``θ' = (1 + m - ε h) θ - m θ_prev - ε ξ``, whose variance is::

    Var θ = ε s² (1 + m) / ((1 - m) h (2 (1 + m) - ε h))           (discrete)

It tends to the SDE's ``ε s² / (2 h (1 - m))`` as ``ε h / (2 (1 + m)) -> 0``; the two
part as ``ε h`` grows (the ratio is ``2 (1 + m) / (2 (1 + m) - ε h)``) and the
recursion diverges at ``ε h = 2 (1 + m)``. :func:`simulate_quadratic` and
:func:`simulate_sgd` measure the stationary covariance by simulation, independently of
both formulas.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sl

from . import _validate as v
from ._validate import is_int
from .losses import loss_and_grad

__all__ = [
    "discrete_stationary_cov",
    "minibatch_noise_cov",
    "sde_stationary_cov",
    "simulate_quadratic",
    "simulate_sgd",
]


def _square(name: str, a) -> np.ndarray:
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"{name} must be a square matrix (or a scalar), got shape {a.shape}")
    v.check_finite(name, a)
    if not np.allclose(a, a.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(a).max()))):
        raise ValueError(f"{name} must be symmetric")
    return 0.5 * (a + a.T)


def _lr_momentum(lr, momentum) -> tuple[float, float]:
    lr, momentum = float(lr), float(momentum)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if not (0 <= momentum < 1):
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    return lr, momentum


def _problem(hessian, noise_cov):
    H, S = _square("hessian", hessian), _square("noise_cov", noise_cov)
    if H.shape != S.shape:
        raise ValueError(f"hessian {H.shape} and noise_cov {S.shape} must have the same shape")
    if np.linalg.eigvalsh(H)[0] <= 0:
        raise ValueError("hessian must be positive definite (a minimum)")
    return H, S


def minibatch_noise_cov(per_example_cov, n: int, batch_size: int, *, exact=False):
    """Covariance of the mini-batch mean gradient's noise, ``S``.

    Parameters
    ----------
    per_example_cov : array_like, shape (P, P)
        ``F = (1/N) sum_i g_i g_iᵀ - G Gᵀ``.
    n, batch_size : int
        ``N`` and ``B`` (``1 <= B <= N``).
    exact : bool
        False: the paper's ``F (N/B - 1) / N``; True: the exact covariance of a batch
        drawn without replacement, ``F (N - B) / (B (N - 1))``.

    Returns
    -------
    ndarray, shape (P, P)
    """
    F = _square("per_example_cov", per_example_cov)
    if not (1 <= batch_size <= n):
        raise ValueError(f"batch_size must lie in [1, n = {n}], got {batch_size}")
    if exact:
        return F * ((n - batch_size) / (batch_size * (n - 1)) if n > 1 else 0.0)
    return F * (n / batch_size - 1.0) / n


def sde_stationary_cov(hessian, noise_cov, lr, momentum=0.0) -> np.ndarray:
    """The SDE's stationary covariance: ``Σ`` with ``H Σ + Σ H = (ε / (1 - m)) S``.

    Parameters
    ----------
    hessian : array_like, shape (P, P) or scalar
        ``H``, the Hessian of the mean cost ``C / N`` (positive definite).
    noise_cov : array_like, shape (P, P) or scalar
        ``S``, the covariance of the mini-batch gradient's noise
        (:func:`minibatch_noise_cov`).
    lr : float
        ``ε > 0``.
    momentum : float
        ``m`` in [0, 1).

    Returns
    -------
    ndarray, shape (P, P)

    Examples
    --------
    One dimension: ``ε s² / (2 h (1 - m))``.

    >>> round(float(sde_stationary_cov(2.0, 3.0, 0.1, 0.9)[0, 0]), 12)  # 0.1*3 / (2*2*0.1)
    0.75
    """
    H, S = _problem(hessian, noise_cov)
    lr, momentum = _lr_momentum(lr, momentum)
    sigma = sl.solve_continuous_lyapunov(H, lr / (1.0 - momentum) * S)
    return 0.5 * (sigma + sigma.T)


def transition(hessian, lr, momentum=0.0) -> np.ndarray:
    """The matrix ``A`` of ``(θ, v) <- A (θ, v) + b ξ`` (heavy-ball momentum SGD)."""
    H = _square("hessian", hessian)
    P = H.shape[0]
    eye = np.eye(P)
    return np.block([[eye - lr * H, momentum * eye], [-lr * H, momentum * eye]])


def discrete_stationary_cov(hessian, noise_cov, lr, momentum=0.0) -> np.ndarray:
    """The exact stationary covariance of ``θ`` under momentum SGD on a quadratic.

    Solves ``Σ_z = A Σ_z Aᵀ + ε² [[S, S], [S, S]]`` for the state ``z = (θ, v)`` (see the
    module docstring) and returns its ``θ`` block.

    Parameters
    ----------
    hessian, noise_cov, lr, momentum
        As in :func:`sde_stationary_cov`.

    Returns
    -------
    ndarray, shape (P, P)

    Raises
    ------
    ValueError
        If the recursion is unstable (spectral radius of ``A`` >= 1: some curvature
        ``h`` has ``ε h >= 2 (1 + m)``); it then has no stationary distribution.

    Examples
    --------
    One dimension: ``ε s² (1 + m) / ((1 - m) h (2 (1 + m) - ε h))``.

    >>> h, s2, eps, m = 2.0, 3.0, 0.1, 0.9
    >>> exact = eps * s2 * (1 + m) / ((1 - m) * h * (2 * (1 + m) - eps * h))
    >>> bool(np.isclose(discrete_stationary_cov(h, s2, eps, m)[0, 0], exact))
    True
    """
    H, S = _problem(hessian, noise_cov)
    lr, momentum = _lr_momentum(lr, momentum)
    A = transition(H, lr, momentum)
    radius = float(np.max(np.abs(np.linalg.eigvals(A))))
    if radius >= 1.0:
        h = float(np.linalg.eigvalsh(H)[-1])
        raise ValueError(
            f"momentum SGD is unstable at lr = {lr}, momentum = {momentum}: lr * h_max = "
            f"{lr * h:.4g} >= 2 (1 + m) = {2 * (1 + momentum):.4g} (spectral radius "
            f"{radius:.4g}); there is no stationary distribution"
        )
    Q = lr**2 * np.block([[S, S], [S, S]])
    sigma = sl.solve_discrete_lyapunov(A, Q)[: H.shape[0], : H.shape[0]]
    return 0.5 * (sigma + sigma.T)


def _counts(steps, burn_in, replicas, thin):
    for name, val, lo in (("steps", steps, 1), ("replicas", replicas, 1), ("thin", thin, 1)):
        if not is_int(val) or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {val!r}")
    if not is_int(burn_in):
        raise ValueError(f"burn_in must be an integer, got {burn_in!r}")
    if not 0 <= burn_in < steps:
        raise ValueError(f"burn_in must lie in [0, steps = {steps}), got {burn_in}")


def simulate_quadratic(
    hessian, noise_cov, lr, momentum=0.0, *, steps, burn_in, replicas=16, thin=1, seed=0
) -> np.ndarray:
    """Momentum SGD on ``C/N = (1/2) θᵀ H θ`` with injected Gaussian gradient noise.

    ``replicas`` independent runs from ``θ = 0`` (velocity 0) of
    ``v <- m v - ε (H θ + ξ)``, ``θ <- θ + v`` with ``ξ ~ N(0, S)`` drawn from NumPy's
    Philox generator keyed by ``seed``.

    Parameters
    ----------
    hessian, noise_cov, lr, momentum
        As in :func:`sde_stationary_cov`.
    steps, burn_in, replicas, thin : int
        Steps per run; the first ``burn_in`` are discarded, then every ``thin``-th
        state is kept.
    seed : int

    Returns
    -------
    ndarray, shape (replicas, kept, P)
        The kept states (feed to :func:`sgdcore.sample.effective_sample_size` for the
        Monte-Carlo error of their variance).
    """
    H, S = _problem(hessian, noise_cov)
    lr, momentum = _lr_momentum(lr, momentum)
    _counts(steps, burn_in, replicas, thin)
    P = H.shape[0]
    w, U = np.linalg.eigh(S)
    root = U * np.sqrt(np.maximum(w, 0.0))  # S = root rootᵀ
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, 0x51D])))
    theta = np.zeros((replicas, P))
    vel = np.zeros((replicas, P))
    keep = list(range(burn_in + thin, steps + 1, thin))
    out = np.empty((replicas, len(keep), P))
    k = 0
    for t in range(1, steps + 1):
        xi = rng.standard_normal((replicas, P)) @ root.T
        vel = momentum * vel - lr * (theta @ H + xi)
        theta = theta + vel
        if k < len(keep) and t == keep[k]:
            out[:, k] = theta
            k += 1
    if not np.isfinite(out).all():
        raise FloatingPointError("simulate_quadratic diverged: lr too large for this hessian")
    return out


def simulate_sgd(
    model,
    theta0,
    X,
    y,
    *,
    lr,
    momentum=0.0,
    batch_size,
    l2=0.0,
    steps,
    burn_in,
    replicas=4,
    thin=1,
    seed=0,
    backend="auto",
):
    """Momentum SGD on a model's cost from ``theta0``, with independent random batches.

    The paper's update (``v <- m v - ε (mean_batch g_i + (l2/N) θ)``, ``θ <- θ + v``)
    with each step's batch a fresh uniform draw of ``B`` distinct examples, independent
    of the other steps -- the sampling Section 5's noise model ``N (N/B - 1) F``
    assumes. (Epoch-wise reshuffling, as :func:`sgdcore.train` does, makes the noise
    of the steps within an epoch sum to zero, and so lowers the stationary variance
    below the formula's whenever the relaxation time exceeds an epoch.) Replica ``r``
    draws from NumPy's Philox generator keyed by ``SeedSequence([seed, r])``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta0 : ndarray, shape (P,), float64
        The start, e.g. the minimum from :func:`sgdcore.evidence.fit_map`.
    X, y
        The training set (float64).
    lr, momentum, batch_size, l2
        ``ε``, ``m``, ``B`` and the summed cost's L2 coefficient.
    steps, burn_in, replicas, thin : int
        As in :func:`simulate_quadratic`.
    seed : int
    backend : str
        Backend of :func:`sgdcore.loss_and_grad`.

    Returns
    -------
    ndarray, shape (replicas, kept, P)
    """
    theta0, X, y = v.check_data(model, theta0, X, y)
    lr, momentum = _lr_momentum(lr, momentum)
    l2 = v.check_l2(l2)
    _counts(steps, burn_in, replicas, thin)
    n = X.shape[0]
    if not is_int(batch_size):
        raise ValueError(f"batch_size must be an integer, got {batch_size!r}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must lie in [1, N = {n}], got {batch_size}")
    keep = list(range(burn_in + thin, steps + 1, thin))
    out = np.empty((replicas, len(keep), model.n_params), dtype=theta0.dtype)
    grad = np.empty_like(theta0)
    for r in range(replicas):
        rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, r])))
        theta = theta0.copy()
        vel = np.zeros_like(theta)
        k = 0
        for t in range(1, steps + 1):
            idx = np.sort(rng.choice(n, batch_size, replace=False))
            loss_and_grad(
                model,
                theta,
                X[idx],
                y[idx],
                reduction="mean",
                out=grad,
                backend=backend,
                check_finite=False,
            )
            grad += (l2 / n) * theta
            vel *= momentum
            vel -= lr * grad
            theta += vel
            if k < len(keep) and t == keep[k]:
                out[r, k] = theta
                k += 1
        if not np.isfinite(theta).all():
            raise FloatingPointError(f"simulate_sgd: replica {r} diverged (lr = {lr})")
    return out
