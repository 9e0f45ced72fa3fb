"""The langevin experiment (Appendix A) through the command line, on a shrunk setting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import read_summary, run_quick

from sgdcore import cli
from sgdcore.experiments import langevin as lg


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    small = {"hidden": 4, "n_train": 100, "steps": 80, "thin": 10, "chains": 1}
    return run_quick(tmp_path_factory, "langevin", (lg.QUICK, small), (lg.SGD, {"steps": 100}))


def test_outputs_and_verdicts(outputs):
    df = pd.read_parquet(outputs / "results.parquet")
    summary, _ = read_summary(outputs, ["langevin_chains"])
    assert summary["experiment"] == "langevin" and summary["quick"] is True
    assert len(summary["verdicts"]) == 2
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
