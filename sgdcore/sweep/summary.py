"""What ``sgdcore show`` prints: a result store's progress, groups and finished runs.

:func:`summarize` reads a store (finished groups only, through
:func:`~sgdcore.sweep.load`) into three tables; :func:`format_summary` lays them out
as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .spec import RUN_KEYS
from .store import ResultStore, load

__all__ = ["StoreSummary", "format_summary", "summarize"]

#: The last evaluation's columns that the table of runs shows.
FINAL_COLUMNS = ("test_accuracy", "test_cross_entropy", "train_cross_entropy", "diverged")


@dataclass
class StoreSummary:
    """A result store at a glance.

    Attributes
    ----------
    path : str
        The store.
    name : str
        The spec's name.
    table : pandas.DataFrame
        Every finished run's rows (what :func:`~sgdcore.sweep.load` returns).
    runs : pandas.DataFrame
        One row per finished run: ``run``, ``group``, the hyper-parameters of
        :data:`~sgdcore.sweep.RUN_KEYS` and the last evaluation's
        test accuracy, test and train cross-entropy and ``diverged``.
    groups : pandas.DataFrame
        One row per group of the sweep: ``group``, ``batch_size``, ``steps``,
        ``runs``, ``done``, and for finished groups the ``backend`` that ran it,
        its wall time ``seconds``, and the mean, min and max final test accuracy
        over its runs and the number of runs that diverged.
    groups_done, groups_total, runs_done, runs_total : int
        Progress of the sweep.
    """

    path: str
    name: str
    table: pd.DataFrame
    runs: pd.DataFrame
    groups: pd.DataFrame
    groups_done: int
    groups_total: int
    runs_done: int
    runs_total: int


def summarize(path) -> StoreSummary:
    """Read the store at ``path`` into a :class:`StoreSummary`.

    Raises
    ------
    StoreError
        If ``path`` is not a readable sweep result store.
    """
    table = load(path)
    manifest = table.attrs["manifest"]
    store = ResultStore(path, manifest)
    if len(table):
        last = table.sort_values(["run", "step"], kind="stable").groupby("run").tail(1)
        cols = ["run", "group", *RUN_KEYS[:-1], "total_steps", *FINAL_COLUMNS]
        runs = last[[c for c in cols if c in last]].rename(columns={"total_steps": "steps"})
        runs = runs.reset_index(drop=True)
    else:
        runs = pd.DataFrame(columns=["run", "group", *RUN_KEYS, *FINAL_COLUMNS])
    rows = []
    for g in manifest["groups"]:
        row = {
            "group": g["id"],
            "batch_size": g["batch_size"],
            "steps": g["steps"],
            "runs": g["size"],
        }
        mine = runs[runs["group"] == g["id"]]
        row["done"] = len(mine) > 0
        if row["done"]:
            info = store.group_info(g["id"])
            acc = mine["test_accuracy"]
            row.update(
                backend=info.get("backend"),
                seconds=info.get("seconds"),
                acc_mean=acc.mean(),
                acc_min=acc.min(),
                acc_max=acc.max(),
                diverged=int(mine["diverged"].sum()) if "diverged" in mine else 0,
            )
        rows.append(row)
    groups = pd.DataFrame(rows)
    done = groups[groups["done"]] if len(groups) else groups
    return StoreSummary(
        path=str(path),
        name=manifest.get("name", "sweep"),
        table=table,
        runs=runs,
        groups=groups,
        groups_done=len(done),
        groups_total=len(groups),
        runs_done=len(runs),
        runs_total=int(manifest.get("n_runs", groups["runs"].sum() if len(groups) else 0)),
    )


def format_summary(s: StoreSummary, max_runs: int | None = 50) -> str:
    """The text ``sgdcore show`` prints: progress, the groups, the finished runs
    (at most ``max_runs`` of them; None for all).
    """
    lines = [
        f"sweep {s.name!r} in {s.path}: {s.groups_done} of {s.groups_total} groups done "
        f"({s.runs_done} of {s.runs_total} runs)",
        "",
        "groups:",
    ]
    g = s.groups.copy()
    if len(g):
        g["done"] = g["done"].map({True: "yes", False: "no"})
        lines.append(_indent(g.to_string(index=False, na_rep="-", float_format=_fmt)))
    lines += ["", "finished runs:"]
    if not len(s.runs):
        lines.append("  (none yet)")
        return "\n".join(lines)
    runs = s.runs.drop(columns=["group"])
    shown = runs if max_runs is None else runs.head(max_runs)
    lines.append(_indent(shown.to_string(index=False, na_rep="-", float_format=_fmt)))
    if len(shown) < len(runs):
        lines.append(
            f"  ... {len(runs) - len(shown)} more runs (--all shows every run; --csv or "
            "--parquet exports the table)"
        )
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
