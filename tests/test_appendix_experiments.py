"""The appendix experiments (regularized, noise-gaussianity) with shrunken settings: their
outputs, their verdicts re-derived from the written table, and the gradient statistics
re-derived from the float64 oracle."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import read_summary
from scipy import stats

from sgdcore import cli, reference, sweep
from sgdcore.experiments import _common as C
from sgdcore.experiments import noise_gaussianity, regularized
from sgdcore.models import MLP


def _outputs(out, figures):
    summary, md = read_summary(out, figures)
    assert summary["verdicts"]
    for v in summary["verdicts"]:
        assert re.search(r"(Appendix|Section) [A-Z0-9]", v["claim"])
    return summary, md


# ------------------------------------------------------------------------ regularized


def test_regularized_outputs_and_evidence_choice(tmp_path, monkeypatch, capsys):
    for k, v in {"scan_steps": 30, "probes": 3, "lanczos": 8, "evals": 5}.items():
        monkeypatch.setitem(regularized.QUICK, k, v)
    out = tmp_path / "reg"
    argv = ["run", "regularized", "--quick", "--out", str(out), "--hidden", "8"]
    argv += ["--seeds", "2", "--steps", "40", "--lambdas", "3", "30"]
    assert cli.main(argv) == 0
    summary, md = _outputs(out, regularized.FIGURES)
    scan = pd.DataFrame(summary["evidence"])
    assert scan["l2"].tolist() == [3.0, 30.0]
    best = scan.loc[scan["log_ratio"].idxmin(), "l2"]
    assert summary["l2"] == best  # the evidence's choice is the one trained
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df["l2"].unique()) == [0.0, best]
    assert sorted(df["batch_size"].unique()) == [30, 1000]
    # the gap and its shrink, recomputed from the table
    fin = df[df["step"] == df["total_steps"]].set_index(["batch_size", "l2", "seed"])
    acc = fin["test_accuracy"]
    gap0 = acc.loc[30, 0.0] - acc.loc[1000, 0.0]
    gapl = acc.loc[30, best] - acc.loc[1000, best]
    sign = 1.0 if gap0.mean() >= 0 else -1.0
    assert summary["analysis"]["gap_shrink"][0] == pytest.approx(sign * (gap0 - gapl).mean())
    assert f"l2 = **{best:g}**" in md
    assert cli.main([*argv[:-2], "0", "30"]) == 2
    assert "argument --lambdas: expected a finite number > 0, got '0'" in capsys.readouterr().err


def _table(acc, ce_curves):
    """A sweep-like table: acc[(B, l2)] = per-seed final accuracies; ce_curves[(B, l2)] =
    the test cross-entropy at steps 1, 2, 3 (same for every seed)."""
    rows = []
    for (b, lam), accs in acc.items():
        for s, a in enumerate(accs):
            for step, ce in zip((1, 2, 3), ce_curves[(b, lam)], strict=True):
                rows.append(
                    {
                        "batch_size": b,
                        "l2": lam,
                        "seed": s,
                        "step": step,
                        "total_steps": 3,
                        "n_train": 1000,
                        "test_accuracy": a,
                        "test_cross_entropy": ce + 0.001 * s,
                    }
                )
    df = pd.DataFrame(rows)
    df.attrs["l2"] = 10.0
    return df


def test_regularized_verdicts_on_known_tables():
    flat, rising = (0.5, 0.4, 0.4), (0.5, 0.4, 0.6)
    acc = {
        (30, 0.0): [0.92, 0.93, 0.925],
        (1000, 0.0): [0.90, 0.905, 0.90],
        (30, 10.0): [0.93, 0.935, 0.93],
        (1000, 10.0): [0.928, 0.932, 0.93],
    }
    ce = {(30, 0.0): rising, (1000, 0.0): rising, (30, 10.0): flat, (1000, 10.0): flat}
    v = {x["claim"][:40]: x["verdict"] for x in regularized.verdicts(_table(acc, ce))}
    assert list(v.values()) == ["agrees", "agrees", "agrees"]
    # the gap grows with L2 and the regularised cross-entropy rises: both disagree
    acc[(1000, 10.0)] = [0.85, 0.86, 0.855]
    ce[(30, 10.0)] = rising
    out = regularized.verdicts(_table(acc, ce))
    assert [x["verdict"] for x in out] == ["disagrees", "agrees", "disagrees"]
    a = regularized.analyze(_table(acc, ce))
    # rise = (final - min) / min = (0.6 - 0.4) / 0.4 for seed 0
    assert a["rise"]["30/10"][0] == pytest.approx(
        np.mean([(0.6 + 0.001 * s) / (0.4 + 0.001 * s) - 1 for s in range(3)])
    )


# ------------------------------------------------------------------ noise-gaussianity


def test_noise_gaussianity_outputs_match_the_oracle(tmp_path, monkeypatch):
    for k, v in {"n_random": 1, "n_eigen": 1, "n_batches": 400, "n_boot": 40}.items():
        monkeypatch.setitem(noise_gaussianity.QUICK, k, v)
    out = tmp_path / "ng"
    argv = ["run", "noise-gaussianity", "--quick", "--out", str(out), "--hidden", "8"]
    argv += ["--checkpoints", "0", "15", "--backend", "auto"]
    assert cli.main(argv) == 0
    summary, md = _outputs(out, noise_gaussianity.FIGURES)
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df["step"].unique()) == [0, 15]
    assert sorted(df["B"].unique()) == list(noise_gaussianity.BATCHES)
    assert set(df["kind"]) == {"element", "random", "eigen"}
    assert len(df) == 2 * 3 * 4  # steps x directions x batch sizes
    # at initialisation the element direction's per-example values are one column of
    # the oracle's per-example gradients
    train, _ = sweep.load_data({**C.DATA, "download": False}, "float64")
    model = MLP(784, 8, 10)
    theta = model.init(0)
    init = df[(df["step"] == 0) & (df["B"] == 1)].set_index("kind")
    c, h = map(int, re.fullmatch(r"W2\[(\d+),(\d+)\]", init.loc["element", "direction"]).groups())
    j = model.offsets()["W2"].start + c * model.n_hidden + h
    g = reference.per_example_grads(model, theta, train.X, train.y)[:, j]
    assert init.loc["element", "mean"] == pytest.approx(g.mean(), rel=1e-9, abs=1e-15)
    assert init.loc["element", "sd"] == pytest.approx(g.std(), rel=1e-9)
    assert init.loc["element", "skew"] == pytest.approx(stats.skew(g), rel=1e-8)
    assert init.loc["element", "kurt"] == pytest.approx(stats.kurtosis(g), rel=1e-8)
    want_ks = stats.kstest(g, "norm", args=(g.mean(), g.std())).statistic
    assert init.loc["element", "ks"] == pytest.approx(want_ks, rel=1e-8)
    # along the top eigenvector of F the per-example variance is its eigenvalue
    assert init.loc["eigen", "sd"] ** 2 == pytest.approx(init.loc["eigen", "eigenvalue"], rel=1e-8)
    # the CLT column is the B = 1 moments over B
    rows = df[(df["step"] == 0) & (df["kind"] == "element")].set_index("B")
    for B in (4, 30, 128):
        assert rows.loc[B, "clt_kurt"] == pytest.approx(rows.loc[1, "kurt"] / B)
        assert rows.loc[B, "clt_skew"] == pytest.approx(rows.loc[1, "skew"] / np.sqrt(B))
        assert rows.loc[B, "n"] == 400
    assert len(summary["verdicts"]) == 4


def test_noise_gaussianity_bad_options(tmp_path, capsys):
    base = ["run", "noise-gaussianity", "--quick", "--out", str(tmp_path)]
    assert cli.main([*base, "--n-train", "1"]) == 2
    assert "sgdcore: error: --n-train must be >= 2" in capsys.readouterr().err
    assert cli.main([*base, "--checkpoints", "-5"]) == 2
    assert "sgdcore: error: --checkpoints must be >= 0" in capsys.readouterr().err
