"""``sgdcore reproduce``: run every paper experiment and write one Markdown report.

Each experiment module of :mod:`sgdcore.experiments` is run through its own command-line
protocol (``add_arguments(parser)`` then ``main(args)``) with ``--out <out>/<NAME>`` and,
when asked, ``--quick``; so the report runs exactly what ``sgdcore run NAME`` runs. The
report (``<out>/REPORT.md``) opens with the environment and a table of each scaling
rule's measured slope against the paper's prediction (1), after a one-page verdict
table (every experiment's ``verdicts`` in its ``summary.json``: claim, measured,
interval, agrees / disagrees / inconclusive, note), then gives every experiment's
section with its figures. An experiment that fails is reported as failed, with its error,
and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .experiments import available

__all__ = [
    "CHOICES",
    "ORDER",
    "SCALING_RULES",
    "VERDICTS",
    "ExperimentResult",
    "collect_verdicts",
    "reproduce",
    "write_report",
]

#: The paper's order; experiments found but not listed here run after these.
ORDER = (
    "random-labels",
    "training-curves",
    "batch-size",
    "lr-scaling",
    "n-scaling",
    "momentum-scaling",
    "langevin",
    "momentum-noise",
    "regularized",
    "noise-gaussianity",
)
#: How our settings differ from the paper's, and why (each experiment's docstring has
#: its full table).
CHOICES = (
    "Settings that differ from the paper (Smith & Le §4–5: 784-800-10, N = 1,000, "
    "m = 0.9, ε = 1, 10,000 steps): ε = **0.1** instead of the recalled ε = 1, which "
    "with sgdcore's He-normal initialisation and mean-gradient update (effective step "
    "ε/(1−m) = 10) stops the network training at every batch size below a few hundred; "
    "`--quick` uses a **784-128-10** network and shorter runs (the full settings use "
    "784-800-10); the scaling experiments start each setting from the batch sizes whose "
    "noise scale g = ε/(1−m)(N/B − 1) lies in a fixed band, then extend and refine them "
    "until each optimum is bracketed (within a budget of runs); `momentum-scaling` gives "
    "each m the same SDE time ε·steps/(1−m) (steps ∝ 1−m) rather than the same number of "
    "steps; `n-scaling` runs at m = 0.5, where the small-batch edge of stable training "
    "does not pin the optimum. Each section states its exact settings."
)
#: Experiment NAME -> (rule as written in the paper, regressor).
SCALING_RULES = {
    "lr-scaling": ("B_opt ∝ ε", "ε"),
    "n-scaling": ("B_opt ∝ N", "N"),
    "momentum-scaling": ("B_opt ∝ 1/(1−m)", "1/(1−m)"),
}


@dataclass
class ExperimentResult:
    """What one experiment left in its folder."""

    name: str
    folder: Path
    seconds: float
    ok: bool
    error: str = ""
    output: str = ""
    summary: dict = field(default_factory=dict)
    markdown: str = ""
    figures: list = field(default_factory=list)


class _Tee(io.TextIOBase):
    """Write to two streams (the console and a capture)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def _argv(parser: argparse.ArgumentParser, out: Path, quick: bool, backend, data) -> list:
    known = parser._option_string_actions  # the options this experiment defines
    argv = ["--out", str(out)]
    if quick:
        argv.append("--quick")
    if backend is not None and "--backend" in known:
        argv += ["--backend", backend]
    for key, value in (data or {}).items():
        flag = "--" + key.replace("_", "-")
        if flag in known and value not in (None, False):
            argv += [flag] if value is True else [flag, str(value)]
    return argv


def run_experiment(module, out: Path, *, quick: bool, backend=None, data=None):
    """Run one experiment module by its command-line protocol; never raises.

    ``data`` holds the data options (``data``, ``data_split``, ``download``,
    ``offline_ok``), passed on as ``--data`` and so on.
    """
    parser = argparse.ArgumentParser(prog=f"sgdcore run {module.NAME}")
    module.add_arguments(parser)
    args = parser.parse_args(_argv(parser, out, quick, backend, data))
    captured = io.StringIO()
    start = time.perf_counter()
    ok, error = True, ""
    try:
        with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
            code = module.main(args)
        if code not in (0, None):
            ok, error = False, f"main returned {code}"
    except (Exception, SystemExit) as exc:  # report it and go on with the other experiments
        ok, error = False, "".join(traceback.format_exception_only(type(exc), exc)).strip()
        traceback.print_exc()
    seconds = time.perf_counter() - start
    res = ExperimentResult(module.NAME, out, seconds, ok, error, captured.getvalue())
    if (out / "summary.json").is_file():
        try:
            res.summary = json.loads((out / "summary.json").read_text())
        except ValueError:
            pass
    if (out / "summary.md").is_file():
        res.markdown = (out / "summary.md").read_text()
    res.figures = sorted(p.name for p in out.glob("*.png")) if out.is_dir() else []
    return res


