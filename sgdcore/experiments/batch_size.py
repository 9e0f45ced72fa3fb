"""batch-size: test accuracy against batch size at a fixed learning rate (paper Fig. 4).

The paper trains its 784-800-10 network on N = 1,000 MNIST digits with momentum 0.9 and
a constant learning rate for batch sizes from 1 to 1,000, and finds an interior optimum:
small batches fail to train, large batches generalize worse (Fig. 4a: test accuracy
curves for each B; Fig. 4b: final test accuracy against B).

Defaults (see :mod:`sgdcore.experiments._common` for why ε = 0.1, not the paper's ε = 1):

============  =======================================  ==================================
              full                                     ``--quick``
============  =======================================  ==================================
network       784-800-10                               784-128-10
ε, m          0.1, 0.9                                 0.1, 0.9
steps         2,000                                    500
B             1, 2, 4, ..., 512, 1000                  1, 2, 4, ..., 512, 1000
seeds         3                                        3
evaluations   16, log-spaced                           12, log-spaced
============  =======================================  ==================================

For orientation, on the 5,000 embedded digits (1,000 train / 4,000 test) the 784-800-10
network after 500 steps peaks at B = 64 (0.906 against 0.897 at B = 256 and 1,000) and
collapses for B <= 4; after 5,000 steps the peak moves to B = 16. The ``--quick`` network
shows the same shape (peak at B = 32 after 500 steps, about 0.917 against 0.901 at full
batch).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from .. import sweep, theory
from . import _common as C

NAME = "batch-size"

FULL = {"hidden": 800, "lr": 0.1, "momentum": 0.9, "steps": 2000, "seeds": 3, "evals": 16}
QUICK = {"hidden": 128, "lr": 0.1, "momentum": 0.9, "steps": 500, "seeds": 3, "evals": 12}


def make_spec(
    quick: bool = False,
    *,
    hidden=None,
    seeds=None,
    lr=None,
    momentum=None,
    steps=None,
    batch_sizes=None,
    backend: str = "auto",
    data=None,
) -> sweep.SweepSpec:
    """The sweep: every batch size of the grid at one ε and m, several seeds."""
    p = C.parameters(
        QUICK if quick else FULL, hidden=hidden, seeds=seeds, lr=lr, momentum=momentum, steps=steps
    )
    n = C.DATA["n_train"]
    bs = C.batch_grid(1, n, n) if batch_sizes is None else sorted(batch_sizes)
    return sweep.SweepSpec(
        name=NAME,
        grid={"batch_size": bs, "seed": list(range(p["seeds"]))},
        fixed={"lr": p["lr"], "momentum": p["momentum"]},
        steps=p["steps"],
        eval={"log": p["evals"]},
        model={"kind": "mlp", "hidden": p["hidden"]},
        data=C.data_table(data),
        backend=backend,
    )


run = C.sweep_runner(make_spec, "``lr``, ``momentum``, ``steps``, ``batch_sizes``")


def analyze(df: pd.DataFrame) -> dict:
    """The optimum and whether it is interior beyond the seed spread.

    Returns a dict with ``bopt`` (the row of :func:`sgdcore.theory.optimal_batch_size`),
    ``accuracy`` (B -> mean, sd over seeds), and ``margin_small``/``margin_large``:
    the mean accuracy at the best B minus that at the smallest/largest B, and
    ``spread``: the largest seed standard deviation among those three batch sizes.
    ``interior_optimum`` is True when both margins exceed the spread.
    """
    fin = C.final_rows(df).copy()
    fin["test_accuracy"] = fin["test_accuracy"].fillna(0.1)
    stats = fin.groupby("batch_size")["test_accuracy"].agg(["mean", "std"])
    bopt = theory.optimal_batch_size(df, by=[])
    row = bopt.iloc[0]
    b_small, b_large, b_best = stats.index.min(), stats.index.max(), int(row["b_best"])
    spread = float(stats.loc[[b_small, b_large, b_best], "std"].fillna(0).max())
    margin_small = float(stats.loc[b_best, "mean"] - stats.loc[b_small, "mean"])
    margin_large = float(stats.loc[b_best, "mean"] - stats.loc[b_large, "mean"])
    return {
        "bopt": {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
        "accuracy": {int(b): [float(r["mean"]), float(r["std"])] for b, r in stats.iterrows()},
        "margin_small": margin_small,
        "margin_large": margin_large,
        "spread": spread,
        "interior_optimum": bool(margin_small > spread and margin_large > spread),
    }


def plot(df: pd.DataFrame) -> dict:
    """Fig. 4a (test accuracy against steps, one curve per B) and Fig. 4b (final test
    accuracy against B, the optimum marked).
    """
    plt = C.setup_matplotlib()
    a = analyze(df)
    curves = C.mean_curves(df, ["batch_size"])
    bs = sorted(curves["batch_size"].unique())
    fig_a, ax = plt.subplots(figsize=(7.2, 4.2))
    for c, b in zip(C.curve_colors(len(bs)), bs, strict=True):
        sub = curves[(curves["batch_size"] == b) & (curves["step"] > 0)]
        ax.plot(sub["step"], sub["mean"], color=c, lw=1.5, marker=".", ms=3, label=f"B = {b}")
    ax.set_xscale("log")
    ax.set_xlabel("gradient updates")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_title(_title(df, "test accuracy during training"))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))

    fig_b, ax = plt.subplots(figsize=(6.4, 4.2))
    C.accuracy_vs_batch(ax, df, "lr", lambda v: f"ε = {v:g}", legend=False, zoom=0.12)
    bo = a["bopt"]
    ax.axvline(bo["b_smooth"], color=C.COLORS["fit"], lw=1.2, ls="--")
    ax.axvspan(bo["b_smooth_lo"], bo["b_smooth_hi"], color=C.COLORS["fit"], alpha=0.15, lw=0)
    ax.annotate(
        f"B_opt ≈ {bo['b_smooth']:.0f}",
        xy=(bo["b_smooth"], 0.93),
        xycoords=("data", "axes fraction"),
        xytext=(4, 0),
        textcoords="offset points",
        color=C.COLORS["fit"],
    )
    ax.set_title(_title(df, "final test accuracy"))
    return {"fig4a_curves": fig_a, "fig4b_accuracy_vs_batch": fig_b}


def _title(df, what: str) -> str:
    r = df.iloc[0]
    return f"{what}: ε = {r['lr']:g}, m = {r['momentum']:g}, N = {int(r['n_train'])}"


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    """JSON summary and a Markdown section for the report."""
    a = analyze(df)
    spec = df.attrs.get("manifest", {}).get("spec", {})
    bo = a["bopt"]
    r = df.iloc[0]
    steps = int(df["total_steps"].max()) if "total_steps" in df else int(df["step"].max())
    seeds = df["seed"].nunique()
    acc = a["accuracy"]
    table = ["| B | test accuracy (mean ± sd over seeds) |", "|---|---|"]
    for b, (m, s) in sorted(acc.items()):
        mark = " **(best)**" if b == bo["b_best"] else ""
        table.append(f"| {b} | {m:.4f} ± {0 if np.isnan(s) else s:.4f}{mark} |")
    verdict = "an interior optimum" if a["interior_optimum"] else "no clear interior optimum"
    md = "\n".join(
        [
            "## Optimum batch size (Fig. 4)",
            "",
            f"Network {_arch(spec)}, ε = {r['lr']:g}, m = {r['momentum']:g}, N = "
            f"{int(r['n_train'])}, {steps} steps, {seeds} seeds. {C.data_note(df)}",
            "",
            f"Test accuracy peaks at **B = {bo['b_best']}** (neighbours {bo['b_lo']} and "
            f"{bo['b_hi']}); a parabola through it and its neighbours (in log B) puts the "
            f"optimum at "
            f"{bo['b_smooth']:.1f} (90% bootstrap interval {bo['b_smooth_lo']:.1f} to "
            f"{bo['b_smooth_hi']:.1f}). The best B beats the smallest by "
            f"{a['margin_small']:.4f} and the largest by {a['margin_large']:.4f}, against a "
            f"seed spread of {a['spread']:.4f}: {verdict}.",
            "",
            *table,
            "",
            "![Fig. 4a](fig4a_curves.png)",
            "![Fig. 4b](fig4b_accuracy_vs_batch.png)",
        ]
    )
    summary = {
        "b_opt": bo,
        "accuracy": {str(k): v for k, v in acc.items()},
        "margin_small": a["margin_small"],
        "margin_large": a["margin_large"],
        "spread": a["spread"],
        "interior_optimum": a["interior_optimum"],
        "settings": {"lr": float(r["lr"]), "momentum": float(r["momentum"]), "steps": steps},
    }
    return summary, md


def _arch(spec: dict) -> str:
    m = spec.get("model", {})
    return f"784-{m.get('hidden')}-10" if m.get("kind") == "mlp" else str(m.get("kind", "?"))


def add_arguments(parser) -> None:
    C.add_common_arguments(parser, NAME)
    parser.add_argument(
        "--lr", type=C.positive_float, default=None, help="learning rate ε (default 0.1)"
    )
    parser.add_argument(
        "--momentum", type=C.momentum_value, default=None, help="momentum m (default 0.9)"
    )
    parser.add_argument("--steps", type=C.positive_int, default=None, help="SGD steps per run")


def main(args) -> int:
    return C.experiment_main(
        sys.modules[__name__],
        args,
        lr=args.lr,
        momentum=args.momentum,
        steps=args.steps,
    )
