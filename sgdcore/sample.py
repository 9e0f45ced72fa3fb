"""Posterior sampling by Langevin dynamics (Smith & Le, Appendix A, Eqs. 13-14).

The overdamped Langevin equation ``dω/dt = -dC/dω + η``, ``<η(t) η(t')> = 2 T I δ(t - t')``
(Eq. 13) has the stationary distribution ``P(ω) ∝ exp(-C(ω) / T)``: at ``T = 1`` the
posterior ``exp(-C)`` of the summed cost ``C = sum_i CE_i + (l2/2)|ω|^2`` (Eq. 2). Its
Euler discretisation over a time step ``ε / N`` is the paper's sampler (Eq. 14)::

    Δω = -(ε / N) dC/dω + α,    α ~ N(0, (2 ε T / N) I)

i.e. a plain gradient step of learning rate ``ε`` on the mean cost ``C / N`` plus
Gaussian noise. With ``batch_size=B < N`` the gradient is the mini-batch estimate
``(N/B) sum_{i in batch} dCE_i/dω + l2 ω`` (stochastic gradient Langevin dynamics,
Welling & Teh 2011); the mini-batch noise then adds to ``α``. The samples carry a
discretisation bias that grows with ``ε`` (Appendix A): on a quadratic cost with
Hessian eigenvalues ``λ_i`` the chain's stationary variance along eigenvector ``i`` is
``(T / λ_i) / (1 - ε λ_i / (2N))`` instead of ``T / λ_i``
(:func:`euler_stationary_variance`); the chain diverges once ``ε λ_max / N >= 2``.

Diagnostics (the sampler has no accept/reject step): the effective sample size of
every coordinate from the chains' autocorrelations (Geyer's initial monotone sequence
over the multi-chain autocorrelation estimate, Vehtari et al. 2021) and the split
``R-hat`` of Gelman et al. (BDA3, §11.4) over the chains.

Random numbers: chain ``c`` of a run with ``seed`` draws its Gaussian noise from NumPy's
Philox bit generator keyed by ``SeedSequence([seed, c])`` and, with mini-batches, its
batches from the Philox schedule of :mod:`sgdcore.philox` (the one
:func:`sgdcore.train` uses) under a 64-bit key derived from ``SeedSequence([seed, c,
1])``. A chain's draws therefore depend only on ``(seed, c)``: the same in a run of one
chain or of ten, on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _validate as v
from ._backend import resolve
from ._blas import blas_pools, sqnorm
from .losses import loss_and_grad
from .philox import BatchStream

__all__ = [
    "LangevinResult",
    "effective_sample_size",
    "euler_stationary_variance",
    "langevin",
    "split_rhat",
]

#: Coordinates processed together by the autocorrelation FFT (bounds its memory).
_BLOCK = 256


@dataclass(frozen=True, eq=False)
class LangevinResult:
    """Samples of :func:`langevin` and their diagnostics.

    Attributes
    ----------
    samples : ndarray, shape (chains, n_kept, P), theta's dtype
        The kept states: after steps ``burn_in + thin, burn_in + 2 thin, ...``.
    sample_steps : ndarray of int, shape (n_kept,)
        The step after which each kept state was recorded (1-based).
    cost : ndarray, shape (chains, steps), float64
        The cost at each step's starting point: ``C`` (summed, L2 included) with
        full batches, the mini-batch estimate ``(N/B) sum_batch CE_i + (l2/2)|θ|^2``
        otherwise.
    ess : ndarray, shape (P,)
        Effective sample size of each coordinate over all chains
        (:func:`effective_sample_size`).
    rhat : ndarray, shape (P,)
        Split R-hat of each coordinate (:func:`split_rhat`); NaN with fewer than 4
        kept samples per chain.
    lr, temperature, l2 : float
    batch_size : int
        ``B`` (``N`` for full batches).
    n : int
        Training-set size ``N``.
    seed, thin, burn_in : int
    backend : str
        The backend that ran the gradients.
    """

    samples: np.ndarray = field(repr=False)
    sample_steps: np.ndarray = field(repr=False)
    cost: np.ndarray = field(repr=False)
    ess: np.ndarray = field(repr=False)
    rhat: np.ndarray = field(repr=False)
    lr: float
    temperature: float
    l2: float
    batch_size: int
    n: int
    seed: int
    thin: int
    burn_in: int
    backend: str

    @property
    def chains(self) -> int:
        return self.samples.shape[0]

    def flat(self) -> np.ndarray:
        """All kept samples, chains concatenated: shape (chains * n_kept, P), float64."""
        return self.samples.reshape(-1, self.samples.shape[-1]).astype(np.float64)

    def mean(self) -> np.ndarray:
        """Sample mean, shape (P,), float64."""
        return self.flat().mean(axis=0)

    def cov(self) -> np.ndarray:
        """Sample covariance (``1/(S-1)`` normalisation), shape (P, P), float64."""
        return np.cov(self.flat(), rowvar=False).reshape(self.samples.shape[-1], -1)

    def mcse(self) -> np.ndarray:
        """Monte-Carlo standard error of each coordinate's mean: ``sd / sqrt(ESS)``."""
        return self.flat().std(axis=0, ddof=1) / np.sqrt(self.ess)

    def summary(self) -> dict:
        """The diagnostics in a few numbers: ESS (min, median, mean) and R-hat (max)."""
        finite = self.rhat[np.isfinite(self.rhat)]
        return {
            "chains": int(self.chains),
            "kept_per_chain": int(self.samples.shape[1]),
            "ess_min": float(self.ess.min()),
            "ess_median": float(np.median(self.ess)),
            "ess_mean": float(self.ess.mean()),
            "rhat_max": float(finite.max()) if finite.size else float("nan"),
        }