def reproduce(
    out="results",
    *,
    quick: bool = False,
    backend: str | None = None,
    only=None,
    download: bool = False,
    data: str | None = None,
    data_split: str | None = None,
    offline_ok: bool = False,
) -> tuple[Path, list[ExperimentResult]]:
    """Run every experiment (or those in ``only``) and write ``<out>/REPORT.md``.

    Parameters
    ----------
    out : path
        The report's folder; each experiment writes into ``<out>/<NAME>``.
    quick : bool
        Pass ``--quick`` to every experiment.
    backend : str, optional
        Pass ``--backend`` to the experiments that take it.
    only : list of str, optional
        Names of the experiments to run (default: all found).
    download : bool
        Let the experiments download MNIST if no copy is found (default: offline).
    data, data_split, offline_ok
        The data options every experiment takes (``--data``, ``--data-split``,
        ``--offline-ok``); see :func:`sgdcore.data.load_pools`.

    Returns
    -------
    report : pathlib.Path
        The report.
    results : list of ExperimentResult
        One per experiment run, in the report's order (``ok`` False for a failure).

    Raises
    ------
    ValueError
        If ``only`` names an experiment that does not exist.
    """
    found = available()
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    if only:
        unknown = sorted(set(only) - set(found))
        if unknown:
            raise ValueError(
                f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(names)}"
            )
        names = [n for n in names if n in only]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = {
        "data": data,
        "data_split": data_split,
        "download": download,
        "offline_ok": offline_ok,
    }
    results = []
    start = time.perf_counter()
    for name in names:
        print(f"== {name} ==", flush=True)
        results.append(
            run_experiment(found[name], out / name, quick=quick, backend=backend, data=options)
        )
    path = write_report(out, results, quick=quick, seconds=time.perf_counter() - start)
    return path, results


