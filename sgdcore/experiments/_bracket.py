"""Bracketing the optimum batch size: which batch sizes to sample next, and B_opt with
an honest interval once they are sampled.

The paper locates the optimum batch size of each setting on a grid of sampled batch
sizes (Smith & Le §5, Figs. 4–7). A grid fixed in advance can leave the optimum at its
edge, where the "best sampled B" measures the grid rather than the data. Here the grid
grows until the optimum is **bracketed**: on each side of the best sampled B there is a
sampled B that trained and is worse by more than the seed noise,

    mean(B_peak) - mean(B) > z * sqrt(se(B_peak)^2 + se(B)^2)

(``se``: the standard error of the mean over seeds, ``z`` = :data:`Z` by default). A
batch size where most seeds **failed to train** (diverged, or final accuracy at most
halfway from chance to perfect, :func:`failed`) never counts as a bracket: it is
reported separately, and runs that failed are left out of every mean and spread.

:func:`propose` gives the next batch sizes of one setting: first it extends the range
(doubling up to N, halving down to 1) on each side that has no bracket, then it bisects
in log B (geometric midpoints) until the neighbours of the peak are at most a factor √2
away, and towards a failed neighbour until the edge of trainability is located to
within √2. :func:`search` runs those rounds under a budget of runs.

:func:`estimate` then gives B_opt per setting from a least-squares quadratic in log B
through the trained batch sizes between the two brackets, with an interval combining

* the seed noise: a bootstrap over seeds (resampled within each batch size) of the
  whole estimate (``sigma_seed``);
* the fit: the delta-method standard error of the vertex from the quadratic's
  residuals, when more than three points enter the fit (``sigma_fit``);
* the grid resolution: the log-spacing ``h`` of the sampled batch sizes next to the
  peak, as a uniform error ``h / sqrt(12)`` (``sigma_grid``);

added in quadrature in log B. An optimum that stays unbracketed is a **bound**
(``>= 256`` when no larger size was worse, ``<= 16`` when no smaller one was), and an
optimum whose smaller neighbour failed to train is **at the trainability edge**: it
is not a point of the scaling law, so :func:`slope_points` leaves it out of any slope.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

__all__ = [
    "BRACKETED",
    "Z",
    "BatchStats",
    "Optimum",
    "batch_stats",
    "estimate",
    "failed",
    "noise_threshold",
    "propose",
    "search",
    "slope_points",
]

#: Multiple of the standard error of a difference of means that makes a batch size
#: "worse than the peak" (about a 2.5% one-sided false-bracket rate per comparison).
Z = 2.0
#: Status of an optimum with a trained, worse batch size on each side.
BRACKETED = "bracketed"
#: Why an optimum of each unbracketed status is not a point of a scaling law.
WHY = {
    "above": "a lower bound: no larger batch size was worse",
    "below": "an upper bound: no smaller batch size was worse",
    "edge": "pinned to the trainability edge: the next smaller size failed to train",
    "failed": "no batch size trained",
}
#: Largest ratio of neighbouring sampled batch sizes next to the peak after bisection.
SPACING = math.sqrt(2.0)
_EPS = 1e-9


def failed(accuracy, diverged=None, n_classes: int = 10) -> np.ndarray:
    """Runs that failed to train: diverged (NaN accuracy or the engine's ``diverged``
    flag) or a final accuracy at most halfway from chance ``1/n_classes`` to 1.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    bad = ~np.isfinite(acc)
    bad |= np.nan_to_num(acc, nan=0.0) <= 0.5 * (1.0 + 1.0 / n_classes)
    if diverged is not None:
        bad |= np.asarray(diverged, dtype=bool)
    return bad


