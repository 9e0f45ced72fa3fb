"""The momentum-noise experiment (Appendix D) through the command line, on a shrunk grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import read_summary, run_quick

from sgdcore import cli
from sgdcore.experiments import momentum_noise as mn


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    small = {
        "lrs": [0.003, 1.5],
        "momenta": [0.0, 0.9],
        "logistic_lrs": [0.05],
        "logistic_steps": 1500,
        "logistic_replicas": 4,
    }
    return run_quick(tmp_path_factory, "momentum-noise", (mn.QUICK, small))


def test_outputs_and_verdicts(outputs):
    df = pd.read_parquet(outputs / "results.parquet")
    summary, md = read_summary(outputs, ["momentum_noise"])
    assert summary["quick"] is True and summary["experiment"] == "momentum-noise"
    vs = summary["verdicts"]
    assert len(vs) == 3
    quad = df[df["case"] == "quadratic"]
    assert len(quad) == 4 and set(df["case"]) == {"quadratic", "logistic"}
    # re-derived from the table: the exact recursion explains every point ...
    z = (quad["measured"] - quad["discrete"]) / quad["mcse"]
    assert np.all(np.abs(z) < 4)
    # ... the SDE the small-ε ones, and fails at x = 0.75 (m = 0, ε = 1.5)
    small = quad[quad["lr"] == 0.003]
    assert np.all(np.abs(small["measured"] - small["sde"]) < 4 * small["mcse"])
    big = quad[(quad["lr"] == 1.5) & (quad["momentum"] == 0.0)].iloc[0]
    assert big["measured"] / big["sde"] == pytest.approx(4.0, rel=0.1)  # 1/(1 - 0.75)
    assert vs[0]["verdict"] == "agrees" and vs[1]["verdict"] == "agrees"
    assert "agrees" in md and "| claim |" in md


def test_bad_seed_is_one_line(capsys):
    assert cli.main(["run", "momentum-noise", "--seed", "-1", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert "argument --seed: expected an integer >= 0, got '-1'" in err and err.count("\n") == 1
