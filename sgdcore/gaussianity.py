"""How far a sample is from a Gaussian: the statistics behind Appendix C of Smith & Le.

The paper models the mini-batch gradient error as Gaussian by the central limit theorem
(Section 3, Eq. 10; Appendix C, Fig. 9). This module measures a sample's departure from
the Gaussian of the same mean and variance:

* ``skewness`` ``g1 = m3 / m2^(3/2)`` and ``excess_kurtosis`` ``g2 = m4 / m2^2 - 3``
  (central moments ``m_r = mean (x - mean x)^r``; both 0 for a Gaussian);
* ``ks_distance``: ``sup_x |F_n(x) - Phi((x - mean) / sd)|``, the Kolmogorov-Smirnov
  distance to the Gaussian fitted by its moments (``sd`` with ``ddof=0``), and
  ``ks_critical``: its ``1 - alpha`` quantile for Gaussian samples of the same size
  (Lilliefors' test, by Monte-Carlo), above which Gaussianity is rejected;
* ``bootstrap_interval``: percentile intervals of any of them;
* ``minibatch_means``: means of random mini-batches of a finite population, drawn as
  SGD draws them (uniformly, without replacement within a batch) or i.i.d.;
* ``iid_mean_moments``: the closed form for the mean of ``B`` i.i.d. draws, whose
  skewness is ``g1 / sqrt(B)`` and excess kurtosis ``g2 / B`` (cumulants add).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import ndtr

from ._validate import is_int

__all__ = [
    "bootstrap_interval",
    "describe",
    "excess_kurtosis",
    "iid_mean_moments",
    "ks_critical",
    "ks_distance",
    "minibatch_means",
    "skewness",
]


def _sample(x, name="x", minimum=2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} values, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _central(x: np.ndarray, axis=-1):
    d = x - x.mean(axis=axis, keepdims=True)
    d2 = d * d
    return d, d2.mean(axis=axis), d2


def skewness(x, axis=-1):
    """``m3 / m2^(3/2)`` (``scipy.stats.skew(x, bias=True)``); NaN for a constant sample."""
    x = np.asarray(x, dtype=np.float64)
    d, m2, d2 = _central(x, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (d2 * d).mean(axis=axis) / m2**1.5


def excess_kurtosis(x, axis=-1):
    """``m4 / m2^2 - 3`` (``scipy.stats.kurtosis(x, bias=True)``); NaN for a constant
    sample.
    """
    x = np.asarray(x, dtype=np.float64)
    _, m2, d2 = _central(x, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (d2 * d2).mean(axis=axis) / m2**2 - 3.0


def ks_distance(x) -> float:
    """Kolmogorov-Smirnov distance from ``x`` to the Gaussian of its mean and standard
    deviation (``ddof=0``).

    Equals ``scipy.stats.kstest(x, "norm", args=(x.mean(), x.std())).statistic``.
    """
    x = np.sort(_sample(x))
    sd = x.std()
    if sd == 0:
        return 1.0 - 1.0 / x.size  # a point mass against a Gaussian of no width
    cdf = ndtr((x - x.mean()) / sd)
    n = x.size
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def ks_critical(n: int, alpha: float = 0.05, *, n_mc: int = 400, seed: int = 0) -> float:
    """The ``1 - alpha`` quantile of :func:`ks_distance` over Gaussian samples of size
    ``n`` (Lilliefors' test, mean and variance estimated), by Monte-Carlo.

    With ``n_mc`` draws the quantile's own error is about ``sqrt(alpha (1 - alpha) /
    n_mc) / density``; for large ``n`` it approaches Lilliefors' asymptotic
    ``0.886 / sqrt(n)`` at ``alpha = 0.05``.
    """
    if not is_int(n) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return _ks_critical(int(n), float(alpha), int(n_mc), int(seed))


@functools.lru_cache(maxsize=64)
def _ks_critical(n: int, alpha: float, n_mc: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    stats = np.empty(n_mc)
    for b in range(n_mc):
        stats[b] = ks_distance(rng.standard_normal(int(n)))
    return float(np.quantile(stats, 1.0 - alpha))


def bootstrap_interval(x, statistic, *, n_boot=1000, ci=0.9, seed=0, block=64):
    """Percentile bootstrap interval of ``statistic(sample, axis=-1)`` over resamples of
    ``x`` (with replacement, the size of ``x``).

    Parameters
    ----------
    x : array_like, shape (n,)
    statistic : callable
        Vectorised: ``statistic(samples [b, n], axis=-1) -> [b]`` (e.g.
        :func:`skewness`, :func:`excess_kurtosis`).
    n_boot : int
    ci : float
        Coverage, e.g. 0.9 for the 5 % and 95 % quantiles.
    seed : int
    block : int
        Resamples formed at once (memory ``block * n``).

    Returns
    -------
    (float, float)
    """
    x = _sample(x)
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    rng = np.random.default_rng(seed)
    out = np.empty(int(n_boot))
    for s in range(0, out.size, block):
        b = min(block, out.size - s)
        idx = rng.integers(0, x.size, size=(b, x.size))
        out[s : s + b] = statistic(x[idx], axis=-1)
    if np.all(np.isnan(out)):  # a constant sample: the statistic is undefined
        return np.nan, np.nan
    lo, hi = np.nanquantile(out, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def minibatch_means(values, batch_size: int, n_batches: int, *, replace=False, seed=0):
    """Means of ``n_batches`` random mini-batches of ``values`` (a finite population).

    ``replace=False`` draws each batch as SGD does: ``B`` distinct examples, uniformly
    (batches independent of each other). ``replace=True`` draws ``B`` i.i.d. examples,
    the case of :func:`iid_mean_moments`.

    Parameters
    ----------
    values : array_like, shape (N,) or (N, k)
        Per-example values (e.g. projections of per-example gradients); with ``k``
        columns every column is averaged over the same batches.
    batch_size : int
        ``1 <= B`` (``<= N`` without replacement).
    n_batches : int
    replace : bool
    seed : int

    Returns
    -------
    ndarray, shape (n_batches,) or (n_batches, k), float64
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] == 0:
        raise ValueError(f"values must be a non-empty (N,) or (N, k) array, got {v.shape}")
    N, B = v.shape[0], batch_size
    if not is_int(B) or B < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {B!r}")
    if not replace and B > N:
        raise ValueError(f"batch_size B={B} exceeds the N={N} values (without replacement)")
    rng = np.random.default_rng(seed)
    out = np.empty((int(n_batches),) + v.shape[1:])
    rows = max(1, (1 << 22) // (B if replace else N))
    for s in range(0, out.shape[0], rows):
        b = min(rows, out.shape[0] - s)
        if replace:
            idx = rng.integers(0, N, size=(b, B))
        else:
            # the B smallest of N uniform keys: a uniform B-subset, for each batch
            keys = rng.random((b, N))
            idx = np.argpartition(keys, B - 1, axis=1)[:, :B] if B < N else np.argsort(keys)
        out[s : s + b] = v[idx].mean(axis=1)
    return out


def iid_mean_moments(skew: float, kurt: float, batch_size: int) -> tuple[float, float]:
    """Skewness and excess kurtosis of the mean of ``B`` i.i.d. draws from a law of
    skewness ``skew`` and excess kurtosis ``kurt``: ``(skew / sqrt(B), kurt / B)``.

    The r-th cumulant of a sum of ``B`` i.i.d. variables is ``B`` times theirs, and the
    standardised cumulants ``kappa_r / kappa_2^(r/2)`` are skewness (r = 3) and excess
    kurtosis (r = 4); hence the central limit theorem's ``1/sqrt(B)`` and ``1/B``.
    """
    B = int(batch_size)
    if B < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return float(skew) / np.sqrt(B), float(kurt) / B


def describe(x, *, n_boot=500, ci=0.9, alpha=0.05, n_mc=200, seed=0) -> dict:
    """Mean, standard deviation, skewness and excess kurtosis (with bootstrap
    intervals), the KS distance to the moment-matched Gaussian and its Lilliefors
    critical value.

    Returns
    -------
    dict
        ``n, mean, sd, skew, skew_lo, skew_hi, kurt, kurt_lo, kurt_hi, ks,
        ks_critical, gaussian_rejected`` (``ks > ks_critical``).
    """
    x = _sample(x)
    s_lo, s_hi = bootstrap_interval(x, skewness, n_boot=n_boot, ci=ci, seed=seed)
    k_lo, k_hi = bootstrap_interval(x, excess_kurtosis, n_boot=n_boot, ci=ci, seed=seed + 1)
    ks = ks_distance(x)
    crit = ks_critical(x.size, alpha, n_mc=n_mc, seed=seed + 2)
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "sd": float(x.std()),
        "skew": float(skewness(x)),
        "skew_lo": s_lo,
        "skew_hi": s_hi,
        "kurt": float(excess_kurtosis(x)),
        "kurt_lo": k_lo,
        "kurt_hi": k_hi,
        "ks": ks,
        "ks_critical": crit,
        "gaussian_rejected": bool(ks > crit),
    }
