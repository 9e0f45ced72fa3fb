"""The langevin experiment (Appendix A) through the command line, on a shrunk setting."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sgdcore import cli
from sgdcore.experiments import langevin as lg

PNG = b"\x89PNG\r\n\x1a\n"
KEYS = {"claim", "measured", "interval", "verdict", "note"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for k, v in {"hidden": 4, "n_train": 100, "steps": 80, "thin": 10, "chains": 1}.items():
        mp.setitem(lg.QUICK, k, v)
    mp.setitem(lg.SGD, "steps", 100)
    out = tmp_path_factory.mktemp("lg") / "langevin"
    try:
        assert cli.main(["run", "langevin", "--quick", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out


def test_outputs_and_verdicts(outputs):
    df = pd.read_parquet(outputs / "results.parquet")
    summary = json.loads((outputs / "summary.json").read_text())
    md = (outputs / "summary.md").read_text()
    assert (outputs / "langevin_chains.png").read_bytes().startswith(PNG)
    assert "(langevin_chains.png)" in md
    assert summary["experiment"] == "langevin" and summary["quick"] is True
    vs = summary["verdicts"]
    assert len(vs) == 2 and all(set(v) == KEYS for v in vs)
    assert {v["verdict"] for v in vs} <= {"agrees", "disagrees", "inconclusive"}
    # one chain from each of the three starts; the second half kept, every 10th step
    assert sorted(df["start"].unique()) == ["A", "B", "midpoint"]
    assert df.groupby("start").size().tolist() == [4, 4, 4]
    assert sorted(df["step"].unique()) == [50, 60, 70, 80]
    # each sample's basin is the nearer minimum; only the last sample is evaluated
    assert (df["basin"] == np.where(df["dist_A"] <= df["dist_B"], "A", "B")).all()
    assert df["test_error"].notna().sum() == 3
    m = summary["minima"]
    d = m["B"]["log_evidence"] - m["A"]["log_evidence"]
    assert summary["predicted_share_A"] == pytest.approx(1 / (1 + np.exp(d)))
    assert summary["parameters"]["n_params"] == 784 * 4 + 4 + 4 * 10 + 10
    assert m["A"]["log_evidence"] == pytest.approx(-(m["A"]["cost"] + m["A"]["occam"]))


def test_predicted_share_is_the_evidence_ratio():
    minima = {"A": {"log_evidence": -10.0}, "B": {"log_evidence": -10.0 - np.log(3)}}
    assert lg.predicted_share(minima) == pytest.approx(0.75)


@pytest.mark.parametrize("flag", ["--hidden", "--steps"])
def test_bad_sizes_are_one_line(flag, capsys):
    assert cli.main(["run", "langevin", flag, "0", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: expected an integer >= 1, got '0'" in err and err.count("\n") == 1
