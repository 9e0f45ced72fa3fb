"""Posterior samples of the shallow net and the evidence of its minima (Appendix A).

Appendix A: Langevin dynamics at temperature 1 (Eq. 14, :func:`sgdcore.sample.langevin`)
samples the posterior ``exp(-C)``, so a sample lands in the bowl of attraction ``D`` of
a minimum with probability ``∫_D exp(-C)`` (Eq. 15), which is that minimum's local
evidence (Eq. 18): posterior samples favour broad, high-evidence minima, and the paper
argues this is why a single posterior sample often has a lower test error than the MAP.

The experiment, on the paper's one-hidden-layer ReLU network (``784-H-10``) and ``N``
MNIST digits, with the L2 prior ``l2`` (summed-cost convention):

1. From two initialisations (seeds 0 and 1), SGD (momentum 0.9, B = 20, ε = 0.1, with
   the L2 term) runs to two minima ``A`` and ``B``; their local Laplace evidences
   ``ln Z_A``, ``ln Z_B`` (:func:`sgdcore.evidence.laplace`, stochastic Lanczos
   quadrature, with the paper's rule of keeping the Hessian eigenvalues ``>= l2``, since
   SGD's end points are minima only to within its noise; ``|grad C|`` is recorded)
   predict the share of posterior mass in each bowl,
   ``p_A = 1 / (1 + exp(ln Z_B - ln Z_A))``.
2. Langevin chains at ``T = 1`` start at ``A``, at ``B`` and at their midpoint, with
   ``ε`` set so that ``ε λ_max / N = 0.2`` at ``A`` (``λ_max`` by Lanczos); the first
   half of each chain is discarded, and the split R-hat of the cost over all chains
   says whether the rest has reached equilibrium (if not, both verdicts are
   "inconclusive"). Every kept
   sample is assigned to the nearer of the two minima (Euclidean distance: the two
   bowls' Voronoi cells stand in for their bowls of attraction); the experiment
   records the fraction in each and how many samples crossed from the bowl their chain
   started in.
3. The test error of each chain's last sample (a posterior sample) against that of the
   minimum it sits nearest to.

Verdicts: the occupancy claim is "inconclusive" when no chain crosses between the bowls
(the chains then show where they started, not the posterior's weights), else the
measured fraction is compared with ``p_A``. The test-error claim compares the mean
difference (posterior sample − its minimum) with its spread over chains.

Settings: ``--quick``: H = 8, N = 200, l2 = 10, 2 chains per start, 600 steps
(about 30 CPU-seconds). Full: H = 32, N = 1000, 4 chains per start, 5,000 steps: about
60,000 gradients of the 784-32-10 network on 1,000 digits plus two SLQ evidences, an
estimated 20-40 minutes on 2 idle cores (scaled from the quick run's cost per
gradient, not timed).

Run it as ``sgdcore run langevin [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import _common as C

NAME = "langevin"

FULL = {"hidden": 32, "n_train": 1000, "l2": 10.0, "chains": 4, "steps": 5000, "thin": 25}
QUICK = {"hidden": 8, "n_train": 200, "l2": 10.0, "chains": 2, "steps": 600, "thin": 10}
#: SGD that finds each minimum before L-BFGS polishes it.
SGD = {"batch_size": 20, "lr": 0.1, "momentum": 0.9, "steps": 1000}
#: ε λ_max / N of the sampler.
STEP_RATIO = 0.2
STARTS = ("A", "B", "midpoint")


def _data(table):
    from ..sweep import load_data

    return load_data(table, "float64")


def _minimum(model, train, l2, seed, backend):
    """SGD from ``model.init(seed)``: ``(theta, laplace result)`` at its end point."""
    from .. import evidence
    from ..training import train as sgd

    _, params = sgd(
        model,
        (train.X, train.y),
        (train.X[:10], train.y[:10]),
        seeds=[seed],
        l2=l2,
        dtype=np.float64,
        backend=backend,
        return_params=True,
        **SGD,
    )
    theta = np.ascontiguousarray(params[0])
    lap = evidence.laplace(
        model,
        theta,
        train.X,
        train.y,
        l2,
        method="slq",
        n_probes=8,
        steps=25,
        seed=seed,
        backend=backend,
    )
    return theta, lap


def _top_curvature(model, theta, train, l2, backend):
    from ..curvature import HessianOperator, top_eigenvalues

    op = HessianOperator(model, theta, train.X, train.y, l2=l2, backend=backend)
    return float(top_eigenvalues(op, 1, tol=1e-3).eigenvalues[0])


def _error(model, theta, test, backend):
    from .. import accuracy

    return 1.0 - accuracy(model, theta, test.X, test.y, backend=backend)


def run(
    *,
    quick=False,
    seed=0,
    backend="auto",
    data=None,
    data_split=None,
    download=False,
    offline_ok=False,
    **overrides,
) -> pd.DataFrame:
    """Find two minima, sample from each and from their midpoint; one row per sample.

    ``data``, ``data_split``, ``download`` and ``offline_ok`` choose the data as for
    every experiment (see :func:`sgdcore.data.load_pools`); the training set is
    ``n_train`` examples of it.

    Returns
    -------
    pandas.DataFrame
        Columns ``start`` ("A", "B", "midpoint"), ``chain``, ``step``, ``dist_A``,
        ``dist_B``, ``basin`` (the nearer minimum), ``cost`` and ``test_error``;
        ``df.attrs["minima"]`` holds each minimum's cost, Occam term, log evidence
        (with its SLQ standard error) and test error, and ``df.attrs["parameters"]``
        the settings.
    """
    from ..models import MLP
    from ..sample import langevin, split_rhat
    from ..sweep.inputs import n_classes_of

    p = {**(QUICK if quick else FULL), **{k: v for k, v in overrides.items() if v is not None}}
    table = C.data_table(data, data_split, download, offline_ok, n_train=int(p["n_train"]))
    train, test = _data(table)
    model = MLP(train.X.shape[1], p["hidden"], n_classes_of(train, test))
    l2 = p["l2"]
    minima = {}
    for name, s in (("A", 0), ("B", 1)):
        theta, lap = _minimum(model, train, l2, s, backend)
        minima[name] = {
            "theta": theta,
            "cost": lap.cost,
            "occam": lap.occam,
            "log_evidence": lap.log_evidence,
            "log_evidence_se": lap.std_error,
            "grad_norm": lap.grad_norm,
            "test_error": _error(model, theta, test, backend),
        }
    lam = _top_curvature(model, minima["A"]["theta"], train, l2, backend)
    lr = STEP_RATIO * len(train.y) / lam
    tA, tB = minima["A"]["theta"], minima["B"]["theta"]
    starts = {"A": tA, "B": tB, "midpoint": 0.5 * (tA + tB)}
    rows, traces = [], []
    for k, (start, theta0) in enumerate(starts.items()):
        r = langevin(
            model,
            theta0,
            train.X,
            train.y,
            lr=lr,
            steps=p["steps"],
            l2=l2,
            seed=seed * 16 + k,
            burn_in=p["steps"] // 2,
            thin=p["thin"],
            chains=p["chains"],
            backend=backend,
        )
        traces.append(r.cost[:, r.sample_steps - 1])
        for c in range(p["chains"]):
            for j, step in enumerate(r.sample_steps):
                th = r.samples[c, j]
                dA, dB = float(np.linalg.norm(th - tA)), float(np.linalg.norm(th - tB))
                last = j == len(r.sample_steps) - 1
                rows.append(
                    {
                        "start": start,
                        "chain": c,
                        "step": int(step),
                        "dist_A": dA,
                        "dist_B": dB,
                        "basin": "A" if dA <= dB else "B",
                        "cost": float(r.cost[c, step - 1]),
                        "test_error": _error(model, th, test, backend) if last else np.nan,
                    }
                )
    df = pd.DataFrame(rows)
    cost = np.concatenate(traces)
    rhat_cost = float(split_rhat(cost)[0]) if cost.shape[1] >= 4 else float("nan")
    df.attrs["minima"] = {
        k: {kk: vv for kk, vv in v.items() if kk != "theta"} for k, v in minima.items()
    }
    df.attrs["minima"]["separation"] = float(np.linalg.norm(tA - tB))
    df.attrs["parameters"] = {
        **p,
        "seed": seed,
        "lr": lr,
        "lambda_max": lam,
        "n_test": len(test.y),
        "data_source": train.source,
        "n_params": model.n_params,
        # chains from all three starts agree on the cost once they sample one distribution
        "rhat_cost": rhat_cost,
    }
    return df


def predicted_share(minima) -> float:
    """``p_A = Z_A / (Z_A + Z_B)`` from the two local log evidences (Eqs. 15 and 18)."""
    d = minima["B"]["log_evidence"] - minima["A"]["log_evidence"]
    return float(1.0 / (1.0 + np.exp(np.clip(d, -700, 700))))


def verdicts(df: pd.DataFrame) -> list[dict]:
    """The experiment's verdicts (claim, measured, interval, verdict, note)."""
    minima = df.attrs["minima"]
    p_a = predicted_share(minima)
    se = float(np.hypot(minima["A"]["log_evidence_se"], minima["B"]["log_evidence_se"]))
    diff = minima["A"]["log_evidence"] - minima["B"]["log_evidence"]
    share = float((df["basin"] == "A").mean())
    ends = df[df["test_error"].notna()]
    crossed = df[(df["start"] != "midpoint") & (df["basin"] != df["start"])]
    per_chain = ends.groupby(["start", "chain"])["basin"].first()
    mid = per_chain.loc["midpoint"] if "midpoint" in per_chain.index.get_level_values(0) else []
    out = []
    rhat = df.attrs["parameters"]["rhat_cost"]
    settled = bool(rhat < 1.1)  # False for NaN (too few samples to tell)
    unsettled = (
        f"the chains had not reached equilibrium (split R-hat of the cost over all chains "
        f"{rhat:.2f} > 1.1), so their samples are not yet posterior samples"
    )
    if not settled:
        verdict, note = "inconclusive", unsettled
    elif len(crossed) == 0:
        verdict, note = (
            "inconclusive",
            "no chain crossed between the bowls: the occupancy reflects the starts, not "
            "the posterior weights",
        )
    else:
        n = len(per_chain)
        half = 1.96 * np.sqrt(max(share * (1 - share), 1.0 / n) / n)
        verdict = "agrees" if abs(share - p_a) <= half else "disagrees"
        note = f"{len(crossed)} samples crossed; chains are the independent units (n = {n})"
    out.append(
        {
            "claim": "A posterior sampler lands in each minimum's bowl with probability "
            "proportional to its local evidence (Eq. 15 = Eq. 18)",
            "measured": f"share of samples nearer A {share:.2f} (midpoint chains ending "
            f"at A: {int(np.sum(np.asarray(mid) == 'A'))} of {len(mid)}); predicted "
            f"p_A = {p_a:.3g} from ln Z_A − ln Z_B = {diff:.1f}",
            "interval": f"ln Z_A − ln Z_B ± {2 * se:.1f} (2 SLQ standard errors)",
            "verdict": verdict,
            "note": note,
        }
    )
    gaps = []
    for r in ends.itertuples():
        gaps.append(r.test_error - minima[r.basin]["test_error"])
    gaps = np.array(gaps)
    mean = float(gaps.mean())
    half = float(2 * gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else np.inf
    if not settled:
        v = "inconclusive"
    elif mean + half < 0:
        v = "agrees"
    elif mean - half > 0:
        v = "disagrees"
    else:
        v = "inconclusive"
    out.append(
        {
            "claim": "A single posterior sample often has a lower test error than the MAP (App. A)",
            "measured": f"test error of a posterior sample − its minimum's: {mean:+.4f} "
            f"(MAP errors A {minima['A']['test_error']:.4f}, B {minima['B']['test_error']:.4f})",
            "interval": f"[{mean - half:+.4f}, {mean + half:+.4f}] (± 2 s.e. over "
            f"{len(gaps)} chains)",
            "verdict": v,
            "note": (unsettled + "; " if not settled else "")
            + f"T = 1, l2 = {df.attrs['parameters']['l2']:g}: at equilibrium the cost "
            f"exceeds the minimum's by about P/2 = {df.attrs['parameters']['n_params'] / 2:.0f}"
            " nats, the prior's scale in the directions the data leave free",
        }
    )
    return out


def plot(df: pd.DataFrame) -> dict:
    """(a) each chain's distances to A and B; (b) its cost along the run."""
    from ._common import setup_matplotlib

    plt = setup_matplotlib()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colors = {"A": "tab:blue", "B": "tab:orange", "midpoint": "tab:green"}
    sep = df.attrs["minima"]["separation"]
    for (start, chain), g in df.groupby(["start", "chain"]):
        axes[0].plot(
            g["dist_A"] / sep,
            g["dist_B"] / sep,
            "-",
            color=colors[start],
            lw=1,
            alpha=0.8,
            label=f"from {start}" if chain == 0 else None,
        )
        axes[1].plot(g["step"], g["cost"], color=colors[start], lw=1, alpha=0.8)
    lim = max(1.2, float((df[["dist_A", "dist_B"]] / sep).to_numpy().max()) * 1.05)
    axes[0].plot([0, lim], [0, lim], "--", color="0.5", lw=1, label="equidistant")
    axes[0].plot([0], [1], "s", color=colors["A"], ms=8)
    axes[0].plot([1], [0], "s", color=colors["B"], ms=8)
    axes[0].set_xlabel("|θ − θ_A| / |θ_A − θ_B|")
    axes[0].set_ylabel("|θ − θ_B| / |θ_A − θ_B|")
    axes[0].set_title("(a) where the chains go (squares: the minima)")
    axes[0].legend(fontsize=8)
    m = df.attrs["minima"]
    for k in ("A", "B"):
        axes[1].axhline(m[k]["cost"], color=colors[k], ls=":", lw=1, label=f"C at {k}")
    axes[1].axhline(
        m["A"]["cost"] + df.attrs["parameters"]["n_params"] / 2,
        color="0.4",
        ls="--",
        lw=1,
        label="C at A + P/2 (Gaussian posterior's mean cost)",
    )
    axes[1].set_xlabel("Langevin step")
    axes[1].set_ylabel("summed cost C")
    axes[1].set_title("(b) cost along the chains")
    axes[1].legend(fontsize=8)
    return {"langevin_chains": fig}


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    """JSON summary (with ``verdicts``) and the Markdown section."""
    vs = verdicts(df)
    m, p = df.attrs["minima"], df.attrs["parameters"]
    lines = [
        "## langevin: posterior samples and the local evidence (Appendix A)",
        "",
        f"Network 784-{p['hidden']}-10, N = {p['n_train']} digits ({p['data_source']}), "
        f"l2 = {p['l2']:g}; Langevin (Eq. 14) at T = 1 with ε = {p['lr']:.3g} "
        f"(ε λ_max / N = {STEP_RATIO}), {p['chains']} chains from each start, "
        f"{p['steps']} steps, every {p['thin']}th kept; test error on {p['n_test']} digits.",
        "",
        "| minimum | C(θ) | Occam term | ln Z (± SLQ s.e.) | test error |",
        "|---|---|---|---|---|",
    ]
    for k in ("A", "B"):
        r = m[k]
        lines.append(
            f"| {k} | {r['cost']:.1f} | {r['occam']:.1f} | {r['log_evidence']:.1f} ± "
            f"{r['log_evidence_se']:.1f} | {r['test_error']:.4f} |"
        )
    lines += [
        "",
        f"Predicted share of posterior mass in A's bowl: {predicted_share(m):.3g}; "
        f"|θ_A − θ_B| = {m['separation']:.2f}. Split R-hat of the cost over all chains: "
        f"{p['rhat_cost']:.3f}; a Gaussian posterior around a minimum would put the cost "
        f"about P/2 = {p['n_params'] / 2:.0f} above the minimum's.",
        "",
        "| claim | measured | interval | verdict | note |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {v['claim']} | {v['measured']} | {v['interval']} | **{v['verdict']}** | {v['note']} |"
        for v in vs
    ]
    lines += ["", "![langevin_chains](langevin_chains.png)"]
    summary = {
        "verdicts": vs,
        "minima": m,
        "parameters": p,
        "predicted_share_A": predicted_share(m),
    }
    return summary, "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a small network, short chains")
    parser.add_argument(
        "--out", type=Path, default=Path("results") / NAME, help="output folder (%(default)s)"
    )
    parser.add_argument("--seed", type=C.nonnegative_int, default=0, help="seed of the chains")
    parser.add_argument(
        "--backend", type=C.backend_name, default="auto", help="kernels: auto, numpy, numba or cpp"
    )
    parser.add_argument(
        "--hidden", type=C.positive_int, default=None, help="hidden units (8 quick, 32)"
    )
    parser.add_argument(
        "--steps", type=C.positive_int, default=None, help="Langevin steps per chain"
    )
    C.add_data_arguments(parser)


def main(args) -> int:

    start = time.perf_counter()
    df = run(
        quick=args.quick,
        seed=args.seed,
        backend=args.backend,
        **C.data_kwargs(args),
        hidden=args.hidden,
        steps=args.steps,
    )
    return C.finish_in_process(sys.modules[__name__], args, df, start)