def _slope_rows(results) -> list[str]:
    rows = [
        "| experiment | rule | measured slope | 90% interval | predicted | B_opt at each point |"
        " note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.name not in SCALING_RULES:
            continue
        rule, _ = SCALING_RULES[r.name]
        fit = r.summary.get("fit")
        col = r.summary.get("column")
        pts = ", ".join(
            f"{b[col]:g}: {b.get('label', '?')}" for b in r.summary.get("b_opt", []) if col in b
        )
        bounds = [b[col] for b in r.summary.get("b_opt", []) if b.get("status") != "bracketed"]
        note = (
            f"bounds left out of the slope at {', '.join(f'{v:g}' for v in bounds)}"
            if bounds
            else ""
        )
        if not r.ok:
            rows.append(f"| {r.name} | {rule} | failed | | 1 | | |")
            continue
        if not fit:
            rows.append(
                f"| {r.name} | {rule} | none (< 2 bracketed optima) | n/a | 1 | {pts} | {note} |"
            )
            continue
        lo, hi = fit.get("slope_lo"), fit.get("slope_hi")
        interval = f"[{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "n/a"
        rows.append(
            f"| {r.name} | {rule} | **{fit['slope']:.2f}** | {interval} | "
            f"{fit.get('predicted', 1.0):g} | {pts} | {note} |"
        )
    return rows if len(rows) > 2 else []


#: The values a verdict may take.
VERDICTS = ("agrees", "disagrees", "inconclusive")


def collect_verdicts(results) -> list[dict]:
    """Every experiment's ``verdicts`` (from its ``summary.json``), in the report's
    order, each with ``experiment`` added; a malformed entry becomes an
    ``inconclusive`` row that says what is wrong with it.
    """
    out = []
    for r in results:
        if not r.ok:
            continue
        entries = r.summary.get("verdicts") or []
        if not isinstance(entries, list):
            entries = [entries]
        for v in entries:
            if not isinstance(v, dict) or v.get("verdict") not in VERDICTS or not v.get("claim"):
                v = {"claim": str(v.get("claim", "?") if isinstance(v, dict) else v),
                     "measured": "", "interval": "", "verdict": "inconclusive",
                     "note": "malformed verdict in summary.json"}  # fmt: skip
            out.append({"experiment": r.name, **{k: str(v.get(k, "")) for k in
                        ("claim", "measured", "interval", "verdict", "note")}})  # fmt: skip
    return out


def _verdict_rows(results) -> list[str]:
    rows = [
        "| claim (paper) | experiment | measured | interval | verdict | note |",
        "|---|---|---|---|---|---|",
    ]
    for v in collect_verdicts(results):
        cells = [v["claim"], v["experiment"], v["measured"], v["interval"],
                 f"**{v['verdict']}**", v["note"]]  # fmt: skip
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return rows if len(rows) > 2 else []


_IMG = re.compile(r"!\[([^\]]*)\]\((?!https?:|/)([^)]+)\)")


def _section(r: ExperimentResult, root: Path) -> list[str]:
    rel = r.folder.relative_to(root) if r.folder.is_relative_to(root) else r.folder
    lines = []
    if not r.ok:
        lines += [f"## {r.name}: FAILED", "", "```", r.error, "```", ""]
        return lines
    if r.markdown:
        md = _IMG.sub(lambda m: f"![{m.group(1)}]({rel.as_posix()}/{m.group(2)})", r.markdown)
        lines += [md.rstrip(), ""]
        linked = set(_IMG.findall(r.markdown))
        extra = [f for f in r.figures if f not in {p for _, p in linked}]
    else:
        lines += [f"## {r.name}", ""]
        if r.output.strip():
            lines += ["```", r.output.strip(), "```", ""]
        extra = r.figures
    lines += [f"![{f}]({rel.as_posix()}/{f})" for f in extra]
    lines += ["", f"*Ran in {r.seconds:.0f} s; outputs in `{rel.as_posix()}/`.*", ""]
    return lines


def _data_line(results) -> str:
    """What data the experiments used, as their table manifests record it (one line per
    distinct data set, normally one).
    """
    from .data import describe

    seen = {}
    for r in results:
        for mf in sorted(r.folder.glob("*.manifest.json")) if r.ok else []:
            try:
                d = json.loads(mf.read_text())["data"]
                train = d.get("train", d)  # sweep tables: {train, test}; others: the pool
                seen.setdefault(train["sha256"], describe(train))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return " ".join(f"Data: {what} (sha256 {sha})." for sha, what in seen.items())


def write_report(out, results, *, quick: bool, seconds: float | None = None) -> Path:
    """Write ``<out>/REPORT.md`` from the experiments' results (atomically)."""
    from . import __version__
    from .results import atomic_write

    out = Path(out)
    data_line = _data_line(results)
    lines = [
        "# Smith & Le (2018), reproduced with sgdcore",
        "",
        f"sgdcore {__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}; {'`--quick` settings' if quick else 'full settings'}; "
        f"generated {time.strftime('%Y-%m-%d %H:%M')}"
        + (f" in {seconds / 60:.1f} min." if seconds is not None else "."),
    ]
    if data_line:
        lines += ["", data_line]
    lines += ["", CHOICES]
    failed = [r.name for r in results if not r.ok]
    if failed:
        lines += ["", f"**Failed:** {', '.join(failed)} (see their sections)."]
    verdicts = _verdict_rows(results)
    if verdicts:
        lines += [
            "",
            "## Verdicts: the paper's claims against these runs",
            "",
            "Each experiment's claims, what it measured (with its 90% interval where one "
            "exists) and whether that agrees with the paper, disagrees, or cannot tell "
            "(inconclusive: an interval too wide, or an optimum that is only a bound).",
            "",
            *verdicts,
        ]
    slope = _slope_rows(results)
    if slope:
        lines += [
            "",
            "## Scaling rules: measured against predicted",
            "",
            "Weighted least-squares slope of log B_opt against the log of the scaled "
            "quantity through the bracketed optima, each weighted by its total error (seed "
            "noise, fit, grid resolution), with its 90% interval; optima that are only "
            "bounds are left out. The paper predicts slope 1 for each rule.",
            "",
            *slope,
        ]
    lines += ["", "## Experiments", ""]
    lines += [
        f"- [{r.name}](#{r.name}) — {'ok' if r.ok else 'FAILED'}, {r.seconds:.0f} s"
        for r in results
    ]
    lines.append("")
    for r in results:
        lines += ["---", "", f'<a id="{r.name}"></a>', ""]
        lines += _section(r, out)
    text = "\n".join(lines).rstrip() + "\n"
    path = out / "REPORT.md"
    atomic_write(path, lambda p: p.write_text(text))
    return path