# --------------------------------------------------------------------- diagnostics


def _draws(samples, minimum: int) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"samples must have shape (chains, draws[, P]), got {x.shape}")
    if x.shape[1] < minimum:
        raise ValueError(f"need at least {minimum} draws per chain, got {x.shape[1]}")
    v.check_finite("samples", x)
    return x


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariances ``(1/n) sum_t x_t x_{t+k}`` of centred chains along axis 1."""
    n = x.shape[1]
    size = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(x - x.mean(axis=1, keepdims=True), n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n


def effective_sample_size(samples) -> np.ndarray:
    """Effective sample size of each coordinate over all chains.

    The multi-chain estimate of Vehtari et al. (2021, Stan's): with ``M`` chains of
    ``n`` draws, within-chain variance ``W``, between-chain variance ``B`` and the
    pooled ``var+ = (n-1)/n W + B/n``, the autocorrelation at lag ``t`` is
    ``ρ_t = 1 - (W - mean_chains γ_t) / var+`` (``γ_t`` each chain's autocovariance).
    Sums of adjacent pairs ``ρ_{2k} + ρ_{2k+1}`` are kept while positive and made
    monotone (Geyer's initial monotone sequence), ``τ = -1 + 2 sum_k (ρ_{2k} +
    ρ_{2k+1})`` and ``ESS = M n / τ``.

    Parameters
    ----------
    samples : array_like, shape (chains, draws) or (chains, draws, P)

    Returns
    -------
    ndarray, shape (P,) (a 1-element array for 2-D input)

    Examples
    --------
    Independent draws: ``ESS`` is close to the number of draws.

    >>> x = np.random.default_rng(0).standard_normal((4, 1000))
    >>> bool(3400 < effective_sample_size(x)[0] < 4600)
    True
    """
    x = _draws(samples, 4)
    M, n, P = x.shape
    out = np.empty(P)
    for lo in range(0, P, _BLOCK):
        xb = x[:, :, lo : lo + _BLOCK]
        acov = _autocov(xb)  # (M, n, p)
        chain_var = acov[:, 0] * n / (n - 1)
        W = chain_var.mean(axis=0)
        var_plus = W * (n - 1) / n
        if M > 1:
            var_plus = var_plus + xb.mean(axis=1).var(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = 1.0 - (W - acov.mean(axis=0)) / var_plus  # (n, p)
        rho[0] = 1.0
        pairs = rho[: 2 * (n // 2)].reshape(n // 2, 2, -1).sum(axis=1)  # (n/2, p)
        keep = np.cumprod(pairs > 0, axis=0).astype(bool)
        mono = np.minimum.accumulate(np.where(keep, pairs, np.inf), axis=0)
        tau = -1.0 + 2.0 * np.where(keep, mono, 0.0).sum(axis=0)
        tau = np.maximum(tau, 1.0 / np.log10(max(M * n, 10)))  # Stan's cap on anticorrelation
        ess = M * n / tau
        ess[~(var_plus > 0)] = np.nan  # constant coordinates have no ESS
        out[lo : lo + _BLOCK] = ess
    return out


def split_rhat(samples) -> np.ndarray:
    """Split R-hat of each coordinate (Gelman et al., BDA3 §11.4).

    Each chain is cut into halves (the middle draw dropped when ``n`` is odd), giving
    ``2M`` chains of ``n' = n // 2`` draws; with ``W`` the mean within-half variance
    and ``B / n'`` the variance of the half means,
    ``R-hat = sqrt(((n'-1)/n' W + B/n') / W)``. Values near 1 mean the chains agree;
    above about 1.01-1.1 they have not mixed.

    Parameters
    ----------
    samples : array_like, shape (chains, draws) or (chains, draws, P), draws >= 4

    Returns
    -------
    ndarray, shape (P,)
    """
    x = _draws(samples, 4)
    M, n, P = x.shape
    h = n // 2
    halves = np.concatenate([x[:, :h], x[:, n - h :]], axis=0)  # (2M, h, P)
    W = halves.var(axis=1, ddof=1).mean(axis=0)
    b_over_n = halves.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((h - 1) / h * W + b_over_n) / W)


def euler_stationary_variance(eigenvalues, lr, n, temperature=1.0) -> np.ndarray:
    """Stationary variance of Eq. 14 on a quadratic cost, along each Hessian eigenvector.

    For ``C = (1/2) sum_i λ_i u_i^2`` the sampler is the linear recursion
    ``u' = (1 - r_i) u + α_i`` with ``r_i = ε λ_i / N`` and ``Var α_i = 2 ε T / N``, whose
    stationary variance is ``(2 ε T / N) / (1 - (1 - r_i)^2) = (T / λ_i) / (1 - r_i / 2)``:
    the exact posterior variance ``T / λ_i`` as ``ε -> 0``, inflated by the factor
    ``1 / (1 - r_i / 2)`` at finite ``ε`` (infinite, i.e. divergent, at ``r_i >= 2``).

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues ``λ_i > 0`` of the Hessian of the summed cost ``C``.
    lr : float
        ``ε``.
    n : int
        ``N``.
    temperature : float

    Returns
    -------
    ndarray
        The variances (``inf`` where ``r_i >= 2``).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    r = lr * lam / n
    with np.errstate(divide="ignore"):
        return np.where(r < 2, temperature / lam / (1.0 - r / 2.0), np.inf)


# ------------------------------------------------------------------------- sampler


def _positive(name: str, value, *, strict: bool = True) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not np.isfinite(value) or value < 0 or (strict and value == 0):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {value}")
    return value


def _starts(model, theta0, chains: int) -> np.ndarray:
    """``theta0`` as (chains, P): one start for every chain, or one per chain."""
    if not isinstance(theta0, np.ndarray):
        raise TypeError(f"theta0 must be a NumPy array, got {type(theta0).__name__}")
    if theta0.ndim == 1:
        v.check_theta(model, np.ascontiguousarray(theta0))
        return np.repeat(theta0[None, :], chains, axis=0)
    if theta0.ndim != 2 or theta0.shape != (chains, model.n_params):
        raise ValueError(
            f"theta0 must have shape ({model.n_params},) or (chains={chains}, "
            f"{model.n_params}), got {theta0.shape}"
        )
    for c in range(chains):
        v.check_theta(model, np.ascontiguousarray(theta0[c]))
    return np.array(theta0, order="C", copy=True)


def chain_seeds(seed: int, chain: int) -> tuple[np.random.Generator, int]:
    """Chain ``chain``'s noise generator and its mini-batch schedule's 64-bit seed."""
    noise = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, chain])))
    batch_key = int(np.random.SeedSequence([seed, chain, 1]).generate_state(1, np.uint64)[0])
    return noise, batch_key


def _chain(model, theta, X, y, lr, l2, temperature, steps, keep, rng, stream, b, backend, c):
    """One chain: its kept states (n_kept, P) and the cost at every step (steps,)."""
    n, dtype = X.shape[0], theta.dtype
    theta = theta.copy()
    kept = np.empty((keep.size, theta.size), dtype=dtype)
    cost = np.empty(steps)
    grad = np.empty_like(theta)
    noise_sd = float(np.sqrt(2.0 * lr * temperature / n))
    decay = np.asarray(1.0 - lr * l2 / n, dtype=dtype)
    step_lr = np.asarray(lr, dtype=dtype)
    k = 0
    for t in range(1, steps + 1):
        if stream is None:
            Xb, yb = X, y
        else:
            idx = stream.next(b)
            Xb, yb = X[idx], y[idx]
        ce, _ = loss_and_grad(
            model, theta, Xb, yb, reduction="mean", out=grad, backend=backend, check_finite=False
        )
        sq = sqnorm(theta)
        cost[t - 1] = n * ce + 0.5 * l2 * sq
        # theta <- (1 - ε l2/N) theta - ε g + sqrt(2 ε T / N) ξ, g the mean CE gradient
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
            theta *= decay
            theta -= step_lr * grad
            theta += (noise_sd * rng.standard_normal(theta.size)).astype(dtype, copy=False)
        if not np.isfinite(theta).all():
            raise FloatingPointError(
                f"langevin: chain {c} left the finite numbers at step {t} (lr = {lr} is "
                f"too large: the sampler is stable only for lr * lambda_max / N < 2)"
            )
        if k < keep.size and t == keep[k]:
            kept[k] = theta
            k += 1
    return kept, cost


def langevin(
    model,
    theta0,
    X,
    y,
    *,
    lr,
    steps,
    l2,
    temperature=1.0,
    seed=0,
    batch_size=None,
    thin=1,
    burn_in=0,
    chains=1,
    backend="auto",
):
    """Sample ``P(θ) ∝ exp(-C(θ) / T)`` with the Langevin sampler of Eq. 14.

    Each of ``chains`` chains starts at ``theta0`` and takes ``steps`` steps of::

        θ <- θ - ε (g + (l2/N) θ) + sqrt(2 ε T / N) ξ,     ξ ~ N(0, I)

    with ``g`` the mean per-example gradient ``(1/N) sum_i dCE_i/dθ`` (full batch) or
    its mini-batch estimate over ``batch_size`` examples drawn from
    :mod:`sgdcore.philox`'s schedule. That is Eq. 14, ``Δθ = -(ε/N) dC/dθ + α``,
    ``α ~ N(0, 2 ε T I / N)``, for the summed cost ``C = sum_i CE_i + (l2/2)|θ|^2``.
    After ``burn_in`` steps every ``thin``-th state is kept.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta0 : ndarray, shape (P,) or (chains, P), float32 or float64
        Starting point(s); sets the dtype of the arithmetic.
    X : ndarray, shape (N, D), theta0's dtype, C-contiguous
    y : ndarray of int, shape (N,)
    lr : float
        ``ε > 0``, the learning rate of the mean cost (the time step is ``ε / N``).
    steps : int
        Steps per chain, ``>= 1``.
    l2 : float
        The prior precision ``λ >= 0`` (``l2 = 0``: a flat prior, proper only if the
        likelihood is).
    temperature : float
        ``T > 0``; 1 samples the posterior.
    seed : int
        Keys every chain's noise and batches (see the module docstring).
    batch_size : int, optional
        ``B`` in ``[1, N]``; None (default) or ``N``: full-batch gradients.
    thin : int
        Keep every ``thin``-th state after the burn-in (``>= 1``).
    burn_in : int
        Steps discarded first (``0 <= burn_in < steps``).
    chains : int
        Independent chains (``>= 1``).
    backend : str
        Backend of :func:`sgdcore.loss_and_grad`: ``"auto"``, ``"numpy"``,
        ``"numba"`` or ``"cpp"``.

    Returns
    -------
    LangevinResult

    Raises
    ------
    FloatingPointError
        If a chain leaves the finite numbers (``ε`` too large: the sampler is stable
        only for ``ε λ_max / N < 2``); the message names the chain and step.

    Examples
    --------
    One example at ``x = 0`` leaves only the bias: the posterior of ``C(b) = ln(1 +
    e^{-b}) + b^2/2`` has mean 0.41 and variance 0.83 (by quadrature):

    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(1)
    >>> r = langevin(m, np.zeros(2), np.zeros((1, 1)), np.array([1]), lr=0.05,
    ...              steps=20000, l2=1.0, burn_in=1000, chains=2, seed=0, backend="numpy")
    >>> bool(0.65 < r.cov()[1, 1] < 1.05), bool(0.25 < r.mean()[1] < 0.6)
    (True, True)
    """
    v.check_model(model)
    chains = v.check_int("chains", chains, 1)
    starts = _starts(model, theta0, chains)
    dtype = starts.dtype
    X = v.check_X(model, X, dtype)
    y = v.check_y(model, y, X.shape[0])
    n = X.shape[0]
    lr = _positive("lr", lr)
    temperature = _positive("temperature", temperature)
    l2 = v.check_l2(l2)
    steps = v.check_int("steps", steps, 1)
    thin = v.check_int("thin", thin, 1)
    burn_in = v.check_int("burn_in", burn_in, 0)
    if burn_in >= steps:
        raise ValueError(f"burn_in must be below steps ({steps}), got {burn_in}")
    seed = v.check_int("seed", seed, 0)
    if seed >= 2**64:
        raise ValueError(f"seed must be below 2**64, got {seed}")
    if batch_size is None:
        batch_size = n
    batch_size = v.check_int("batch_size", batch_size, 1)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= N = {n}, got {batch_size}")
    backend = resolve(backend, quantity="loss_and_grad", kind=model.kind, arrays=(X,))

    keep = np.arange(burn_in + thin, steps + 1, thin)
    samples = np.empty((chains, keep.size, model.n_params), dtype=dtype)
    cost = np.empty((chains, steps))
    # One step is one small gradient: threaded BLAS and OpenMP teams cost more than
    # they gain there, and stall when the cores are shared.
    with blas_pools().limit(limits=1):
        for c in range(chains):
            rng, batch_key = chain_seeds(seed, c)
            stream = None if batch_size == n else BatchStream(batch_key, n)
            samples[c], cost[c] = _chain(
                model,
                starts[c],
                X,
                y,
                lr,
                l2,
                temperature,
                steps,
                keep,
                rng,
                stream,
                batch_size,
                backend,
                c,
            )
    if keep.size >= 4:
        ess, rhat = effective_sample_size(samples), split_rhat(samples)
    else:
        ess = np.full(model.n_params, np.nan)
        rhat = np.full(model.n_params, np.nan)
    return LangevinResult(
        samples=samples,
        sample_steps=keep,
        cost=cost,
        ess=ess,
        rhat=rhat,
        lr=lr,
        temperature=temperature,
        l2=l2,
        batch_size=batch_size,
        n=n,
        seed=seed,
        thin=thin,
        burn_in=burn_in,
        backend=backend,
    )
