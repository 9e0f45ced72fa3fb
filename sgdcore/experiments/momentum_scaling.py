"""momentum-scaling: the optimum batch size grows as 1/(1-m) (paper Fig. 7).

With heavy-ball momentum the noise scale is ``g = ε/(1-m) (N/B - 1)``, so at fixed ε
and N the optimum batch size should grow in proportion to ``1/(1-m)`` (Fig. 7b, where
the paper's green curve is B_opt ∝ 1/(1-m)). B_opt per momentum comes from the
bracketing search of :mod:`sgdcore.experiments._bracket` and the slope of log B_opt
against log 1/(1-m), through the bracketed optima (bounds are left out), from
:func:`sgdcore.theory.fit_scaling` (predicted: 1).

**Step budget.** The paper trains every momentum for the same number of updates. At our
ε = 0.1 that leaves the low-momentum runs far from converged (their effective learning
rate ε/(1-m) is 5x smaller at m = 0.5 than at m = 0.9), and their accuracy-against-B
curves come out flat. So by default each run gets ``time (1-m)/ε`` steps, which keeps
the SDE time counted in the effective learning rate, ``ε·steps/(1-m)``, the same for
every m — the analogue of Fig. 5's 10000/ε steps (``steps = {rule = "constant_time",
per = "effective_lr"}`` in a sweep spec). ``--fixed-steps S`` gives the paper's
protocol instead.

Each m is sampled over the batch sizes whose noise scale lies in ``G_BAND``.

============  =======================================  ==================================
              full                                     ``--quick``
============  =======================================  ==================================
network       784-800-10                               784-128-10
m             0.5, 0.75, 0.9, 0.95                     0.5, 0.8, 0.9
ε             0.1                                      0.1
steps         50,000 (1-m) (5,000 at m = 0.9)          5,000 (1-m) (500 at m = 0.9)
B             powers of 2 (and 1000), g in [4, 150]    the same
seeds         3                                        3
============  =======================================  ==================================

(``time`` = ε·steps/(1-m): 5,000 in full, 500 with ``--quick``.)
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from . import _common as C
from ._specs import add_setting_arguments, setting_values, spec_maker

NAME = "momentum-scaling"

G_BAND = (4.0, 150.0)
FULL = {
    "hidden": 800,
    "momenta": [0.5, 0.75, 0.9, 0.95],
    "lr": 0.1,
    "time": 5000.0,
    "seeds": 3,
}
QUICK = {"hidden": 128, "momenta": [0.5, 0.8, 0.9], "lr": 0.1, "time": 500.0, "seeds": 3}
FIGURES = ("fig7a_accuracy_vs_batch", "fig7b_bopt_vs_momentum")


def _sweep(p, fixed_steps):
    n = C.DATA["n_train"]
    grids = [
        {
            "momentum": [m],
            "batch_size": C.band_grid(p["lr"], m, n, G_BAND),
            "seed": list(range(p["seeds"])),
        }
        for m in sorted(p["momenta"])
    ]
    steps = (
        {"rule": "constant_time", "time": p["time"], "per": "effective_lr"}
        if fixed_steps is None
        else fixed_steps
    )
    return {"grid": grids, "fixed": {"lr": p["lr"]}, "steps": steps}


make_spec = spec_maker(
    NAME,
    FULL,
    QUICK,
    _sweep,
    "One grid per m: its band of batch sizes × seeds; ``time (1-m)/ε`` steps, or\n"
    "    ``fixed_steps`` for every m.",
    extra={"fixed_steps": None},
)

run = C.sweep_runner(make_spec, "``momenta``, ``lr``, ``time``, ``fixed_steps``", search="momentum")


def analyze(df: pd.DataFrame, n_boot: int = 1000) -> dict:
    """B_opt per m and the fitted slope of log B_opt against log 1/(1-m)."""
    return C.scaling_analysis(df, "momentum", lambda m: 1.0 / (1.0 - m), n_boot=n_boot)


def plot(df: pd.DataFrame) -> dict:
    """Fig. 7a (final test accuracy against B per m) and Fig. 7b (B_opt against
    1/(1-m)).
    """
    steps = df.groupby("momentum")["total_steps"].first()
    ms = sorted(df["momentum"].unique())
    return C.scaling_plots(
        df,
        "momentum",
        analyze(df),
        hue_label=lambda m: f"m = {m:g} ({int(steps[m])} steps)",
        xlabel="1 / (1 − m)",
        predicted_label="B_opt ∝ 1/(1−m) (predicted)",
        title=f"ε = {df['lr'].iloc[0]:g}, N = {int(df['n_train'].iloc[0])}",
        keys=FIGURES,
        xticklabels=[f"{1 / (1 - m):g}\n(m = {m:g})" for m in ms],
    )


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    """JSON summary and the report's Markdown section."""
    steps = df.groupby("momentum")["total_steps"].first()
    eff_time = df["lr"].iloc[0] * steps / (1 - steps.index.to_numpy())
    if steps.nunique() == 1:
        budget = f"{int(steps.iloc[0])} steps for every m (the paper's protocol)"
    else:
        budget = (
            f"{np.median(eff_time):g}·(1−m)/ε steps "
            f"({', '.join(f'{int(s)} at m = {m:g}' for m, s in steps.items())})"
        )
    return C.scaling_summary(
        df,
        "momentum",
        analyze(df),
        rule="1/(1−m)",
        symbol="m",
        heading="Momentum scaling: B_opt ∝ 1/(1−m) (Fig. 7)",
        claim="B_opt ∝ 1/(1−m) at fixed ε and N (§5, App. D, Fig. 7b): slope 1",
        figures=FIGURES,
        settings=(
            f"ε = {df['lr'].iloc[0]:g}, N = {int(df['n_train'].iloc[0])}, {budget}, batch "
            f"sizes with noise scale g in [{G_BAND[0]:g}, {G_BAND[1]:g}]"
        ),
    )


#: The settings with a command-line option of their own.
SETTINGS = ("momenta", "lr")


def add_arguments(parser) -> None:
    C.add_common_arguments(parser, NAME)
    C.add_search_arguments(parser)
    add_setting_arguments(parser, FULL, SETTINGS)
    parser.add_argument(
        "--time",
        type=C.positive_float,
        default=None,
        help="ε·steps/(1-m) of every run (steps rule)",
    )
    parser.add_argument(
        "--fixed-steps",
        type=C.positive_int,
        default=None,
        help="train every m for this many steps (the paper's protocol) instead",
    )


def main(args) -> int:
    return C.experiment_main(
        sys.modules[__name__],
        args,
        max_runs=args.max_runs,
        **setting_values(args, SETTINGS),
        time=args.time,
        fixed_steps=args.fixed_steps,
    )
