"""Tests of ``sgdcore reproduce`` and its Markdown report.

The experiments' ``--quick`` settings are shrunk here (an 8-unit hidden layer, a few
dozen steps, two seeds) so the whole pipeline runs in seconds; what is checked is the
report: every experiment present, every figure it links written, the slope table equal
to the experiments' own fits, failures isolated. The science of the real ``--quick``
settings is tested in test_experiments.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sgdcore import cli, report
from sgdcore.experiments import (
    batch_size,
    langevin,
    lr_scaling,
    momentum_noise,
    momentum_scaling,
    n_scaling,
    noise_gaussianity,
    regularized,
    training_curves,
)

TINY = {
    training_curves: {"hidden": 8, "steps": 30, "seeds": 2, "evals": 5},
    batch_size: {"hidden": 8, "steps": 30, "seeds": 2, "evals": 4},
    lr_scaling: {"hidden": 8, "time": 3.0, "seeds": 2},
    n_scaling: {"hidden": 8, "steps": 30, "seeds": 2, "ns": [500, 1000, 2000]},
    momentum_scaling: {"hidden": 8, "time": 20.0, "seeds": 2},
    langevin: {"hidden": 4, "n_train": 100, "steps": 80, "thin": 10, "chains": 1},
    momentum_noise: {
        "lrs": [0.003, 0.3],
        "momenta": [0.0],
        "logistic_lrs": [0.5],
        "replicas": 8,
        "logistic_steps": 300,
        "logistic_replicas": 2,
    },
    regularized: {
        "hidden": 8,
        "steps": 30,
        "seeds": 2,
        "evals": 4,
        "lambdas": (3.0, 30.0),
        "scan_steps": 20,
        "probes": 2,
        "lanczos": 5,
    },
    noise_gaussianity: {
        "hidden": 8,
        "checkpoints": (0, 10),
        "n_random": 1,
        "n_eigen": 1,
        "n_batches": 300,
        "n_boot": 30,
    },
}
MINE = ["training-curves", "batch-size", "lr-scaling", "n-scaling", "momentum-scaling"]


@pytest.fixture
def tiny(monkeypatch):
    for module, changes in TINY.items():
        for k, v in changes.items():
            monkeypatch.setitem(module.QUICK, k, v)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for module, changes in TINY.items():
        for k, v in changes.items():
            mp.setitem(module.QUICK, k, v)
    out = tmp_path_factory.mktemp("repro") / "results"
    try:
        code = cli.main(["reproduce", "--quick", "--out", str(out)])
    finally:
        mp.undo()
    return code, out


def test_reproduce_runs_every_experiment_into_one_report(reproduced):
    code, out = reproduced
    assert code == 0
    text = (out / "REPORT.md").read_text()
    names = list(cli._experiments())
    assert set(MINE) <= set(names)
    for name in names:
        assert f'<a id="{name}"></a>' in text
        assert (out / name).is_dir()
    assert "FAILED" not in text
    assert "`--quick` settings" in text and "mlxtend" in text
    # every experiment's figures are linked, and every link resolves
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((out / link).is_file() for link in links)
    for name in names:
        for png in (out / name).glob("*.png"):
            assert f"{name}/{png.name}" in links


def test_report_slope_table_matches_each_experiments_fit(reproduced):
    _, out = reproduced
    text = (out / "REPORT.md").read_text()
    table = text[text.index("## Scaling rules") : text.index("## Experiments")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 4  # header and the three rules
    for name, rule in (
        ("lr-scaling", "B_opt ∝ ε"),
        ("n-scaling", "B_opt ∝ N"),
        ("momentum-scaling", "B_opt ∝ 1/(1−m)"),
    ):
        fit = json.loads((out / name / "summary.json").read_text())["fit"]
        (row,) = [r for r in rows if r.startswith(f"| {name} |")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == rule
        if fit is None:  # fewer than two bracketed optima: no slope is printed
            assert cells[2].startswith("none") and cells[3] == "n/a"
            continue
        assert cells[2] == f"**{fit['slope']:.2f}**"
        if fit["slope_lo"] is None:
            assert cells[3] == "n/a"
        else:
            assert cells[3] == f"[{fit['slope_lo']:.2f}, {fit['slope_hi']:.2f}]"
        assert cells[4] == "1"


def test_verdict_table_lists_every_experiments_verdicts_in_order(reproduced):
    _, out = reproduced
    text = (out / "REPORT.md").read_text()
    table = text[text.index("## Verdicts") :]
    table = table[: table.index("\n## ")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    expected = []
    for name in [n for n in report.ORDER if (out / n / "summary.json").is_file()]:
        for v in json.loads((out / name / "summary.json").read_text()).get("verdicts", []):
            expected.append((v["claim"], name, v["verdict"]))
    assert {"batch-size", "lr-scaling", "n-scaling", "training-curves"} <= {e[1] for e in expected}
    got = [tuple(c.strip() for c in r.strip("|").split("|")) for r in rows[1:]]
    assert [(g[0], g[1], g[4]) for g in got] == [(c, n, f"**{v}**") for c, n, v in expected]


def test_collect_verdicts_keeps_order_skips_failures_and_flags_malformed(tmp_path):
    def res(name, verdicts, ok=True):
        r = report.ExperimentResult(name, tmp_path / name, 1.0, ok)
        r.summary = {"verdicts": verdicts}
        return r

    good = {"claim": "c1", "measured": "m", "interval": "[1, 2]", "verdict": "agrees", "note": ""}
    out = report.collect_verdicts(
        [
            res("b", [good, {"claim": "c2", "verdict": "maybe"}]),
            res("a", [{**good, "claim": "c3", "verdict": "disagrees"}]),
            res("x", [good], ok=False),
            res("y", []),
        ]
    )
    assert [(v["experiment"], v["claim"], v["verdict"]) for v in out] == [
        ("b", "c1", "agrees"),
        ("b", "c2", "inconclusive"),
        ("a", "c3", "disagrees"),
    ]
    assert "malformed" in out[1]["note"] and out[0]["interval"] == "[1, 2]"


def test_foreign_experiment_section_holds_its_output_and_figures(reproduced):
    _, out = reproduced
    if "random-labels" not in cli._experiments():
        pytest.skip("no random-labels experiment in this tree")
    text = (out / "REPORT.md").read_text()
    section = text[text.index('<a id="random-labels">') :]
    section = section[: section.index("---")] if "---" in section else section
    assert "random vs informative labels" in section  # its printed summary
    pngs = sorted(p.name for p in (out / "random-labels").glob("*.png"))
    assert pngs and all(f"random-labels/{p}" in section for p in pngs)


def test_a_failing_experiment_is_reported_and_the_others_still_run(tmp_path, tiny, monkeypatch):
    def broken(args):
        raise RuntimeError("the engine caught fire")

    monkeypatch.setattr(n_scaling, "main", broken)
    out = tmp_path / "r"
    path, results = report.reproduce(out, quick=True, only=["n-scaling", "lr-scaling"])
    assert [r.name for r in results] == ["lr-scaling", "n-scaling"]
    assert [r.ok for r in results] == [True, False]
    text = Path(path).read_text()
    assert "## n-scaling: FAILED" in text and "the engine caught fire" in text
    assert "**Failed:** n-scaling" in text
    assert "| n-scaling | B_opt ∝ N | failed |" in text
    assert (out / "lr-scaling" / "fig5b_bopt_vs_lr.png").is_file()
    code = cli.main(["reproduce", "--quick", "--out", str(out), "--only", "n-scaling"])
    assert code == 1


def test_unknown_experiment_is_an_error(tmp_path, capsys):
    assert cli.main(["reproduce", "--out", str(tmp_path), "--only", "frobnicate"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"sgdcore: error: --only: unknown experiment.*frobnicate", line)