class BatchStats:
    """One batch size of one setting: its runs' final metric and what trained.

    ``values`` holds the runs that trained; ``n_failed`` counts the others. The batch
    size *trained* when most of its runs did; ``mean``, ``sd`` and ``se`` (standard
    error of the mean) are over the runs that trained (NaN where undefined).
    """

    __slots__ = ("batch_size", "mean", "n_failed", "sd", "se", "trained", "values")

    def __init__(self, batch_size: int, values, n_failed: int):
        self.batch_size = int(batch_size)
        self.values = np.asarray(values, dtype=np.float64)
        self.n_failed = int(n_failed)
        k = len(self.values)
        self.trained = k > self.n_failed
        self.mean = float(self.values.mean()) if k else math.nan
        self.sd = float(self.values.std(ddof=1)) if k > 1 else math.nan
        self.se = self.sd / math.sqrt(k) if k > 1 else math.nan

    @property
    def n(self) -> int:
        return len(self.values) + self.n_failed


def batch_stats(final: pd.DataFrame, n_classes: int = 10, metric="test_accuracy") -> dict:
    """``{batch_size: BatchStats}`` of one setting's final rows (one row per run)."""
    out = {}
    div = final["diverged"] if "diverged" in final else None
    bad = failed(final[metric], div, n_classes)
    vals = final[metric].to_numpy(dtype=np.float64)
    bs = final["batch_size"].to_numpy()
    for b in np.unique(bs):
        sel = bs == b
        out[int(b)] = BatchStats(int(b), vals[sel & ~bad], int((sel & bad).sum()))
    return dict(sorted(out.items()))


def _se(s: BatchStats, floor: float) -> float:
    return s.se if np.isfinite(s.se) and s.se > 0 else floor


def _noise_floor(stats: dict) -> float:
    """A floor for a standard error: with one trained seed, or seeds that agree exactly,
    the spread is not known; use the median of the others (or 0.001, a tenth of a
    percentage point, when none is known).
    """
    ses = [s.se for s in stats.values() if s.trained and np.isfinite(s.se) and s.se > 0]
    return float(np.median(ses)) if ses else 1e-3


def noise_threshold(stats: dict, b1: int, b2: int, z: float = Z, floor=None) -> float:
    """How much worse than ``b1`` the batch size ``b2`` must be to count as worse:
    ``z`` standard errors of the difference of their means (a standard error that is
    unknown or zero is replaced by ``floor``, by default the median of the others).
    """
    floor = _noise_floor(stats) if floor is None else floor
    return z * math.hypot(_se(stats[b1], floor), _se(stats[b2], floor))


@dataclass(frozen=True)
class Bracket:
    """Where one setting's peak stands: the best trained batch size, the nearest worse
    trained size on each side (None: none yet), and the failed sizes below the peak.
    """

    peak: int | None
    left: int | None
    right: int | None
    failed_below: tuple = ()
    failed_above: tuple = ()


def bracket(stats: dict, z: float = Z) -> Bracket:
    """The peak of one setting and its brackets (see the module docstring)."""
    tr = {b: s for b, s in stats.items() if s.trained}
    fails = sorted(b for b, s in stats.items() if not s.trained)
    if not tr:
        return Bracket(None, None, None, tuple(fails))
    peak = max(tr, key=lambda b: (tr[b].mean, -b))
    floor = _noise_floor(stats)

    def worse(b):
        return tr[peak].mean - tr[b].mean > noise_threshold(stats, peak, b, z, floor)

    left = max((b for b in tr if b < peak and worse(b)), default=None)
    right = min((b for b in tr if b > peak and worse(b)), default=None)
    return Bracket(
        peak,
        left,
        right,
        tuple(b for b in fails if b < peak),
        tuple(b for b in fails if b > peak),
    )


def _mid(lo: int, hi: int) -> int | None:
    """The integer geometric midpoint of ``lo < hi`` when they are more than √2 apart."""
    if hi / lo <= SPACING * (1 + 1e-6):
        return None
    m = int(round(math.sqrt(lo * hi)))
    return m if lo < m < hi else None


