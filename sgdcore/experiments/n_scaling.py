"""n-scaling: the optimum batch size grows with the training-set size (paper Fig. 6).

The paper sweeps B for several training-set sizes N at fixed ε and momentum and a fixed
number of steps, averages each curve over five seeds, and finds B_opt ∝ N (Fig. 6b). Here
every N trains on the first N examples of one random draw of the pool (so the sets are
nested) and is tested on the same held-out set; B_opt per N comes from the bracketing
search of :mod:`sgdcore.experiments._bracket` and the slope of log B_opt against log N,
through the bracketed optima (bounds are left out), from
:func:`sgdcore.theory.fit_scaling` (predicted: 1).

Each N is sampled over the batch sizes whose noise scale ``g = ε/(1-m)(N/B - 1)`` lies in
``G_BAND`` at first, which keeps the cost per N in proportion to N; the search then
extends and refines each N's grid until its optimum is bracketed (``--max-runs``).

To reach N = 4,000 on the 5,000 embedded digits, this experiment draws 4,000 training
and 1,000 test digits (with full MNIST: 4,000 from the training split, the 10,000 test
digits for testing).

**Momentum.** At the ε = 0.1, m = 0.9 of the other experiments, the small-batch side of
every curve on these data is where training becomes unstable (runs with B <= 8 fail,
whatever N); that edge depends on ε/(1-m) and B but not on N, and it pins the optimum
near B = 32 for every N up to 1,000 (we measured B_opt of 32, 32 and 64 at N = 250,
1,000 and 4,000). This experiment therefore uses **m = 0.5** (effective learning rate
ε/(1-m) = 0.2), where the edge sits at B = 2 and the optimum is free to move, and trains
for 2,500 steps (``--quick``), the same SDE time ε·steps/(1-m) = 500 as the other quick
experiments. ``--momentum 0.9 --steps 500`` gives the paper's setting.

============  =======================================  ==================================
              full                                     ``--quick``
============  =======================================  ==================================
network       784-800-10                               784-128-10
N             250, 500, 1000, 2000, 4000               500, 1000, 2000, 4000
ε, m          0.1, 0.5                                 0.1, 0.5
steps         10,000                                   2,500
B             powers of 2 (and N), g in [4, 200]       the same
seeds         5                                        3
============  =======================================  ==================================
"""

from __future__ import annotations

import sys

import pandas as pd

from . import _common as C
from ._specs import add_setting_arguments, setting_values, spec_maker

NAME = "n-scaling"

G_BAND = (4.0, 200.0)
POOL = 4000
FULL = {
    "hidden": 800,
    "ns": [250, 500, 1000, 2000, 4000],
    "lr": 0.1,
    "momentum": 0.5,
    "steps": 10000,
    "seeds": 5,
}
QUICK = {
    "hidden": 128,
    "ns": [500, 1000, 2000, 4000],
    "lr": 0.1,
    "momentum": 0.5,
    "steps": 2500,
    "seeds": 3,
}
FIGURES = ("fig6a_accuracy_vs_batch", "fig6b_bopt_vs_n")


def _sweep(p):
    grids = [
        {
            "n_train": [n],
            "batch_size": C.band_grid(p["lr"], p["momentum"], n, G_BAND),
            "seed": list(range(p["seeds"])),
        }
        for n in sorted(p["ns"])
    ]
    return {
        "grid": grids,
        "fixed": {"lr": p["lr"], "momentum": p["momentum"]},
        "steps": p["steps"],
        "pool": max(POOL, max(p["ns"])),
    }


make_spec = spec_maker(
    NAME,
    FULL,
    QUICK,
    _sweep,
    "One grid per N: its band of batch sizes × seeds, a fixed number of steps.",
)

run = C.sweep_runner(make_spec, "``ns``, ``lr``, ``momentum``, ``steps``", search="n_train")


def analyze(df: pd.DataFrame, n_boot: int = 1000) -> dict:
    """B_opt per N and the fitted slope of log B_opt against log N."""
    return C.scaling_analysis(df, "n_train", lambda v: v, n_boot=n_boot)


def plot(df: pd.DataFrame) -> dict:
    """Fig. 6a (final test accuracy against B per N) and Fig. 6b (B_opt against N)."""
    r = df.iloc[0]
    return C.scaling_plots(
        df,
        "n_train",
        analyze(df),
        hue_label=lambda v: f"N = {int(v)}",
        xlabel="training-set size N",
        predicted_label="B_opt ∝ N (predicted)",
        title=f"ε = {r['lr']:g}, m = {r['momentum']:g}, {int(df['total_steps'].iloc[0])} steps",
        keys=FIGURES,
    )


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    """JSON summary and the report's Markdown section."""
    r = df.iloc[0]
    return C.scaling_summary(
        df,
        "n_train",
        analyze(df),
        rule="N",
        symbol="N",
        heading="Training-set-size scaling: B_opt ∝ N (Fig. 6)",
        claim="B_opt ∝ N at fixed ε and m (§5, Fig. 6b): slope 1",
        figures=FIGURES,
        settings=(
            f"ε = {r['lr']:g}, m = {r['momentum']:g}, {int(df['total_steps'].iloc[0])} steps, "
            f"batch sizes with noise scale g in [{G_BAND[0]:g}, {G_BAND[1]:g}]"
        ),
    )


#: The settings with a command-line option of their own.
SETTINGS = ("ns", "lr", "momentum", "steps")


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
