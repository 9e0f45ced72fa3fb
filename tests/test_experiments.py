"""Tests of the paper's experiments (sgdcore.experiments) on the embedded MNIST digits.

The two scientific checks of the issue run the real ``--quick`` settings through the
command line (each about a minute on 2 cores, shared by module-scoped fixtures):
``batch-size`` must show an interior optimum beyond the seed spread and ``lr-scaling``
a positive slope. Both are re-derived here from the written table, not read back from
the experiment's own summary. The other experiments run with shrunken settings to check
their outputs; the ``--quick`` grids of all five are checked for cost.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sgdcore import cli, sweep
from sgdcore.experiments import (
    batch_size,
    lr_scaling,
    momentum_scaling,
    n_scaling,
    training_curves,
)

PNG = b"\x89PNG\r\n\x1a\n"


def final_table(out):
    df = pd.read_parquet(out / "results.parquet")
    return df[df["step"] == df["total_steps"]]


def check_outputs(out, figures):
    assert (out / "results.parquet").is_file()
    manifest = json.loads((out / "results.parquet.manifest.json").read_text())
    assert manifest["spec"] and manifest["data"]["train"]["source"]
    assert manifest["environment"]["sgdcore_version"]
    for f in figures:
        data = (out / f"{f}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, f
    summary = json.loads((out / "summary.json").read_text())
    md = (out / "summary.md").read_text()
    for f in figures:
        assert f"({f}.png)" in md
    assert (out / "store" / "manifest.json").is_file()
    return summary, md


@pytest.fixture(scope="module")
def batch_size_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bs") / "batch-size"
    assert cli.main(["run", "batch-size", "--quick", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def lr_scaling_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr") / "lr-scaling"
    assert cli.main(["run", "lr-scaling", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_batch_size_quick_shows_an_interior_optimum(batch_size_quick):
    fin = final_table(batch_size_quick)
    assert fin["n_train"].unique().tolist() == [1000]
    bad = fin["diverged"] | ~(fin["test_accuracy"].fillna(0) > 0.55)  # failed to train
    trained = fin[~bad].groupby("batch_size")["test_accuracy"]
    ok = bad.groupby(fin["batch_size"]).mean() < 0.5
    mean, se = trained.mean()[ok], (trained.std() / np.sqrt(trained.count()))[ok]
    best = mean.idxmax()
    assert mean.index.min() < best < mean.index.max()
    # a trained batch size on each side is worse beyond twice the noise of the difference
    noise = 2 * np.hypot(se[best], se.fillna(se.median()))
    worse = mean[best] - mean > noise
    assert worse[mean.index < best].any() and worse[mean.index > best].any()
    assert mean[best] > 0.88  # it trains: the optimum is a good network
    summary, md = check_outputs(batch_size_quick, ["fig4a_curves", "fig4b_accuracy_vs_batch"])
    assert summary["interior_optimum"] and summary["b_opt"]["b_peak"] == best
    assert summary["b_opt"]["b_opt_lo"] <= summary["b_opt"]["b_opt"] <= summary["b_opt"]["b_opt_hi"]
    # sizes that failed to train are listed, not averaged in
    assert set(summary["failed_to_train"]) == {str(b) for b in ok.index[~ok]}
    assert summary["verdicts"][0]["verdict"] == "agrees"
    assert summary["quick"] is True
    assert "784-128-10" in md and "failed to train" in md.lower()
    # the search refined the grid next to the peak to a factor of about sqrt(2)
    sampled = sorted(fin["batch_size"].unique())
    i = sampled.index(best)
    assert sampled[i + 1] / best <= 1.5 and best / sampled[i - 1] <= 1.5


@pytest.mark.slow
def test_batch_size_rerun_resumes_from_its_store(batch_size_quick, monkeypatch):
    before = pd.read_parquet(batch_size_quick / "results.parquet")

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(sweep.executors, "run_group", boom)
    assert cli.main(["run", "batch-size", "--quick", "--out", str(batch_size_quick)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(batch_size_quick / "results.parquet"), before)


@pytest.mark.slow
def test_lr_scaling_quick_gives_a_positive_slope(lr_scaling_quick):
    fin = final_table(lr_scaling_quick)
    # steps follow the constant-time rule: lr * steps is the same for every lr
    np.testing.assert_allclose(fin["lr"] * fin["total_steps"], 50.0, rtol=0.02)
    acc = fin.assign(a=fin["test_accuracy"].fillna(0.1)).groupby(["lr", "batch_size"])["a"]
    best = acc.mean().groupby(level="lr").idxmax().map(lambda t: t[1])
    lrs = sorted(best.index)
    assert best[lrs[-1]] > best[lrs[0]]  # the best sampled B grows with lr
    slope = np.polyfit(np.log(lrs), np.log(best[lrs].to_numpy(float)), 1)[0]
    assert slope > 0
    summary, md = check_outputs(lr_scaling_quick, ["fig5a_accuracy_vs_batch", "fig5b_bopt_vs_lr"])
    assert [row["lr"] for row in summary["b_opt"]] == lrs
    points = [row for row in summary["b_opt"] if row["status"] == "bracketed"]
    if len(points) >= 2:  # the slope goes through the bracketed optima only
        assert summary["fit"]["slope"] > 0 and summary["fit"]["n"] == len(points)
        assert summary["fit"]["slope_lo"] < summary["fit"]["slope"] < summary["fit"]["slope_hi"]
        assert "Weighted slope" in md
    else:
        assert summary["fit"] is None and summary["verdicts"][0]["verdict"] == "inconclusive"


def example_steps(spec) -> int:
    return sum(r["batch_size"] * r["steps"] for r in spec.expand())


@pytest.mark.parametrize(
    ("module", "budget"),
    [
        (training_curves, 4_000_000),
        (batch_size, 4_000_000),
        (lr_scaling, 4_000_000),
        (n_scaling, 4_000_000),
        (momentum_scaling, 4_000_000),
    ],
)
def test_quick_settings_stay_small_and_full_settings_are_the_papers_network(module, budget):
    quick = module.make_spec(quick=True)
    assert quick.model == {"kind": "mlp", "hidden": 128}
    # examples pushed through 784-128-10 (about 0.6 MFLOP each, forward and backward)
    assert example_steps(quick) <= budget
    full = module.make_spec()
    assert full.model == {"kind": "mlp", "hidden": 800}
    assert {r["momentum"] for r in full.expand()} <= {0.0, 0.5, 0.75, 0.8, 0.9, 0.95}


SMALL = ["--hidden", "16", "--seeds", "2", "--backend", "auto"]


def test_training_curves_outputs(tmp_path):
    out = tmp_path / "tc"
    argv = ["run", "training-curves", "--quick", "--out", str(out), *SMALL, "--steps", "60"]
    assert cli.main(argv) == 0
    summary, md = check_outputs(out, ["fig3a_test_accuracy", "fig3b_test_cross_entropy"])
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df["batch_size"].unique()) == [30, 1000]
    assert df.groupby("run")["step"].nunique().min() >= 10  # curves, not end points
    assert set(summary["per_batch"]) == {"30", "1000"}
    gap = (
        summary["per_batch"]["30"]["final_accuracy"]
        - summary["per_batch"]["1000"]["final_accuracy"]
    )
    assert summary["accuracy_gap"] == pytest.approx(gap)


def test_n_scaling_outputs(tmp_path):
    out = tmp_path / "ns"
    argv = ["run", "n-scaling", "--quick", "--out", str(out), *SMALL, "--steps", "40"]
    argv += ["--ns", "100", "400"]
    assert cli.main(argv) == 0
    summary, md = check_outputs(out, ["fig6a_accuracy_vs_batch", "fig6b_bopt_vs_n"])
    fin = final_table(out)
    assert sorted(fin["n_train"].unique()) == [100, 400]
    initial = sweep.load(out / "store")
    for n, sub in initial.groupby("n_train"):
        g = sub["lr"] / (1 - sub["momentum"]) * (n / sub["batch_size"] - 1)
        assert g.between(*n_scaling.G_BAND).all()  # the initial band of noise scales
    assert [row["n_train"] for row in summary["b_opt"]] == [100, 400]
    search = summary["search"]
    assert search["runs"] <= search["budget"] == 2 * search["initial_runs"]
    assert len(fin) == search["runs"] and fin["run"].is_unique
    points = [row for row in summary["b_opt"] if row["status"] == "bracketed"]
    assert (summary["fit"] or {"n": 0})["n"] == (len(points) if len(points) >= 2 else 0)
    for row in summary["b_opt"]:
        if row["status"] != "bracketed":
            assert row["label"].startswith((">=", "<="))  # a bound, said as such
    # the same --out with other settings: the sweep store refuses, the message says why
    argv[argv.index("--seeds") + 1] = "3"
    with pytest.raises(SystemExit, match=r"(?s)different sweep spec.*use another --out"):
        cli.main(argv)


def test_momentum_scaling_outputs(tmp_path):
    out = tmp_path / "ms"
    argv = ["run", "momentum-scaling", "--quick", "--out", str(out), *SMALL]
    argv += ["--momenta", "0.5", "0.9", "--time", "6"]
    assert cli.main(argv) == 0
    summary, md = check_outputs(out, ["fig7a_accuracy_vs_batch", "fig7b_bopt_vs_momentum"])
    fin = final_table(out)
    assert sorted(fin["momentum"].unique()) == [0.5, 0.9]
    assert summary["x"] == pytest.approx([2.0, 10.0])  # 1 / (1 - m)