def _outwards(stats: dict, side: list, peak: int, end: int, limit: int, up: bool):
    """The next batch size on an unbracketed side: past the last sampled size when it
    trained (doubling or halving, up to ``limit``), else between the failed size nearest
    the peak and the trained size next to it (locating the edge of trainability).
    """
    if not side or stats[end].trained:
        if end == limit:
            return None
        return min(2 * end, limit) if up else max(end // 2, limit)
    fails = [b for b in side if not stats[b].trained]
    f = min(fails) if up else max(fails)
    t = [b for b in (*side, peak) if stats[b].trained and (b < f if up else b > f)]
    return _mid(*sorted((f, max(t) if up else min(t))))


def propose(stats: dict, n: int, z: float = Z, b_min: int = 1) -> list[int]:
    """The batch sizes to sample next for one setting (none: done).

    Parameters
    ----------
    stats : dict of int to BatchStats
        What is sampled so far (:func:`batch_stats`).
    n : int
        The training-set size, the largest possible batch size.
    z : float
        Bracketing threshold in standard errors of a difference of means.
    b_min : int
        The smallest batch size to try.

    Returns
    -------
    list of int
        Sorted new batch sizes: on each side without a bracket, the next size out
        (doubling or halving) or, where that side ends in sizes that failed to train,
        the midpoint between the failed size and the trained one next to it; and the
        geometric midpoints that bring the peak's neighbours within a factor √2.
    """
    if not stats:
        return []
    br = bracket(stats, z)
    bs = sorted(stats)
    new = set()
    if br.peak is None:  # nothing trained: look at larger batches, then smaller ones
        if bs[-1] < n:
            new.add(min(2 * bs[-1], n))
        elif bs[0] > b_min:
            new.add(max(bs[0] // 2, b_min))
        return sorted(new)
    below = [b for b in bs if b < br.peak]
    above = [b for b in bs if b > br.peak]
    if br.right is None:
        new.add(_outwards(stats, above, br.peak, bs[-1], n, up=True))
    if br.left is None:
        new.add(_outwards(stats, below, br.peak, bs[0], b_min, up=False))
    for nb in (max(below, default=None), min(above, default=None)):
        if nb is not None:
            m = _mid(*sorted((nb, br.peak)))
            if m is not None:
                new.add(m)
    new.discard(None)
    return sorted(b for b in new if b not in stats and b_min <= b <= n)


# -- the search ---------------------------------------------------------------------------


@dataclass
class SearchLog:
    """What :func:`search` did: the rounds of (setting, batch size) cells it ran and
    whether it stopped for the budget.
    """

    rounds: list = field(default_factory=list)
    runs: int = 0
    budget: int | None = None
    stopped_by_budget: bool = False


def search(
    evaluate: Callable,
    stats_of: Callable,
    settings: list,
    n_of: Callable,
    *,
    runs_per_cell: int,
    runs_done: int,
    max_runs: int | None,
    z: float = Z,
    max_rounds: int = 12,
) -> SearchLog:
    """Add batch sizes round by round until every setting is bracketed and refined.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(cells)`` trains the list of ``(setting, batch_size)`` cells (each
        ``runs_per_cell`` runs) and makes them visible to ``stats_of``.
    stats_of : callable
        ``stats_of(setting)`` gives that setting's ``{batch_size: BatchStats}``.
    settings : list
        The settings (hashable values).
    n_of : callable
        ``n_of(setting)``: its largest batch size.
    runs_per_cell : int
        Runs one cell costs (the seeds).
    runs_done : int
        Runs already spent (the initial grid).
    max_runs : int or None
        Budget on all runs, initial grid included (None: no budget).
    z : float
        Bracketing threshold.
    max_rounds : int
        At most this many rounds (each at least doubles a range or halves a spacing,
        so a dozen reach a factor 4,096).

    Returns
    -------
    SearchLog
    """
    log = SearchLog(runs=runs_done, budget=max_runs)
    for _ in range(max_rounds):
        cells = [(s, b) for s in settings for b in propose(stats_of(s), n_of(s), z)]
        if not cells:
            break
        if max_runs is not None:
            room = max(0, (max_runs - log.runs) // runs_per_cell)
            if room < len(cells):
                log.stopped_by_budget = True
                # the cheapest first: extensions and midpoints at small B cost least
                cells = sorted(cells, key=lambda c: c[1])[:room]
        if not cells:
            break
        evaluate(cells)
        log.rounds.append([(s, int(b)) for s, b in cells])
        log.runs += len(cells) * runs_per_cell
    return log


# -- the estimate -------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimum:
    """B_opt of one setting (see :func:`estimate`).

    ``status`` is ``"bracketed"``, ``"above"`` (no larger trained size was worse:
    B_opt >= ``b_peak``), ``"below"`` (no smaller trained size was worse: B_opt <=
    ``b_peak``), ``"edge"`` (the next smaller size failed to train: the optimum is
    pinned to the edge of trainability, B_opt <= ``b_peak``) or ``"failed"`` (nothing
    trained). ``b_opt`` is the estimate; ``lo`` and ``hi`` its ``ci`` interval,
    ``b_opt · exp(± z sigma)`` with the seed, fit and grid errors added in quadrature
    (widened to hold the bootstrap interval where that is lopsided); ``boot_lo`` and
    ``boot_hi`` the bootstrap interval alone; ``sigma_*`` the parts in log B.
    """

    status: str
    b_peak: int | None
    left: int | None
    right: int | None
    b_opt: float
    lo: float
    hi: float
    boot_lo: float
    boot_hi: float
    sigma_seed: float
    sigma_fit: float
    sigma_grid: float
    best: float
    spread: float
    n_points: int
    failed_sizes: tuple

    @property
    def is_point(self) -> bool:
        """Whether B_opt is a measured point (bracketed on both sides)."""
        return self.status == BRACKETED

    @property
    def sigma(self) -> float:
        """Total error of log B_opt."""
        return math.sqrt(self.sigma_seed**2 + self.sigma_fit**2 + self.sigma_grid**2)

    def label(self) -> str:
        """``"45 [32, 64]"``, ``">= 256"``, ``"<= 16 (trainability edge)"``."""
        if self.status == BRACKETED:
            return f"{self.b_opt:.0f} [{self.lo:.0f}, {self.hi:.0f}]"
        if self.status == "above":
            return f">= {self.b_peak}"
        if self.status == "below":
            return f"<= {self.b_peak}"
        if self.status == "edge":
            return f"<= {self.b_peak} (trainability edge)"
        return "none trained"

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "b_peak": self.b_peak,
            "left": self.left,
            "right": self.right,
            "b_opt": self.b_opt,
            "b_opt_lo": self.lo,
            "b_opt_hi": self.hi,
            "b_boot_lo": self.boot_lo,
            "b_boot_hi": self.boot_hi,
            "sigma_seed": self.sigma_seed,
            "sigma_fit": self.sigma_fit,
            "sigma_grid": self.sigma_grid,
            "sigma": self.sigma,
            "best": self.best,
            "spread": self.spread,
            "n_points": self.n_points,
            "failed_sizes": list(self.failed_sizes),
            "label": self.label(),
        }


def _vertex(x: np.ndarray, y: np.ndarray, i: int) -> tuple[float, float]:
    """Vertex (clipped to the span of ``x``) of a least-squares quadratic through
    ``(x, y)``, and its delta-method standard error from the residuals (0 with three
    points; the vertex is ``x[i]`` when the parabola does not open downwards).
    """
    if len(x) < 3:
        return float(x[i]), 0.0
    A = np.column_stack([x**2, x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    a, b, _ = coef
    if a >= -_EPS * max(1.0, abs(b)):
        return float(x[i]), 0.0
    v = -b / (2 * a)
    se = 0.0
    dof = len(x) - 3
    if dof > 0:
        resid = y - A @ coef
        s2 = float(resid @ resid) / dof
        cov = s2 * np.linalg.pinv(A.T @ A)
        g = np.array([b / (2 * a * a), -1 / (2 * a), 0.0])
        se = float(np.sqrt(max(g @ cov @ g, 0.0)))
    return float(np.clip(v, x[0], x[-1])), se


def _fit_points(stats: dict, br: Bracket) -> list[int]:
    """The trained batch sizes a fit uses: those from the left to the right bracket
    (or to the last trained size on an unbracketed side).
    """
    tr = sorted(b for b, s in stats.items() if s.trained)
    lo = br.left if br.left is not None else tr[0]
    hi = br.right if br.right is not None else tr[-1]
    return [b for b in tr if lo <= b <= hi]


def _estimate_once(stats: dict, z: float) -> tuple[Bracket, float, float, int]:
    br = bracket(stats, z)
    pts = _fit_points(stats, br)
    x = np.log(np.array(pts, dtype=np.float64))
    y = np.array([stats[b].mean for b in pts])
    v, se = _vertex(x, y, pts.index(br.peak))
    return br, v, se, len(pts)


def estimate(
    stats: dict, *, z: float = Z, n_boot: int = 1000, ci: float = 0.9, seed: int = 0
) -> Optimum:
    """B_opt of one setting with its interval (see the module docstring).

    Parameters
    ----------
    stats : dict of int to BatchStats
        The setting's sampled batch sizes (:func:`batch_stats`).
    z : float
        Bracketing threshold.
    n_boot : int
        Bootstrap resamples of the seeds (0: no seed part).
    ci : float
        Coverage of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    Optimum
    """
    fails = tuple(sorted(b for b, s in stats.items() if not s.trained))
    br = bracket(stats, z)
    if br.peak is None:
        nan = math.nan
        return Optimum("failed", None, None, None, nan, nan, nan, nan, nan, nan, nan, nan,
                       nan, nan, 0, fails)  # fmt: skip
    _, v, se_fit, npts = _estimate_once(stats, z)
    p = stats[br.peak]
    bs = sorted(stats)
    i = bs.index(br.peak)
    nbrs = [bs[j] for j in (i - 1, i + 1) if 0 <= j < len(bs)]
    h = float(np.mean([abs(math.log(b / br.peak)) for b in nbrs])) if nbrs else 0.0
    sigma_grid = h / math.sqrt(12.0)
    zc = NormalDist().inv_cdf(0.5 + ci / 2)
    boot_lo = boot_hi = math.exp(v)
    sigma_seed = 0.0
    if n_boot > 0:
        rng = np.random.Generator(np.random.Philox(seed))
        ests = np.empty(n_boot)
        for r in range(n_boot):
            res = {}
            for b, s in stats.items():
                vals = s.values
                if len(vals):
                    vals = vals[rng.integers(0, len(vals), len(vals))]
                res[b] = BatchStats(b, vals, s.n_failed)
            ests[r] = _estimate_once(res, z)[1]
        q = np.quantile(ests, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        boot_lo, boot_hi = math.exp(q[0]), math.exp(q[1])
        sigma_seed = float(q[1] - q[0]) / (2 * zc)
    status = BRACKETED
    if br.right is None:
        status = "above"
    elif br.left is None:
        below = [b for b in bs if b < br.peak]
        status = "edge" if below and not stats[max(below)].trained else "below"
    total = math.sqrt(sigma_seed**2 + se_fit**2 + sigma_grid**2)
    return Optimum(
        status=status,
        b_peak=br.peak,
        left=br.left,
        right=br.right,
        b_opt=math.exp(v),
        lo=min(math.exp(v - zc * total), boot_lo),
        hi=max(math.exp(v + zc * total), boot_hi),
        boot_lo=boot_lo,
        boot_hi=boot_hi,
        sigma_seed=sigma_seed,
        sigma_fit=se_fit,
        sigma_grid=sigma_grid,
        best=p.mean,
        spread=p.sd if np.isfinite(p.sd) else 0.0,
        n_points=npts,
        failed_sizes=fails,
    )


def slope_points(optima: list) -> tuple[np.ndarray, list]:
    """Which optima may enter a slope: a boolean mask (bracketed ones) and the reasons
    the others are left out, as text.
    """
    keep = np.array([o.is_point for o in optima], dtype=bool)
    return keep, [WHY[o.status] for o in optima if not o.is_point]
