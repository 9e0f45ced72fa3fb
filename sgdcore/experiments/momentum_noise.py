"""The momentum noise scale, checked (Smith & Le, Appendix D).

Appendix D derives the noise scale of heavy-ball momentum SGD,
``g = ε (N/B - 1) / (1 - m)``, by matching it to an underdamped Langevin equation. Its
testable consequence: near a minimum, where the mean cost has Hessian ``H`` and the
per-example gradients have covariance ``F``, the stationary covariance ``Σ`` of the
parameters solves ``H Σ + Σ H = (g / N) F`` -- in one dimension
``Var θ = g F / (2 N h)`` -- as long as the SDE describes the discrete updates
(``ε h << 2 (1 + m)``). :mod:`sgdcore.stationary` holds the derivation, the SDE's
prediction and the exact stationary covariance of the discrete recursion.

This experiment measures the stationary variance by simulation and sets it against both:

* a one-dimensional quadratic (``h = 1``, per-example variance ``F = 1``, ``N = 1000``)
  with Gaussian gradient noise of the mini-batch covariance ``F (N/B - 1) / N``
  injected, over a grid of ``ε``, ``B`` and ``m``; ``replicas`` independent runs per
  point, the Monte-Carlo error from the effective sample size of ``θ²``;
* binary logistic regression (3 features, ``N = 400`` synthetic examples, ``l2 = 1``)
  started at its MAP, trained with momentum SGD on real mini-batches (a fresh random
  batch each step, the sampling Section 5's noise model assumes), against the
  prediction from its exact Hessian and per-example gradient covariance at the MAP.

Every point is plotted as measured / SDE against ``x = ε h / (2 (1 + m))`` (``h`` the
largest curvature): the exact recursion gives ``1 / (1 - x)`` for the quadratic, so the
SDE holds for ``x << 1`` and fails as ``x -> 1`` (divergence at ``x = 1``).

Full mode: 6 values of ``ε`` x 2 of ``B`` x 3 of ``m`` on the quadratic and 4 values
of ``ε`` on logistic regression, 34 s of CPU time (measured; one core does the work);
``--quick``: a smaller grid, 8 s of CPU time.

Run it as ``sgdcore run momentum-noise [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import _common as C

NAME = "momentum-noise"
#: The experiment builds its own problems (a quadratic, synthetic logistic data), so it
#: takes no data options.
TAKES_DATA = False

N_QUAD = 1000
FULL = {
    "lrs": [0.003, 0.03, 0.3, 1.0, 2.0, 3.0],
    "batch_sizes": [10, 100],
    "momenta": [0.0, 0.5, 0.9],
    "logistic_lrs": [0.02, 0.2, 1.0, 3.0],
    "replicas": 64,
    "logistic_replicas": 8,
    "logistic_steps": 6000,
}
QUICK = {
    "lrs": [0.003, 0.3, 1.5],
    "batch_sizes": [10],
    "momenta": [0.0, 0.9],
    "logistic_lrs": [0.05, 2.0],
    "replicas": 32,
    "logistic_replicas": 4,
    "logistic_steps": 2000,
}
#: |measured / SDE - 1| above this (and beyond Monte-Carlo error) counts as a breakdown.
BREAK = 0.10


def _variance(samples):
    """Mean of the squared deviation and its Monte-Carlo standard error."""
    from ..sample import effective_sample_size

    sq = samples if samples.ndim == 2 else samples[..., 0]
    ess = effective_sample_size(sq)[0]
    return float(sq.mean()), float(sq.std() / np.sqrt(ess))


def _quadratic_rows(p, seed):
    from ..stationary import (
        discrete_stationary_cov,
        minibatch_noise_cov,
        sde_stationary_cov,
        simulate_quadratic,
    )
    from ..theory import noise_scale

    rows = []
    for m in p["momenta"]:
        for b in p["batch_sizes"]:
            S = minibatch_noise_cov(1.0, N_QUAD, b)
            for eps in p["lrs"]:
                if eps >= 2 * (1 + m):  # no stationary distribution
                    continue
                relax = max((1 - m) / eps, 1.0)  # steps for the position to relax
                steps = int(min(max(40 * relax, 2000), 40_000))
                x = simulate_quadratic(
                    1.0,
                    S,
                    eps,
                    m,
                    steps=steps,
                    burn_in=int(min(10 * relax, steps // 4)),
                    replicas=p["replicas"],
                    seed=seed,
                )
                var, err = _variance(x**2)
                rows.append(
                    {
                        "case": "quadratic",
                        "lr": eps,
                        "batch_size": b,
                        "momentum": m,
                        "noise_scale": noise_scale(eps, N_QUAD, b, m),
                        "x": eps / (2 * (1 + m)),
                        "measured": var,
                        "mcse": err,
                        "sde": float(sde_stationary_cov(1.0, S, eps, m)[0, 0]),
                        "discrete": float(discrete_stationary_cov(1.0, S, eps, m)[0, 0]),
                        "steps": steps,
                        "replicas": p["replicas"],
                    }
                )
    return rows


def logistic_problem(seed=0):
    """The synthetic logistic-regression problem, its MAP, Hessian of C/N and F."""
    from .. import evidence, hessian, per_example_grads
    from ..models import LogisticRegression

    rng = np.random.default_rng(seed)
    n, d, l2 = 400, 3, 1.0
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ np.array([1.0, -1.0, 0.5])))).astype(np.int64)
    model = LogisticRegression(d)
    theta = evidence.fit_map(model, X, y, l2).theta
    H = hessian(model, theta, X, y, l2=l2) / n
    G = per_example_grads(model, theta, X, y)
    F = G.T @ G / n - np.outer(G.mean(0), G.mean(0))
    return model, X, y, l2, theta, H, F


def _logistic_rows(p, seed, backend):
    from ..stationary import (
        discrete_stationary_cov,
        minibatch_noise_cov,
        sde_stationary_cov,
        simulate_sgd,
    )
    from ..theory import noise_scale

    model, X, y, l2, theta, H, F = logistic_problem()
    n, b, m = X.shape[0], 10, 0.9
    S = minibatch_noise_cov(F, n, b, exact=True)
    h = float(np.linalg.eigvalsh(H)[-1])
    rows = []
    for eps in p["logistic_lrs"]:
        x = simulate_sgd(
            model,
            theta,
            X,
            y,
            lr=eps,
            momentum=m,
            batch_size=b,
            l2=l2,
            steps=p["logistic_steps"],
            burn_in=p["logistic_steps"] // 10,
            replicas=p["logistic_replicas"],
            thin=2,
            seed=seed,
            backend=backend,
        )
        dev = x - theta
        var, err = _variance(np.einsum("rti,rti->rt", dev, dev))
        try:
            exact = float(np.trace(discrete_stationary_cov(H, S, eps, m)))
        except ValueError:
            exact = float("nan")
        rows.append(
            {
                "case": "logistic",
                "lr": eps,
                "batch_size": b,
                "momentum": m,
                "noise_scale": noise_scale(eps, n, b, m),
                "x": eps * h / (2 * (1 + m)),
                "measured": var,
                "mcse": err,
                "sde": float(np.trace(sde_stationary_cov(H, S, eps, m))),
                "discrete": exact,
                "steps": p["logistic_steps"],
                "replicas": p["logistic_replicas"],
            }
        )
    return rows


def run(*, quick=False, seed=0, backend="auto", **overrides) -> pd.DataFrame:
    """Simulate every grid point; one row per point (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Columns ``case`` ("quadratic" or "logistic"), ``lr``, ``batch_size``,
        ``momentum``, ``noise_scale``, ``x = ε h / (2 (1 + m))``, ``measured`` (the
        stationary variance, a trace for logistic regression) with its ``mcse``, the
        predictions ``sde`` and ``discrete``, ``steps``, ``replicas``, and the derived
        ``ratio = measured / sde``, ``z_sde`` and ``z_discrete`` (deviations in
        Monte-Carlo standard errors).
    """
    p = {**(QUICK if quick else FULL), **{k: v for k, v in overrides.items() if v is not None}}
    df = pd.DataFrame(_quadratic_rows(p, seed) + _logistic_rows(p, seed, backend))
    df["ratio"] = df["measured"] / df["sde"]
    df["z_sde"] = (df["measured"] - df["sde"]) / df["mcse"]
    df["z_discrete"] = (df["measured"] - df["discrete"]) / df["mcse"]
    df.attrs["parameters"] = {**p, "seed": seed}
    return df


def verdicts(df: pd.DataFrame) -> list[dict]:
    """The experiment's verdicts (claim, measured, interval, verdict, note)."""
    quad = df[df["case"] == "quadratic"]
    small = quad[quad["x"] < 0.01]
    out = []
    z = small["z_sde"].to_numpy()
    rel = (small["ratio"] - 1).abs()
    claim = (
        "In the SDE limit the stationary variance of momentum SGD is set by the noise scale "
        "g = ε(N/B − 1)/(1 − m): Var θ = g F / (2 N h) (App. D)"
    )
    note = "quadratic, h = 1, injected Gaussian noise of covariance F (N/B − 1)/N"
    if len(small):
        err = small["mcse"] / small["sde"]
        out.append(
            {
                "claim": claim,
                "measured": f"measured / predicted − 1 up to {rel.max():.3f} over {len(small)} "
                f"(ε, B, m) with ε h/(2(1+m)) < 0.01; largest deviation "
                f"{np.abs(z).max():.1f} MC standard errors",
                "interval": f"MC standard errors {err.min():.3f}–{err.max():.3f} (relative)",
                "verdict": "agrees" if np.all(np.abs(z) < 4) else "disagrees",
                "note": note,
            }
        )
    else:
        out.append(
            {
                "claim": claim,
                "measured": "no point with ε h/(2(1+m)) < 0.01 was sampled",
                "interval": "",
                "verdict": "inconclusive",
                "note": note,
            }
        )
    broken = quad[(quad["ratio"] - 1).abs() > BREAK + 3 * quad["mcse"] / quad["sde"]]
    where = f"x = ε h/(2(1+m)) ≥ {broken['x'].min():.2f}" if len(broken) else "nowhere sampled"
    exact_ok = bool(np.all(np.abs(quad["z_discrete"]) < 4))
    out.append(
        {
            "claim": "The SDE (and so g) describes SGD only for small ε; the exact recursion "
            "gives Var/Var_SDE = 1/(1 − ε h/(2(1+m)))",
            "measured": f"SDE off by more than {BREAK:.0%} at {where}; the exact recursion "
            f"within {np.abs(quad['z_discrete']).max():.1f} MC standard errors at every point",
            "interval": f"{len(quad)} points, x from {quad['x'].min():.3g} to "
            f"{quad['x'].max():.3g}",
            "verdict": "agrees" if exact_ok and len(broken) else "inconclusive",
            "note": "the breakdown is discretisation error, as the paper says of large ε",
        }
    )
    logi = df[df["case"] == "logistic"].sort_values("lr")
    if len(logi):
        first = logi.iloc[0]
        half = 2 * first["mcse"] / first["sde"]
        if abs(first["z_sde"]) >= 4 and abs(first["ratio"] - 1) >= 0.03:
            verdict = "disagrees"
        else:  # agreement counts only when the error bar is narrow enough to mean it
            verdict = "agrees" if half < 0.2 else "inconclusive"
        out.append(
            {
                "claim": "Near the MAP of logistic regression, real mini-batch noise gives the "
                "stationary covariance H Σ + Σ H = (g/N) F",
                "measured": f"tr Σ measured / predicted = {first['ratio']:.3f} at ε = "
                f"{first['lr']:g} (B = {int(first['batch_size'])}, m = {first['momentum']:g})",
                "interval": f"± {2 * first['mcse'] / first['sde']:.3f} (2 MC standard errors)",
                "verdict": verdict,
                "note": "larger ε: ratios "
                + ", ".join(f"{r.ratio:.2f} (ε = {r.lr:g})" for r in logi.iloc[1:].itertuples()),
            }
        )
    return out


def plot(df: pd.DataFrame) -> dict:
    """Measured / SDE against ``x = ε h / (2 (1 + m))``, with the exact ``1 / (1 - x)``."""
    from ._common import curve_colors, setup_matplotlib

    plt = setup_matplotlib()
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    quad = df[df["case"] == "quadratic"]
    ms = sorted(quad["momentum"].unique())
    for color, m in zip(curve_colors(len(ms)), ms, strict=True):
        for b, marker in zip(sorted(quad["batch_size"].unique()), "os^", strict=False):
            sub = quad[(quad["momentum"] == m) & (quad["batch_size"] == b)]
            ax.errorbar(
                sub["x"],
                sub["ratio"],
                yerr=2 * sub["mcse"] / sub["sde"],
                fmt=marker,
                color=color,
                ms=5,
                capsize=2,
                label=f"quadratic, m = {m:g}, B = {b}",
            )
    logi = df[df["case"] == "logistic"]
    if len(logi):
        ax.errorbar(
            logi["x"],
            logi["ratio"],
            yerr=2 * logi["mcse"] / logi["sde"],
            fmt="D",
            mfc="none",
            color="tab:red",
            ms=6,
            capsize=2,
            label="logistic regression near its MAP (tr Σ)",
        )
    xs = np.geomspace(max(df["x"].min() / 2, 1e-4), 0.97, 200)
    ax.plot(xs, 1 / (1 - xs), color="0.3", lw=1.2, label="exact recursion: 1/(1 − x)")
    ax.axhline(1.0, color="0.6", ls="--", lw=1, label="SDE with g = ε(N/B−1)/(1−m)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("x = ε h / (2(1 + m))   (h: largest curvature of C/N)")
    ax.set_ylabel("stationary variance: measured / SDE")
    ax.set_title("Momentum noise scale (App. D): where the SDE holds")
    ax.legend(fontsize=7, loc="upper left")
    return {"momentum_noise": fig}


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    """JSON summary (with ``verdicts``) and the Markdown section."""
    vs = verdicts(df)
    lines = [
        "## momentum-noise: the momentum noise scale (Appendix D)",
        "",
        "Stationary variance of momentum SGD near a minimum, measured by simulation, "
        "against the SDE's prediction from g = ε(N/B − 1)/(1 − m) and the exact discrete "
        "recursion (see `sgdcore.stationary`).",
        "",
        "| case | ε | B | m | g | x = εh/(2(1+m)) | measured | MC s.e. | SDE | exact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.case} | {r.lr:g} | {r.batch_size} | {r.momentum:g} | {r.noise_scale:.3g} | "
            f"{r.x:.3g} | {r.measured:.4g} | {r.mcse:.2g} | {r.sde:.4g} | {r.discrete:.4g} |"
        )
    lines += ["", *C.verdict_table(vs)]
    lines += ["", "![momentum_noise](momentum_noise.png)"]
    summary = {
        "verdicts": vs,
        "parameters": df.attrs.get("parameters", {}),
        "points": df.to_dict(orient="records"),
    }
    return summary, "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a smaller grid (under a minute)")
    parser.add_argument(
        "--out", type=Path, default=Path("results") / NAME, help="output folder (%(default)s)"
    )
    parser.add_argument(
        "--seed", type=C.nonnegative_int, default=0, help="seed of every simulation"
    )
    parser.add_argument(
        "--backend",
        type=C.backend_name,
        default="auto",
        help="backend of the logistic gradients (auto, numpy, ...)",
    )


def main(args) -> int:

    start = time.perf_counter()
    df = run(quick=args.quick, seed=args.seed, backend=args.backend)
    return C.finish_in_process(sys.modules[__name__], args, df, start)
