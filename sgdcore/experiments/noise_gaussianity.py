"""noise-gaussianity: is the mini-batch gradient noise Gaussian? (paper Appendix C, Fig. 9).

The paper's SDE (Section 3, Eqs. 10-12) models the mini-batch gradient error as
Gaussian by the central limit theorem. Appendix C checks this on the shallow network of
Sections 4-5 just after initialisation, for one randomly chosen weight of the softmax
output layer: over single examples (Fig. 9a) its gradient is double-peaked and clearly
not Gaussian; averaged over mini-batches of 30 (Fig. 9b) it has a single peak, slightly
skewed but close to Gaussian. The paper warns that heavy tails could break the argument.

This experiment measures that, at initialisation and at checkpoints along SGD training
(B = 30), for the per-example gradients ``g_i`` projected on three kinds of direction:

* ``element``: one output-layer weight ``W2[c, h]`` (a unit vector; Fig. 9's choice);
* ``random``: unit vectors drawn uniformly on the sphere of all ``P`` parameters;
* ``eigen``: the top eigenvectors of the gradient covariance ``F``
  (:meth:`sgdcore.GradientNoiseResult.top_eigenvalues` with ``return_vectors``), the
  directions where the noise is largest.

The projections ``g_i . u`` come from :func:`sgdcore.per_example_projections`, which
forms per-example gradients a block at a time (no ``N x P`` array: ``--n-train 60000``
works with full MNIST). For B = 1 the sample is the ``N`` per-example values; for B = 4,
30, 128 it is the means of random mini-batches drawn as SGD draws them (uniformly,
without replacement). Per sample: skewness and excess kurtosis with bootstrap intervals,
the Kolmogorov-Smirnov distance to the Gaussian of the same mean and variance and its
Lilliefors critical value (:mod:`sgdcore.gaussianity`), and the central limit theorem's
prediction from the B = 1 moments for i.i.d. draws (skewness ``/ sqrt(B)``, kurtosis
``/ B``; drawing without replacement lowers both a little further when B is not small
against N).

Defaults (ε = 0.1 for the reason in :mod:`sgdcore.experiments._common`):

=============  ===========================  ===========================
               full                         ``--quick``
=============  ===========================  ===========================
network        784-800-10                   784-128-10
N              1,000                        1,000
checkpoints    0, 100, 1,000, 5,000 steps   0, 300 steps
training       B = 30, ε = 0.1, m = 0.9     B = 30, ε = 0.1, m = 0.9
directions     1 element, 4 random, 3 top   1 element, 2 random, 2 top
mini-batches   20,000 per B                 4,000 per B
bootstrap      1,000 resamples              200 resamples
CPU time       about 15 min (estimated)     35 s (measured)
=============  ===========================  ===========================

``--seeds S`` repeats the measurement for S initialisations (seeds 0 to S - 1, each with
its own element and random directions); the table holds them all, the figures and
verdicts show seed 0. Run it as ``sgdcore run noise-gaussianity [--quick] [--out DIR]``.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from .. import gaussianity as gs
from . import _common as C

NAME = "noise-gaussianity"
BATCHES = (1, 4, 30, 128)
FULL = {
    "hidden": 800,
    "lr": 0.1,
    "momentum": 0.9,
    "train_batch": 30,
    "checkpoints": (0, 100, 1000, 5000),
    "n_random": 4,
    "n_eigen": 3,
    "n_batches": 20_000,
    "n_boot": 1000,
    "seeds": 1,
}
QUICK = {
    "hidden": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "train_batch": 30,
    "checkpoints": (0, 300),
    "n_random": 2,
    "n_eigen": 2,
    "n_batches": 4000,
    "n_boot": 200,
    "seeds": 1,
}
FIGURES = ("fig9_histograms", "fig9c_moments_vs_batch")
#: "Close to Gaussian" in the verdicts: KS distance below this, and |skewness| and
#: |excess kurtosis| intervals inside these bounds.
CLOSE_KS, CLOSE_SKEW, CLOSE_KURT = 0.05, 0.5, 1.0


def _data(table):
    from ..sweep import load_data

    return load_data(table, "float64")


def _thetas(model, train, test, p, seed, backend):
    """Parameters at each checkpoint: the initialisation, then SGD (float32 engine)."""
    from ..training import train as sgd

    out = {}
    for step in p["checkpoints"]:
        if step == 0:
            out[0] = (model.init(seed), np.nan)
            continue
        df, th = sgd(
            model,
            (train.X, train.y),
            (test.X, test.y),
            batch_size=p["train_batch"],
            lr=p["lr"],
            momentum=p["momentum"],
            steps=int(step),
            seeds=[seed],
            eval_steps=[int(step)],
            backend=backend,
            return_params=True,
        )
        out[int(step)] = (th[0].astype(np.float64), float(df["test_accuracy"].iloc[-1]))
    return out


def _directions(model, theta, X, y, p, seed, backend):
    """The directions as columns [P, d] and their labels (kind, index, eigenvalue)."""
    from ..grads import gradient_noise

    P = model.n_params
    rng = np.random.default_rng(seed)
    w2 = model.offsets()["W2"]
    # a unit active on some example at initialisation (a dead unit's weights have zero
    # gradient on every example)
    init = model.unflatten(model.init(seed))
    active = np.flatnonzero(np.any(X @ init["W1"].T + init["b1"] > 0, axis=0))
    c, h = int(rng.integers(model.n_outputs)), int(rng.choice(active))
    e = np.zeros(P)
    e[w2.start + c * model.n_hidden + h] = 1.0
    R = rng.standard_normal((P, p["n_random"]))
    R /= np.linalg.norm(R, axis=0)
    noise = gradient_noise(model, theta, X, y, backend=backend)
    ev, U = noise.top_eigenvalues(p["n_eigen"], return_vectors=True)
    V = np.column_stack([e, R, U])
    labels = [("element", f"W2[{c},{h}]", np.nan)]
    labels += [("random", f"random {j}", np.nan) for j in range(p["n_random"])]
    labels += [("eigen", f"eigenvector {j + 1}", float(ev[j])) for j in range(p["n_eigen"])]
    return V, labels, noise


def run(
    quick: bool = False,
    out=None,
    *,
    backend: str = "auto",
    seeds=None,
    hidden=None,
    n_train=None,
    checkpoints=None,
    executor: str = "local",
    scheduler=None,
    data=None,
    data_split=None,
    download: bool = False,
    offline_ok: bool = False,
    keep_samples: bool = True,
) -> pd.DataFrame:
    """Measure the gradient noise's departure from a Gaussian.

    ``data``, ``data_split``, ``download`` and ``offline_ok`` choose the data as for
    every experiment (see :func:`sgdcore.data.load_pools`).

    Returns
    -------
    pandas.DataFrame
        One row per (seed, checkpoint ``step``, direction, batch size ``B``):
        ``kind, direction, eigenvalue, n, mean, sd, skew, skew_lo, skew_hi, kurt,
        kurt_lo, kurt_hi, ks, ks_critical, gaussian_rejected, clt_skew, clt_kurt,
        test_accuracy``; 90% bootstrap intervals. ``df.attrs["samples"]`` keeps the
        element direction's samples per (step, B) for the histograms (seed 0).
    """
    from ..models import MLP
    from ..results import environment
    from ..sweep.inputs import n_classes_of

    if executor != "local":
        raise ValueError(f"{NAME} runs in-process only (executor 'local'), got {executor!r}")
    del out, scheduler  # nothing is stored between runs: the experiment is short
    p = C.parameters(QUICK if quick else FULL, hidden=hidden, seeds=seeds, checkpoints=checkpoints)
    n = C.DATA["n_train"] if n_train is None else int(n_train)
    train, test = _data(C.data_table(data, data_split, download, offline_ok, n_train=n))
    X, y = np.ascontiguousarray(train.X), np.ascontiguousarray(train.y, dtype=np.int64)
    model = MLP(X.shape[1], int(p["hidden"]), n_classes_of(train, test))
    rows, samples = [], {}
    for seed in range(int(p["seeds"])):
        for step, (theta, acc) in _thetas(model, train, test, p, seed, backend).items():
            V, labels, noise = _directions(model, theta, X, y, p, seed, backend)
            S = _projections(model, theta, X, y, V, backend)
            for B in BATCHES:
                if B > n:
                    continue
                vals = S if B == 1 else gs.minibatch_means(S, B, p["n_batches"], seed=B + seed)
                for j, (kind, name, ev) in enumerate(labels):
                    d = gs.describe(vals[:, j], n_boot=p["n_boot"], seed=seed + 7 * j)
                    if B == 1:
                        clt = (d["skew"], d["kurt"])
                    else:
                        base = next(
                            r
                            for r in rows
                            if r["seed"] == seed
                            and r["step"] == step
                            and r["B"] == 1
                            and r["direction"] == name
                        )
                        clt = gs.iid_mean_moments(base["skew"], base["kurt"], B)
                    rows.append(
                        {
                            "seed": seed,
                            "step": int(step),
                            "kind": kind,
                            "direction": name,
                            "eigenvalue": ev,
                            "B": B,
                            **d,
                            "clt_skew": clt[0],
                            "clt_kurt": clt[1],
                            "test_accuracy": acc,
                            "trace_cov": noise.trace_cov,
                        }
                    )
                    if keep_samples and seed == 0 and kind == "element":
                        samples[(int(step), B)] = vals[:, j].copy()
    df = pd.DataFrame(rows)
    env = environment(backend, train)
    df.attrs["manifest"] = {
        "environment": env,
        "data": {"train": env.pop("data"), "test": environment(None, test)["data"]},
        "spec": {
            "model": {"kind": "mlp", "hidden": int(p["hidden"])},
            "n_train": n,
            "batches": list(BATCHES),
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()},
        },
    }
    df.attrs["samples"] = samples
    return df


def _projections(model, theta, X, y, V, backend):
    from ..grads import per_example_projections

    return per_example_projections(model, theta, X, y, V, backend=backend)


# ------------------------------------------------------------------------- analysis


def _row(df, step, kind, B, seed=0):
    sub = df[(df["seed"] == seed) & (df["step"] == step) & (df["kind"] == kind) & (df["B"] == B)]
    return sub


def _fmt_iv(lo, hi) -> str:
    return f"[{lo:.2f}, {hi:.2f}]"


def verdicts(df: pd.DataFrame) -> list[dict]:
    """The paper's Appendix C claims checked against the table (seed 0)."""
    out = []
    first, last = int(df["step"].min()), int(df["step"].max())
    e1 = _row(df, first, "element", 1).iloc[0]
    out.append(
        {
            "claim": "Appendix C, Fig. 9a: at initialisation the per-example gradient of one "
            "output-layer weight is clearly not Gaussian",
            "measured": f"{e1['direction']}: KS distance {e1['ks']:.3f} (Lilliefors 5% critical "
            f"{e1['ks_critical']:.3f}), skewness {e1['skew']:.2f}, excess kurtosis "
            f"{e1['kurt']:.2f}",
            "interval": f"skewness {_fmt_iv(e1['skew_lo'], e1['skew_hi'])}, kurtosis "
            f"{_fmt_iv(e1['kurt_lo'], e1['kurt_hi'])} (90% bootstrap)",
            "verdict": "agrees" if e1["gaussian_rejected"] else "disagrees",
            "note": f"N = {int(e1['n'])} examples; Gaussian rejected at 5% "
            f"{'yes' if e1['gaussian_rejected'] else 'no'}",
        }
    )
    if (df["B"] == 30).any():
        e30 = _row(df, first, "element", 30).iloc[0]
        close = _close(e30)
        verdict = "agrees" if close else ("disagrees" if e30["ks"] >= e1["ks"] else "inconclusive")
        out.append(
            {
                "claim": "Appendix C, Fig. 9b: averaged over mini-batches of 30 the same "
                "gradient element is close to Gaussian (one peak, slightly skewed)",
                "measured": f"KS distance {e30['ks']:.3f} (from {e1['ks']:.3f} at B = 1), "
                f"skewness {e30['skew']:.2f}, excess kurtosis {e30['kurt']:.2f} (CLT "
                f"prediction {e30['clt_skew']:.2f}, {e30['clt_kurt']:.2f})",
                "interval": f"skewness {_fmt_iv(e30['skew_lo'], e30['skew_hi'])}, kurtosis "
                f"{_fmt_iv(e30['kurt_lo'], e30['kurt_hi'])}",
                "verdict": verdict,
                "note": f"close = KS < {CLOSE_KS}, |skewness| < {CLOSE_SKEW}, |excess "
                f"kurtosis| < {CLOSE_KURT} over the whole interval; {int(e30['n'])} "
                "mini-batches (Lilliefors rejects at 5%: "
                f"{'yes' if e30['gaussian_rejected'] else 'no'})",
            }
        )
        b30 = df[(df["seed"] == 0) & (df["B"] == 30)]
        trained = b30[b30["step"] == last]
        n_close = int(sum(_close(r) for _, r in trained.iterrows()))
        worst = trained.loc[trained["ks"].idxmax()]
        if n_close == len(trained):
            verdict = "agrees"
        elif (trained["ks"] > 2 * CLOSE_KS).any():
            verdict = "disagrees"
        else:
            verdict = "inconclusive"
        out.append(
            {
                "claim": "Appendix C / Section 3: the Gaussian model of the mini-batch noise "
                "is reasonable at common batch sizes (B = 30), also during training",
                "measured": f"after {last} steps, {n_close} of {len(trained)} directions close "
                f"to Gaussian at B = 30; largest KS distance {worst['ks']:.3f} "
                f"({worst['direction']}, excess kurtosis {worst['kurt']:.2f}, per-example "
                f"{_b1(df, worst)['kurt']:.2f})",
                "interval": f"kurtosis {_fmt_iv(worst['kurt_lo'], worst['kurt_hi'])}",
                "verdict": verdict,
                "note": "disagrees when a direction's KS distance exceeds "
                f"{2 * CLOSE_KS}; heavy tails of the per-example gradients (the paper's caveat) "
                "show as large per-example kurtosis",
            }
        )
    clt = df[(df["seed"] == 0) & (df["B"] > 1)]
    inside = (clt["clt_kurt"] >= clt["kurt_lo"] - 0.05) & (clt["clt_kurt"] <= clt["kurt_hi"] + 0.05)
    frac = float(inside.mean())
    out.append(
        {
            "claim": "Section 3 (Eq. 10), the central-limit argument: the mini-batch mean's "
            "excess kurtosis falls like 1/B",
            "measured": f"i.i.d. prediction (per-example kurtosis / B) inside the measured 90% "
            f"interval (± 0.05) for {int(inside.sum())} of {len(clt)} (direction, B, step) cells",
            "interval": "",
            "verdict": "agrees"
            if frac >= 0.8
            else ("inconclusive" if frac >= 0.5 else "disagrees"),
            "note": "mini-batches drawn without replacement, as SGD draws them; the i.i.d. "
            "formula ignores the finite-population correction",
        }
    )
    return out


