"""The noise scale of SGD, the optimum batch size and the scaling rules (paper §5).

* :func:`noise_scale`: ``g = ε/(1-m) · (N/B - 1)`` (Smith & Le, eq. 12 and App. D).
* :func:`optimal_batch_size`: from a sweep table, the best observed batch size per
  setting with the paper's error bar (the neighbouring sampled batch sizes), and a
  smooth estimate — the vertex of a quadratic fitted to the seed-averaged metric
  against ``log B`` around the peak — with a bootstrap interval over seeds.
* :func:`fit_scaling`: the slope of ``log B_opt`` against ``log x`` with a
  confidence interval. The paper predicts slope 1 for ``x = ε``, ``x = N`` and
  ``x = 1/(1-m)`` (:data:`PREDICTED_SLOPES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "PREDICTED_SLOPES",
    "ScalingFit",
    "fit_scaling",
    "noise_scale",
    "optimal_batch_size",
]

#: Slopes of log B_opt against log x that the paper predicts, per scaling rule.
PREDICTED_SLOPES = {"lr": 1.0, "n_train": 1.0, "momentum": 1.0}

#: Columns that describe a setting (everything a curve over B is drawn at).
SETTING_COLUMNS = ("lr", "momentum", "l2", "n_train", "label_seed")
_MINIMIZED = ("test_cross_entropy", "train_cross_entropy")


def noise_scale(lr, n, batch_size, momentum=0.0):
    """SGD's noise scale ``g = lr / (1 - momentum) * (n / batch_size - 1)``.

    The paper's ``g = ε(N/B - 1) ≈ εN/B`` (eq. 12), with heavy-ball momentum
    ``g = ε/(1-m) (N/B - 1)`` (App. D); ``g = 0`` for full-batch training (B = N).
    Arguments broadcast like NumPy arrays.

    Parameters
    ----------
    lr : float or array_like
        Learning rate ε >= 0 (applied to the mean gradient, i.e. ε/N times the
        summed cost's gradient).
    n : int or array_like
        Training-set size N >= 1.
    batch_size : int or array_like
        B, 1 <= B <= N.
    momentum : float or array_like
        m in [0, 1).

    Returns
    -------
    float or numpy.ndarray
        g, of the broadcast shape (a float for scalar arguments).

    Raises
    ------
    ValueError
        If an argument is out of range or not finite, or the shapes do not broadcast.

    Examples
    --------
    >>> round(noise_scale(1.0, 1000, 30, 0.9), 6)  # 10 * (1000/30 - 1)
    323.333333
    >>> noise_scale(0.1, 1000, 1000, 0.9)
    0.0
    """
    arrs = {}
    for name, value in (("lr", lr), ("n", n), ("batch_size", batch_size), ("momentum", momentum)):
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be a number or an array of numbers, got {value!r}"
            ) from None
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite, got {value!r}")
        arrs[name] = a
    lr_, n_, b_, m_ = arrs["lr"], arrs["n"], arrs["batch_size"], arrs["momentum"]
    if np.any(lr_ < 0):
        raise ValueError(f"lr must be >= 0, got {lr!r}")
    if np.any(n_ < 1):
        raise ValueError(f"n must be >= 1, got {n!r}")
    if np.any((m_ < 0) | (m_ >= 1)):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    try:
        n_b = np.broadcast_arrays(n_, b_)
    except ValueError:
        raise ValueError(f"shapes do not broadcast: n {n_.shape}, batch_size {b_.shape}") from None
    if np.any(n_b[1] < 1) or np.any(n_b[1] > n_b[0]):
        raise ValueError(f"batch_size must lie in [1, n]; got batch_size={batch_size!r}, n={n!r}")
    try:
        g = lr_ / (1.0 - m_) * (n_ / b_ - 1.0)
    except ValueError:
        raise ValueError("lr, n, batch_size and momentum do not broadcast together") from None
    return float(g) if g.ndim == 0 else g


def _final_rows(df: pd.DataFrame, step) -> pd.DataFrame:
    """One row per run: its last evaluation (``step="final"``) or the given step."""
    if step != "final":
        out = df[df["step"] == step]
        if out.empty:
            raise ValueError(f"no rows at step {step}")
        return out
    if "run" in df.columns:
        keys = ["run"]
    else:
        keys = [
            c for c in (*SETTING_COLUMNS, "batch_size", "seed", "total_steps") if c in df.columns
        ]
    idx = df.groupby(keys, sort=False)["step"].idxmax()
    return df.loc[idx.to_numpy()]


def _fit_vertex(x: np.ndarray, y: np.ndarray, i: int, window: int, maximize: bool):
    """Vertex of a quadratic through points i-window..i+window (clipped to the grid).

    Returns the vertex's x, clamped to the fitted span, or ``x[i]`` when fewer than three
    finite points are there or the parabola opens the wrong way.
    """
    lo, hi = max(0, i - window), min(len(x), i + window + 1)
    xs, ys = x[lo:hi], y[lo:hi]
    ok = np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    if len(xs) < 3:
        return x[i]
    a, b, _ = np.polyfit(xs, ys, 2)
    if (a >= 0 and maximize) or (a <= 0 and not maximize):
        return x[i]
    return float(np.clip(-b / (2 * a), xs[0], xs[-1]))


def optimal_batch_size(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    by=None,
    step="final",
    window: int = 1,
    n_boot: int = 1000,
    ci: float = 0.9,
    n_classes: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """The batch size that optimises a metric, per setting, with error bars.

    For each setting (the distinct values of the ``by`` columns) the metric at the
    chosen step is averaged over seeds for every sampled batch size B. Then:

    * ``b_best``: the sampled B with the best mean; ``b_lo`` and ``b_hi`` are its
      neighbouring sampled batch sizes (the paper's error bar, "the distance to the
      next sampled batch size"; ``b_best`` itself at the grid's ends);
    * ``b_smooth``: ``exp(x*)`` where ``x*`` is the vertex of a least-squares
      quadratic in ``log B`` through the best point and up to ``window`` sampled
      batch sizes on each side, clamped to that span (``b_best`` when fewer than three
      points are available or the parabola has no interior optimum). The default
      ``window=1`` is three-point parabolic interpolation, which keeps the estimate
      between the neighbouring sampled batch sizes: wider windows let the cliff where
      small batches stop training (far steeper than the large-batch decline) drag
      the vertex away from the peak;
    * ``b_smooth_lo``, ``b_smooth_hi``: the central ``ci`` percentile interval of
      ``b_smooth`` over ``n_boot`` bootstrap resamples of the seeds (drawn with
      replacement within each batch size).

    Runs that diverged (NaN metric) count as chance for an accuracy
    (``1 / n_classes``) and as +inf for a cross-entropy: a batch size where training
    fails is a bad batch size, not a missing one.

    Parameters
    ----------
    df : pandas.DataFrame
        A tidy sweep table (:func:`sgdcore.train`, :func:`sgdcore.sweep.run`): columns
        ``batch_size``, ``seed``, ``step``, the metric, and the setting columns.
    metric : str
        ``"test_accuracy"`` (maximised) or a cross-entropy column (minimised).
    by : list of str, optional
        Setting columns; by default those of ``lr, momentum, l2, n_train,
        label_seed`` that take more than one value.
    step : "final" or int
        Each run's last evaluation, or a given step.
    window : int
        Sampled batch sizes on each side of the best used by the quadratic fit.
    n_boot : int
        Bootstrap resamples (0: no interval).
    ci : float
        Coverage of the bootstrap interval.
    n_classes : int
        Classes of the task, for the chance accuracy given to diverged runs.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per setting: the ``by`` columns, ``b_best``, ``b_lo``, ``b_hi``,
        ``best`` (mean metric at ``b_best``), ``spread`` (standard deviation over
        seeds there), ``b_smooth``, ``b_smooth_lo``, ``b_smooth_hi``, ``interior``
        (the best sampled B is neither the smallest nor the largest), ``n_seeds``
        (fewest seeds of any B) and ``n_batch_sizes``.

    Raises
    ------
    ValueError
        On a missing column, an empty table, or a setting with one batch size.
    """
    need = {"batch_size", "seed", "step", metric}
    missing = sorted(need - set(df.columns))
    if missing:
        raise ValueError(f"optimal_batch_size: the table lacks column(s) {missing}")
    if df.empty:
        raise ValueError("optimal_batch_size: the table is empty")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    maximize = metric not in _MINIMIZED
    rows = _final_rows(df, step)
    if by is None:
        by = [c for c in SETTING_COLUMNS if c in rows.columns and rows[c].nunique() > 1]
    else:
        by = list(by)
        absent = [c for c in by if c not in rows.columns]
        if absent:
            raise ValueError(f"optimal_batch_size: by names absent column(s) {absent}")
    values = rows[metric].to_numpy(dtype=np.float64)
    values = np.where(np.isnan(values), 1.0 / n_classes if maximize else np.inf, values)
    rows = rows.assign(_v=values)
    rng = np.random.Generator(np.random.Philox(seed))
    out = []
    for key, sub in rows.groupby(by, sort=True) if by else [((), rows)]:
        key = key if isinstance(key, tuple) else (key,)
        per_b = {b: g["_v"].to_numpy() for b, g in sub.groupby("batch_size", sort=True)}
        bs = np.array(sorted(per_b), dtype=np.float64)
        if len(bs) < 2:
            raise ValueError(
                f"optimal_batch_size: setting {dict(zip(by, key, strict=True))} has only "
                f"one batch size ({bs})"
            )
        x = np.log(bs)
        mean = np.array([per_b[b].mean() for b in bs])
        sign = 1.0 if maximize else -1.0
        i = int(np.argmax(sign * np.where(np.isfinite(mean), mean, -np.inf * sign)))
        smooth = float(np.exp(_fit_vertex(x, mean, i, window, maximize)))
        lo_hi = (np.nan, np.nan)
        if n_boot > 0:
            boots = np.empty((n_boot, len(bs)))
            for j, b in enumerate(bs):
                v = per_b[b]
                idx = rng.integers(0, len(v), size=(n_boot, len(v)))
                boots[:, j] = v[idx].mean(axis=1)
            est = np.empty(n_boot)
            for r in range(n_boot):
                m = boots[r]
                ir = int(np.argmax(sign * np.where(np.isfinite(m), m, -np.inf * sign)))
                est[r] = _fit_vertex(x, m, ir, window, maximize)
            q = np.quantile(est, [(1 - ci) / 2, 1 - (1 - ci) / 2])
            lo_hi = (float(np.exp(q[0])), float(np.exp(q[1])))
        best_vals = per_b[bs[i]]
        out.append(
            {
                **dict(zip(by, key, strict=True)),
                "b_best": int(bs[i]),
                "b_lo": int(bs[max(i - 1, 0)]),
                "b_hi": int(bs[min(i + 1, len(bs) - 1)]),
                "best": float(mean[i]),
                "spread": float(np.std(best_vals, ddof=1)) if len(best_vals) > 1 else 0.0,
                "b_smooth": smooth,
                "b_smooth_lo": lo_hi[0],
                "b_smooth_hi": lo_hi[1],
                "interior": bool(0 < i < len(bs) - 1),
                "n_seeds": int(min(len(v) for v in per_b.values())),
                "n_batch_sizes": len(bs),
            }
        )
    return pd.DataFrame(out)


@dataclass(frozen=True)
class ScalingFit:
    """A fitted power law ``B_opt = exp(intercept) * x ** slope``.

    Attributes
    ----------
    slope, intercept : float
        Least-squares line of ``log B_opt`` against ``log x``.
    slope_lo, slope_hi : float
        Its ``ci`` confidence interval (Student t with n - 2 degrees of freedom;
        NaN with two points).
    r2 : float
        Coefficient of determination of the (weighted) fit.
    n : int
        Number of points.
    ci : float
    weighted : bool
        Whether the points were weighted by their intervals.
    """

    slope: float
    intercept: float
    slope_lo: float
    slope_hi: float
    r2: float
    n: int
    ci: float
    weighted: bool

    def predict(self, x):
        """``exp(intercept) * x ** slope``."""
        return np.exp(self.intercept) * np.asarray(x, dtype=np.float64) ** self.slope

    def consistent_with(self, slope: float) -> bool:
        """Whether ``slope`` lies inside the interval."""
        return bool(self.slope_lo <= slope <= self.slope_hi)


def fit_scaling(
    x, b_opt, b_lo=None, b_hi=None, *, sigma=None, ci: float = 0.9
) -> ScalingFit:
    """Fit ``log B_opt = intercept + slope · log x`` and give the slope's interval.

    Parameters
    ----------
    x : array_like, shape (n,)
        The scaled quantity (ε, N or 1/(1-m)), positive.
    b_opt : array_like, shape (n,)
        Optimum batch sizes, positive.
    b_lo, b_hi : array_like, shape (n,), optional
        An interval for each B_opt (e.g. the bootstrap interval of
        :func:`optimal_batch_size`). When given, points are weighted by
        ``1 / s_i^2`` with ``s_i = (log b_hi - log b_lo) / 2`` (floored at a tenth of
        the median width so that a zero-width interval cannot dominate); the
        interval of the slope then uses the weighted residuals.
    sigma : array_like, shape (n,), optional
        The standard error of each ``log B_opt`` (instead of ``b_lo``/``b_hi``):
        points are weighted by ``1 / sigma^2`` and the slope's standard error is the
        one these errors imply, ``1 / sqrt(sum w (log x - mean)^2)``, scaled up by
        the Birge ratio ``sqrt(chi^2 / (n - 2))`` when the points scatter more than
        their errors say (never down). Its interval is then finite with two points
        too (normal quantile; Student t with n - 2 degrees of freedom when scaled).
    ci : float
        Coverage of the slope's interval.

    Returns
    -------
    ScalingFit

    Raises
    ------
    ValueError
        With fewer than two points, non-positive values, mismatched lengths, or all
        ``x`` equal.

    Examples
    --------
    >>> f = fit_scaling([0.1, 1.0, 10.0], [3.0, 30.0, 300.0])
    >>> round(f.slope, 12), round(float(f.predict(100.0)), 6)
    (1.0, 3000.0)
    """
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(b_opt, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and b_opt must be 1-D of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"fit_scaling needs at least two points, got {len(x)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and (x > 0).all() and (y > 0).all()):
        raise ValueError("x and b_opt must be finite and positive (they are fitted on log axes)")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise ValueError("all x are equal: no slope can be fitted")
    w = np.ones_like(lx)
    weighted = False
    if (b_lo is None) != (b_hi is None):
        raise ValueError("give both b_lo and b_hi, or neither")
    if sigma is not None:
        if b_lo is not None:
            raise ValueError("give sigma or b_lo/b_hi, not both")
        sig = np.asarray(sigma, dtype=np.float64)
        if sig.shape != x.shape or not (np.all(np.isfinite(sig)) and np.all(sig > 0)):
            raise ValueError("sigma must have the shape of x and be finite and positive")
        return _fit_known_errors(lx, ly, sig, ci)
    if b_lo is not None:
        lo = np.asarray(b_lo, dtype=np.float64)
        hi = np.asarray(b_hi, dtype=np.float64)
        if lo.shape != x.shape or hi.shape != x.shape:
            raise ValueError("b_lo and b_hi must have the shape of x")
        if not (np.all(lo > 0) and np.all(hi >= lo)):
            raise ValueError("intervals must satisfy 0 < b_lo <= b_hi")
        s = (np.log(hi) - np.log(lo)) / 2
        if np.any(s > 0):
            s = np.maximum(s, 0.1 * np.median(s[s > 0]))
            w = 1.0 / s**2
            weighted = True
    sw = np.sqrt(w)
    A = np.column_stack([np.ones_like(lx), lx]) * sw[:, None]
    coef, *_ = np.linalg.lstsq(A, ly * sw, rcond=None)
    intercept, slope = float(coef[0]), float(coef[1])
    resid = (ly - intercept - slope * lx) * sw
    ybar = np.sum(w * ly) / np.sum(w)
    ss_tot = float(np.sum(w * (ly - ybar) ** 2))
    r2 = 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else 1.0
    n = len(x)
    if n > 2:
        sigma2 = float(resid @ resid) / (n - 2)
        xbar = np.sum(w * lx) / np.sum(w)
        se = np.sqrt(sigma2 / np.sum(w * (lx - xbar) ** 2))
        t = stats.t.ppf(0.5 + ci / 2, n - 2)
        lo_s, hi_s = slope - t * se, slope + t * se
    else:
        lo_s = hi_s = np.nan
    return ScalingFit(
        slope=slope,
        intercept=intercept,
        slope_lo=float(lo_s),
        slope_hi=float(hi_s),
        r2=r2,
        n=n,
        ci=ci,
        weighted=weighted,
    )


def _fit_known_errors(lx, ly, sig, ci: float) -> ScalingFit:
    """Weighted line with per-point standard errors ``sig`` (see :func:`fit_scaling`)."""
    from scipy import stats

    w = 1.0 / sig**2
    xbar, ybar = np.sum(w * lx) / np.sum(w), np.sum(w * ly) / np.sum(w)
    sxx = float(np.sum(w * (lx - xbar) ** 2))
    slope = float(np.sum(w * (lx - xbar) * (ly - ybar)) / sxx)
    intercept = float(ybar - slope * xbar)
    resid = ly - intercept - slope * lx
    chi2 = float(np.sum(w * resid**2))
    n = len(lx)
    ss_tot = float(np.sum(w * (ly - ybar) ** 2))
    r2 = 1.0 - chi2 / ss_tot if ss_tot > 0 else 1.0
    se = 1.0 / np.sqrt(sxx)
    birge = np.sqrt(chi2 / (n - 2)) if n > 2 else 0.0
    if birge > 1.0:
        se, q = se * birge, stats.t.ppf(0.5 + ci / 2, n - 2)
    else:
        q = stats.norm.ppf(0.5 + ci / 2)
    return ScalingFit(
        slope=slope,
        intercept=intercept,
        slope_lo=float(slope - q * se),
        slope_hi=float(slope + q * se),
        r2=r2,
        n=n,
        ci=ci,
        weighted=True,
    )
