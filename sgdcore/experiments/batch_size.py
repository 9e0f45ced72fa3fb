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

from . import _bracket
from . import _common as C
from ._specs import add_setting_arguments, schedule, setting_values, spec_maker

NAME = "batch-size"

FULL = {"hidden": 800, "lr": 0.1, "momentum": 0.9, "steps": 2000, "seeds": 3, "evals": 16}
QUICK = {"hidden": 128, "lr": 0.1, "momentum": 0.9, "steps": 500, "seeds": 3, "evals": 12}


def _sweep(p, batch_sizes):
    n = C.DATA["n_train"]
    bs = C.batch_grid(1, n, n) if batch_sizes is None else sorted(batch_sizes)
    return schedule(p, {"batch_size": bs})


make_spec = spec_maker(
    NAME,
    FULL,
    QUICK,
    _sweep,
    "The sweep: every batch size of the grid at one ε and m, several seeds.",
    extra={"batch_sizes": None},
)

run = C.sweep_runner(make_spec, "``lr``, ``momentum``, ``steps``, ``batch_sizes``", search=None)


def analyze(df: pd.DataFrame) -> dict:
    """The optimum and whether it is interior: better than a trained batch size on each
    side by more than the seed noise.

    Returns a dict with ``bopt`` (the row of :func:`_common.optima`), ``accuracy``
    (B -> mean, sd over the runs that trained, runs that trained, runs that failed),
    ``failed_to_train`` (the batch sizes where most runs failed), ``neighbours``
    (``smaller``/``larger``: the nearest trained batch size on each side of the peak,
    its margin below the peak and the noise threshold ``Z`` standard errors of the
    difference) and ``interior_optimum``: the optimum is bracketed on both sides by
    trained batch sizes that are worse beyond the noise.
    """
    fin = C.final_rows(df)
    st = _bracket.batch_stats(fin, C.n_classes_of(df))
    bopt = C.optima(df, None).iloc[0].to_dict()
    peak = bopt["b_peak"]
    trained = [b for b, v in st.items() if v.trained]
    neighbours = {}
    if peak is not None:
        i = trained.index(peak)
        for side, j in (("smaller", i - 1), ("larger", i + 1)):
            if 0 <= j < len(trained):
                b = trained[j]
                neighbours[side] = {
                    "batch_size": b,
                    "margin": st[peak].mean - st[b].mean,
                    "noise": _bracket.noise_threshold(st, peak, b),
                }
    return {
        "bopt": {k: (v.item() if hasattr(v, "item") else v) for k, v in bopt.items()},
        "accuracy": {
            b: [v.mean, v.sd, len(v.values), v.n_failed] for b, v in st.items() if v.trained
        },
        "failed_to_train": {b: [v.n_failed, v.n] for b, v in st.items() if not v.trained},
        "neighbours": neighbours,
        "interior_optimum": bopt["status"] == _bracket.BRACKETED,
        "n": int(fin["n_train"].max()),
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
    where = bo["b_opt"] if a["interior_optimum"] else bo["b_peak"]
    if where is not None:  # None: no batch size trained, so there is no optimum to mark
        ax.axvline(where, color=C.COLORS["fit"], lw=1.2, ls="--")
        if a["interior_optimum"]:
            ax.axvspan(bo["b_opt_lo"], bo["b_opt_hi"], color=C.COLORS["fit"], alpha=0.15, lw=0)
        ax.annotate(
            f"B_opt ≈ {bo['b_opt']:.0f}" if a["interior_optimum"] else f"B_opt {bo['label']}",
            xy=(where, 0.93),
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
    """JSON summary (with its ``verdicts``) and a Markdown section for the report."""
    a = analyze(df)
    spec = df.attrs.get("manifest", {}).get("spec", {})
    bo = a["bopt"]
    r = df.iloc[0]
    steps = int(df["total_steps"].max()) if "total_steps" in df else int(df["step"].max())
    seeds = df["seed"].nunique()
    table = ["| B | test accuracy (mean ± sd over the runs that trained) |", "|---|---|"]
    rows = {b: f"{m:.4f} ± {0 if np.isnan(sd) else sd:.4f}" + (f" ({nf} of {k + nf} failed)"
            if nf else "") for b, (m, sd, k, nf) in a["accuracy"].items()}  # fmt: skip
    rows.update({b: f"failed to train ({nf} of {n} runs)" for b, (nf, n) in
                 a["failed_to_train"].items()})  # fmt: skip
    for b in sorted(rows):
        table.append(f"| {b} | {rows[b]}{' **(best)**' if b == bo['b_peak'] else ''} |")
    nb = a["neighbours"]
    compare = "; ".join(
        f"the next {side} size that trained, B = {v['batch_size']}, by {v['margin']:.4f} "
        f"(noise threshold {v['noise']:.4f})"
        for side, v in nb.items()
    )
    failed = sorted(a["failed_to_train"])
    verdict = _verdict(a)
    md = "\n".join(
        [
            "## Optimum batch size (Fig. 4)",
            "",
            f"Network {_arch(spec)}, ε = {r['lr']:g}, m = {r['momentum']:g}, N = "
            f"{int(r['n_train'])}, {steps} steps, {seeds} seeds. {C.data_note(df)}",
            "",
            C.search_note(df),
            "",
            f"Test accuracy peaks at **B = {bo['b_peak']}**, beating {compare or 'no other'}"
            f". B_opt: **{bo['label']}** ({'bracketed' if a['interior_optimum'] else 'a bound'}"
            f"; bootstrap over seeds alone "
            f"[{bo['b_boot_lo']:.1f}, {bo['b_boot_hi']:.1f}]). Failed to train: "
            f"{', '.join(f'B = {b}' for b in failed) if failed else 'none'} (left out of "
            f"every mean and spread). Verdict: **{verdict['verdict']}** ({verdict['note']}).",
            "",
            *table,
            "",
            C.INTERVAL_NOTE,
            "",
            "![Fig. 4a](fig4a_curves.png)",
            "![Fig. 4b](fig4b_accuracy_vs_batch.png)",
        ]
    )
    summary = {
        "b_opt": bo,
        "accuracy": {str(k): v for k, v in a["accuracy"].items()},
        "failed_to_train": {str(k): v for k, v in a["failed_to_train"].items()},
        "neighbours": nb,
        "interior_optimum": a["interior_optimum"],
        "n_train": a["n"],
        "settings": {"lr": float(r["lr"]), "momentum": float(r["momentum"]), "steps": steps},
        "search": df.attrs.get("search"),
        "verdicts": [verdict],
    }
    return summary, md


def _verdict(a: dict) -> dict:
    bo = a["bopt"]
    claim = "At fixed ε, test accuracy has an interior optimum in B (§4, Fig. 4b)"
    n = a["n"]
    if a["interior_optimum"]:
        verdict, note = "agrees", "worse trained batch sizes on both sides, beyond the noise"
    elif bo["status"] == "above" and bo["b_peak"] == n:
        verdict, note = "disagrees", "the largest batch size is the best"
    elif bo["status"] == "edge":
        verdict = "inconclusive"
        note = "the peak is the smallest batch size that trains: pinned to the trainability edge"
    else:
        verdict, note = "inconclusive", f"the optimum is a bound ({bo['label']})"
    interval = (
        f"[{bo['b_opt_lo']:.0f}, {bo['b_opt_hi']:.0f}] (90%)" if a["interior_optimum"] else ""
    )
    return {"claim": claim, "measured": f"B_opt {bo['label'].split(' [')[0]}",
            "interval": interval, "verdict": verdict, "note": note}  # fmt: skip


def _arch(spec: dict) -> str:
    m = spec.get("model", {})
    return f"784-{m.get('hidden')}-10" if m.get("kind") == "mlp" else str(m.get("kind", "?"))


#: The settings with a command-line option of their own.
SETTINGS = ("lr", "momentum", "steps")


def add_arguments(parser) -> None:
    C.add_common_arguments(parser, NAME)
    C.add_search_arguments(parser)
    add_setting_arguments(parser, FULL, SETTINGS)


def main(args) -> int:
    return C.experiment_main(
        sys.modules[__name__],
        args,
        max_runs=args.max_runs,
        **setting_values(args, SETTINGS),
    )