def _close(r) -> bool:
    return bool(
        r["ks"] < CLOSE_KS
        and max(abs(r["skew_lo"]), abs(r["skew_hi"])) < CLOSE_SKEW
        and max(abs(r["kurt_lo"]), abs(r["kurt_hi"])) < CLOSE_KURT
    )


def _b1(df, r):
    return df[
        (df["seed"] == r["seed"])
        & (df["step"] == r["step"])
        & (df["direction"] == r["direction"])
        & (df["B"] == 1)
    ].iloc[0]


# ---------------------------------------------------------------------------- plots


def plot(df: pd.DataFrame) -> dict:
    """Fig. 9: histograms of the element direction per (checkpoint, B) with the Gaussian
    of the same mean and variance; and skewness, excess kurtosis and KS distance against
    B for every direction, with the central limit theorem's i.i.d. prediction.
    """
    from scipy.stats import norm

    plt = C.setup_matplotlib()
    samples = df.attrs.get("samples", {})
    steps = sorted(df["step"].unique())
    bs = sorted(df["B"].unique())
    fig, axes = plt.subplots(
        len(steps), len(bs), figsize=(3.0 * len(bs), 2.5 * len(steps)), squeeze=False
    )
    for i, step in enumerate(steps):
        for j, B in enumerate(bs):
            ax = axes[i, j]
            x = samples.get((int(step), int(B)))
            r = _row(df, step, "element", B).iloc[0]
            if x is not None and r["sd"] > 0:
                ax.hist(x, bins=60, density=True, color="#1f77b4", alpha=0.6)
                grid = np.linspace(x.min(), x.max(), 300)
                ax.plot(grid, norm.pdf(grid, r["mean"], r["sd"]), color="#d62728", lw=1.4)
            elif x is not None:
                ax.text(0.5, 0.5, "constant (dead unit)", ha="center", transform=ax.transAxes)
            ax.set_title(
                f"step {step}, B = {B}\nskew {r['skew']:.2f}, kurt {r['kurt']:.2f}, "
                f"KS {r['ks']:.3f}",
                fontsize=8,
            )
            ax.tick_params(labelsize=7)
            ax.set_yticks([])
        axes[i, 0].set_ylabel(f"step {step}")
    fig.suptitle(
        f"gradient of output weight {df[df['kind'] == 'element']['direction'].iloc[0]}"
        " (red: Gaussian of the same mean and variance)",
        fontsize=10,
    )
    fig.tight_layout()

    kinds = {"element": "#d62728", "random": "#2ca02c", "eigen": "#1f77b4"}
    fig2, axes2 = plt.subplots(3, len(steps), figsize=(4.2 * len(steps), 9.0), squeeze=False)
    sub0 = df[df["seed"] == 0]
    for c, step in enumerate(steps):
        s = sub0[sub0["step"] == step]
        for _, g in s.groupby("direction", sort=False):
            g = g.sort_values("B")
            col = kinds[g["kind"].iloc[0]]
            for r, (stat, lo, hi, pred) in enumerate(
                (
                    ("skew", "skew_lo", "skew_hi", "clt_skew"),
                    ("kurt", "kurt_lo", "kurt_hi", "clt_kurt"),
                    ("ks", None, None, None),
                )
            ):
                ax = axes2[r, c]
                if lo is None:
                    ax.plot(g["B"], g[stat], "o-", color=col, ms=3, lw=1)
                else:
                    ax.errorbar(
                        g["B"],
                        g[stat],
                        yerr=[g[stat] - g[lo], g[hi] - g[stat]],
                        fmt="o-",
                        color=col,
                        ms=3,
                        lw=1,
                        capsize=2,
                    )
                    ax.plot(g["B"], g[pred], ls="--", color=col, lw=0.8)
        axes2[2, c].plot(s.groupby("B")["ks_critical"].max(), color="0.4", ls=":", lw=1)
        for r, label in enumerate(("skewness", "excess kurtosis", "KS distance")):
            ax = axes2[r, c]
            ax.set_xscale("log", base=2)
            ax.set_xticks(bs)
            ax.set_xticklabels([str(b) for b in bs])
            ax.minorticks_off()
            ax.set_ylabel(label)
            if r < 2:
                ax.axhline(0.0, color="0.5", lw=0.8)
                ax.set_yscale("symlog", linthresh=0.1)
            else:
                ax.set_yscale("log")
                ax.set_xlabel("batch size B")
        axes2[0, c].set_title(f"step {step}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=v, marker="o", label=k) for k, v in kinds.items()]
    handles += [
        Line2D([], [], color="0.3", ls="--", label="CLT (i.i.d.) prediction"),
        Line2D([], [], color="0.4", ls=":", label="Lilliefors 5% critical"),
    ]
    axes2[2, -1].legend(handles=handles, loc="lower left")
    fig2.tight_layout()
    return {FIGURES[0]: fig, FIGURES[1]: fig2}


def _table_md(df) -> str:
    lines = [
        "| step | direction | B | skewness [90%] | excess kurtosis [90%] | CLT kurtosis | "
        "KS (5% critical) |",
        "|---|---|---|---|---|---|---|",
    ]
    sub = df[(df["seed"] == 0) & df["kind"].isin(["element", "eigen"])]
    sub = sub[(sub["kind"] == "element") | (sub["direction"] == "eigenvector 1")]
    for _, r in sub.iterrows():
        lines.append(
            f"| {r['step']} | {r['direction']} | {r['B']} | {r['skew']:.2f} "
            f"{_fmt_iv(r['skew_lo'], r['skew_hi'])} | {r['kurt']:.2f} "
            f"{_fmt_iv(r['kurt_lo'], r['kurt_hi'])} | {r['clt_kurt']:.2f} | "
            f"{r['ks']:.3f} ({r['ks_critical']:.3f}) |"
        )
    return "\n".join(lines)


def summarize(df: pd.DataFrame) -> tuple[dict, str]:
    spec = df.attrs.get("manifest", {}).get("spec", {})
    v = verdicts(df)
    md = "\n".join(
        [
            "## Is the gradient noise Gaussian? (Appendix C, Fig. 9)",
            "",
            f"Network 784-{spec.get('model', {}).get('hidden')}-10, N = {spec.get('n_train')}; "
            f"checkpoints {', '.join(str(s) for s in sorted(df['step'].unique()))} of SGD with "
            f"B = {spec.get('train_batch')}, ε = {spec.get('lr')}, m = {spec.get('momentum')}; "
            f"{spec.get('n_batches')} random mini-batches per B; 90% bootstrap intervals "
            f"({spec.get('n_boot')} resamples). {C.data_note(df)}",
            "",
            _table_md(df),
            "",
            *(f"- **{x['verdict']}**: {x['claim']}. Measured: {x['measured']}." for x in v),
            "",
            *(f"![{k}]({k}.png)" for k in FIGURES),
        ]
    )
    cols = [c for c in df.columns if c != "gaussian_rejected"]
    summary = {
        "verdicts": v,
        "rows": df[cols].to_dict(orient="records"),
    }
    return summary, md


def add_arguments(parser) -> None:
    C.add_common_arguments(parser, NAME)
    parser.add_argument(
        "--n-train", type=C.positive_int, default=None, help="training examples N (default 1000)"
    )
    parser.add_argument(
        "--checkpoints",
        type=int,
        nargs="+",
        default=None,
        help="SGD steps at which to measure (0 = initialisation)",
    )


def main(args) -> int:
    if args.n_train is not None and args.n_train < 2:
        raise SystemExit(f"--n-train must be >= 2, got {args.n_train}")
    if args.checkpoints is not None and min(args.checkpoints) < 0:
        raise SystemExit("--checkpoints must be >= 0")
    return C.experiment_main(
        sys.modules[__name__],
        args,
        n_train=args.n_train,
        checkpoints=None if args.checkpoints is None else tuple(sorted(set(args.checkpoints))),
    )
