"""lr-scaling: the optimum batch size grows in proportion to the learning rate (Fig. 5).

The paper sweeps B for a range of ε at momentum 0.9, training each for ``10000/ε`` steps
(a fixed SDE time ε·steps), and finds B_opt ∝ ε (Fig. 5b: best sampled B against ε,
error bars to the next sampled B). Here every ε is trained for ``time/ε`` steps
(``steps = {rule = "constant_time"}`` in the sweep spec), the optimum is located per ε
by the bracketing search of :mod:`sgdcore.experiments._bracket` and the slope of log
B_opt against log ε is fitted through the bracketed optima (bounds are left out) with
:func:`sgdcore.theory.fit_scaling` (predicted: 1).

Each ε is sampled over the batch sizes whose noise scale ``g = ε/(1-m)(N/B - 1)`` lies
in a fixed band (``G_BAND``, a factor of about 40), so the cost per ε stays flat and
an optimum that did not follow the rule would show up at the band's edge.

============  =======================================  ==================================
              full                                     ``--quick``
============  =======================================  ==================================
network       784-800-10                               784-128-10
ε             0.01, 0.03, 0.1, 0.3                     0.03, 0.1, 0.3
m             0.9                                      0.9
steps         500/ε (5,000 at ε = 0.1)                 50/ε (500 at ε = 0.1)
B             powers of 2 (and 1000), g in [4, 150]    the same
seeds         3                                        3
============  =======================================  ==================================
"""

from __future__ import annotations

import sys

import pandas as pd

from . import _common as C
from ._specs import add_setting_arguments, setting_values, spec_maker

NAME = "lr-scaling"

#: Band of noise scales each learning rate's batch sizes cover.
G_BAND = (4.0, 150.0)
FULL = {
    "hidden": 800,
    "lrs": [0.01, 0.03, 0.1, 0.3],
    "momentum": 0.9,
    "time": 500.0,
    "seeds": 3,
}
QUICK = {"hidden": 128, "lrs": [0.03, 0.1, 0.3], "momentum": 0.9, "time": 50.0, "seeds": 3}


def _sweep(p):
    n = C.DATA["n_train"]
    grids = [
        {
            "lr": [lr],
            "batch_size": C.band_grid(lr, p["momentum"], n, G_BAND),
            "seed": list(range(p["seeds"])),
        }
        for lr in sorted(p["lrs"])
    ]
    return {
        "grid": grids,
        "fixed": {"momentum": p["momentum"]},
        "steps": {"rule": "constant_time", "time": p["time"]},
    }


make_spec = spec_maker(
    NAME,
    FULL,
    QUICK,
    _sweep,
    "One grid per ε: its band of batch sizes × seeds, ``round(time / ε)`` steps.",
)

run = C.sweep_runner(make_spec, "``lrs``, ``momentum``, ``time``", search="lr")


def analyze(df: pd.DataFrame, n_boot: int = 1000) -> dict:
    """B_opt per ε and the fitted slope of log B_opt against log ε."""
    return C.scaling_analysis(df, "lr", lambda v: v, n_boot=n_boot)


FIGURES = ("fig5a_accuracy_vs_batch", "fig5b_bopt_vs_lr")


def plot(df: pd.DataFrame) -> dict:
    """Fig. 5a (final test accuracy against B per ε) and Fig. 5b (B_opt against ε)."""
    return C.scaling_plots(
        df,
        "lr",
        analyze(df),
        hue_label=lambda v: (
            f"ε = {v:g} ({int(round(df.loc[df['lr'] == v, 'total_steps'].iloc[0]))} steps)"
        ),
        xlabel="learning rate ε",
        predicted_label="B_opt ∝ ε (predicted)",
        title=f"m = {df['momentum'].iloc[0]:g}, N = {int(df['n_train'].iloc[0])}",
        keys=FIGURES,
    )


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    """JSON summary and the report's Markdown section."""
    a = analyze(df)
    rule = df.attrs.get("manifest", {}).get("spec", {}).get("steps") or {}
    time = rule.get("time") if isinstance(rule, dict) else None
    if time is None:
        time = float((df["lr"] * df["total_steps"]).median())
    return C.scaling_summary(
        df,
        "lr",
        a,
        rule="ε",
        symbol="ε",
        heading="Learning-rate scaling: B_opt ∝ ε (Fig. 5)",
        claim="B_opt ∝ ε at fixed N and m (§5, Fig. 5b): slope 1",
        figures=FIGURES,
        settings=(
            f"m = {df['momentum'].iloc[0]:g}, N = {int(df['n_train'].iloc[0])}, "
            f"{time:g}/ε steps, batch sizes with noise scale g in [{G_BAND[0]:g}, "
            f"{G_BAND[1]:g}]"
        ),
    )


#: The settings with a command-line option of their own.
SETTINGS = ("lrs", "momentum")


def add_arguments(parser) -> None:
    C.add_common_arguments(parser, NAME)
    C.add_search_arguments(parser)
    add_setting_arguments(parser, FULL, SETTINGS)
    parser.add_argument(
        "--time",
        type=C.positive_float,
        default=None,
        help="ε × steps of every run (steps = time/ε)",
    )


def main(args) -> int:
    return C.experiment_main(
        sys.modules[__name__],
        args,
        max_runs=args.max_runs,
        **setting_values(args, SETTINGS),
        time=args.time,
    )
