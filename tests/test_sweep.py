"""Tests of sgdcore.sweep: specs, grouping, the result store, resume after a kill, Dask.

Sweeps here train a tiny 784-8-10 network on 200 of the embedded MNIST digits for a few
dozen steps, so each group takes milliseconds; results are checked against direct
calls of :func:`sgdcore.train` (the engine the sweep drives), never against
themselves.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdcore import sweep
from sgdcore.sweep import SpecError, StoreError, SweepSpec
from sgdcore.training import train

DATA = {"name": "mnist", "n_train": 200, "n_test": 300, "seed": 0}
MODEL = {"kind": "mlp", "hidden": 8}


def tiny_spec(**kw) -> SweepSpec:
    base = {
        "grid": {"batch_size": [8, 32], "seed": [0, 1], "lr": [0.05, 0.1]},
        "fixed": {"momentum": 0.9},
        "steps": 30,
        "eval": {"every": 10},
        "model": MODEL,
        "data": DATA,
        "dtype": "float64",
        "backend": "numpy",
    }
    base.update(kw)
    return SweepSpec(**base)


# -- spec ----------------------------------------------------------------------------------


def test_grid_expands_to_the_cartesian_product_with_defaults():
    runs = tiny_spec().expand()
    assert len(runs) == 8
    assert {(r["batch_size"], r["seed"], r["lr"]) for r in runs} == {
        (b, s, lr) for b in (8, 32) for s in (0, 1) for lr in (0.05, 0.1)
    }
    for r in runs:
        assert r["momentum"] == 0.9 and r["l2"] == 0.0 and r["n_train"] is None
        assert r["label_seed"] == -1 and r["steps"] == 30


def test_union_of_grids_explicit_runs_and_fixed():
    spec = tiny_spec(
        grid=[{"n_train": 50, "batch_size": [5, 50]}, {"n_train": 200, "batch_size": [20]}],
        runs=[{"batch_size": 10, "lr": 0.2, "momentum": 0.5, "steps": 7}],
        fixed={"lr": 0.1, "momentum": 0.9},
    )
    runs = spec.expand()
    assert [(r["n_train"], r["batch_size"], r["lr"], r["momentum"], r["steps"]) for r in runs] == [
        (50, 5, 0.1, 0.9, 30),
        (50, 50, 0.1, 0.9, 30),
        (200, 20, 0.1, 0.9, 30),
        (None, 10, 0.2, 0.5, 7),
    ]


def test_constant_time_rule_gives_steps_inversely_proportional_to_lr():
    spec = tiny_spec(
        grid={"lr": [0.025, 0.1, 0.3], "batch_size": [8]},
        steps={"rule": "constant_time", "time": 5.0},
    )
    assert [r["steps"] for r in spec.expand()] == [200, 50, 17]
    eff = tiny_spec(
        grid={"momentum": [0.0, 0.5, 0.9], "batch_size": [8], "lr": [0.1]},
        steps={"rule": "constant_time", "time": 5.0, "per": "effective_lr"},
    )
    assert [r["steps"] for r in eff.expand()] == [50, 25, 5]  # time = lr * steps / (1 - m)


def test_eval_schedules():
    spec = tiny_spec()
    assert spec.eval_steps(30) == [0, 10, 20, 30]
    assert spec.eval_steps(25) == [0, 10, 20, 25]
    assert tiny_spec(eval="final").eval_steps(30) == [30]
    assert tiny_spec(eval={"steps": [0, 5, 100]}).eval_steps(30) == [0, 5, 30]
    log = tiny_spec(eval={"log": 5}).eval_steps(1000)
    assert log[0] == 0 and log[-1] == 1000 and len(log) == 6
    assert np.allclose(np.diff(np.log(log[1:])), np.log(1000) / 4, rtol=0.05)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"batch_size": [8], "learning_rate": [0.1]}}, "unknown hyper-parameter"),
        ({"grid": {"batch_size": [8]}}, "no learning rate"),
        ({"grid": {"batch_size": [8, 300], "lr": [0.1]}}, "exceeds the training-set size"),
        ({"grid": {"batch_size": [8], "lr": [0.1], "n_train": [500]}}, "exceeds the drawn"),
        ({"grid": {"batch_size": [8], "lr": [0.1]}, "fixed": {"momentum": 1.0}}, "momentum"),
        ({"grid": {"batch_size": [0], "lr": [0.1]}}, "batch_size must be >= 1"),
        ({"grid": {"batch_size": [8], "lr": [-0.1]}}, "lr must be > 0"),
        ({"grid": {"batch_size": [8], "lr": [0.1]}, "steps": None}, "no steps"),
        ({"grid": {"batch_size": [8], "lr": [0.1]}, "eval": {"often": 3}}, "unknown schedule"),
        ({"grid": {"batch_size": []}}, "empty list"),
        ({"grid": {}, "runs": []}, "is empty"),
        ({"grid": None, "runs": []}, "no runs"),
        ({"runs": [{"batch_size": 8, "lr": 0.1}] * 2, "grid": None}, "duplicate run"),
        ({"model": {"kind": "cnn"}}, "model must be"),
        ({"data": {"name": "cifar"}}, "data.name"),
        ({"steps": {"rule": "linear"}}, "steps.rule"),
        ({"dtype": "float16"}, "dtype"),
        ({"grid": {"batch_size": [8.5], "lr": [0.1]}}, "batch_size must be an integer"),
    ],
)
def test_bad_specs_are_refused_with_the_problem_named(change, message):
    with pytest.raises(SpecError, match=message):
        tiny_spec(**change)


def test_spec_round_trips_through_dict_and_its_digest_ignores_only_the_name():
    spec = tiny_spec()
    again = SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.sha256 == spec.sha256
    assert tiny_spec(name="other").sha256 == spec.sha256
    assert tiny_spec(data={**DATA, "download": True}).sha256 == spec.sha256
    assert tiny_spec(steps=31).sha256 != spec.sha256
    with pytest.raises(SpecError, match="unknown spec key"):
        SweepSpec.from_dict({**spec.to_dict(), "stpes": 3})


def test_toml_file_gives_the_same_spec(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(
        textwrap.dedent(
            """
            steps = 30
            eval = {every = 10}
            dtype = "float64"
            backend = "numpy"
            [model]
            kind = "mlp"
            hidden = 8
            [data]
            name = "mnist"
            n_train = 200
            n_test = 300
            [fixed]
            momentum = 0.9
            [grid]
            batch_size = [8, 32]
            seed = [0, 1]
            lr = [0.05, 0.1]
            """
        )
    )
    spec = SweepSpec.from_toml(path)
    assert spec == tiny_spec()
    (tmp_path / "grids.toml").write_text(
        'steps = {rule = "constant_time", time = 3.0}\n'
        "[[grid]]\nlr = 0.1\nbatch_size = [4, 8]\n[[grid]]\nlr = 0.3\nbatch_size = 16\n"
    )
    runs = SweepSpec.from_toml(tmp_path / "grids.toml").expand()
    assert [(r["lr"], r["batch_size"], r["steps"]) for r in runs] == [
        (0.1, 4, 30),
        (0.1, 8, 30),
        (0.3, 16, 10),
    ]
    (tmp_path / "bad.toml").write_text("steps = [\n")
    with pytest.raises(SpecError, match="bad.toml.*not valid TOML"):
        SweepSpec.from_toml(tmp_path / "bad.toml")
    with pytest.raises(SpecError, match="does not exist"):
        SweepSpec.from_toml(tmp_path / "missing.toml")


# -- groups --------------------------------------------------------------------------------


def test_groups_share_batch_size_and_steps_and_cover_every_run_once():
    spec = tiny_spec(
        grid={"batch_size": [8, 32], "seed": [0, 1], "lr": [0.05, 0.1], "n_train": [100, 200]},
        steps={"rule": "constant_time", "time": 3.0},
    )
    groups = sweep.make_groups(spec, 784, 10)
    runs = [r["run"] for g in groups for r in g.runs]
    assert sorted(runs) == list(range(16))
    # (B, steps) keys: steps differ with lr, so 2 batch sizes x 2 learning rates
    assert len(groups) == 4
    for g in groups:
        assert {r["batch_size"] for r in g.runs} == {g.batch_size}
        assert {r["steps"] for r in g.runs} == {g.steps}
        assert {r["n_train"] for r in g.runs} == {100, 200}  # mixed within a group
    assert len({g.id for g in groups}) == 4
    assert [g.id for g in sweep.make_groups(spec, 784, 10)] == [g.id for g in groups]


def test_group_size_limit_cuts_evenly():
    spec = tiny_spec(grid={"batch_size": [8], "seed": list(range(10)), "lr": [0.1]}, max_group=4)
    sizes = [g.size for g in sweep.make_groups(spec, 784, 10)]
    assert sizes == [4, 3, 3]
    assert sum(sizes) == 10
    big = SweepSpec(
        grid={"batch_size": [1000], "seed": list(range(300)), "lr": [0.1]},
        steps=1,
        model={"kind": "mlp", "hidden": 800},
    )
    limit = big.group_size_limit(1000, 784, 10)
    assert 1 <= limit < 300  # 636,010 float32 parameters, x4 buffers, in 1 GiB
    assert all(g.size <= limit for g in sweep.make_groups(big, 784, 10))


# -- running and the store ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny sweep (float64, numpy engine) and its store folder."""
    store = tmp_path_factory.mktemp("sweeps") / "store"
    spec = tiny_spec()
    df = sweep.run(spec, store)
    return spec, store, df


def test_sweep_table_matches_direct_engine_calls(finished):
    spec, store, df = finished
    assert len(df) == 8 * 4
    assert not df.duplicated(["run", "step"]).any()
    arrays, groups, manifest = sweep.plan(spec)
    X, y, Xt, yt = arrays
    model = sweep.build_model(spec.model, X.shape[1], 10)
    for r in spec.expand()[::3]:  # single-model engine runs: an independent path
        one = train(
            model,
            (X, y),
            (Xt, yt),
            batch_size=r["batch_size"],
            lr=r["lr"],
            momentum=r["momentum"],
            steps=r["steps"],
            seeds=[r["seed"]],
            eval_every=10,
            dtype=np.float64,
            backend="numpy",
        )
        mine = df[
            (df["batch_size"] == r["batch_size"])
            & (df["lr"] == r["lr"])
            & (df["seed"] == r["seed"])
        ]
        cols = ["step", "test_accuracy", "test_cross_entropy", "train_cross_entropy"]
        np.testing.assert_allclose(mine[cols].to_numpy(), one[cols].to_numpy(), rtol=1e-10)


def test_label_seeds_and_training_set_sizes_reach_the_engine(tmp_path):
    spec = tiny_spec(
        grid={"batch_size": [8], "lr": [0.1], "label_seed": [-1, 5], "n_train": [50, 200]}
    )
    df = sweep.run(spec, tmp_path / "s")
    assert len(sweep.load(tmp_path / "s")["group"].unique()) == 1  # one group of four
    arrays, _, _ = sweep.plan(spec)
    X, y, Xt, yt = arrays
    model = sweep.build_model(spec.model, X.shape[1], 10)
    one = train(
        model,
        (X, y),
        (Xt, yt),
        batch_size=8,
        lr=0.1,
        momentum=0.9,
        steps=30,
        seeds=[0],
        eval_every=10,
        n_train=[50],
        label_seeds=[5],
        dtype=np.float64,
        backend="numpy",
    )
    mine = df[(df["label_seed"] == 5) & (df["n_train"] == 50)]
    cols = ["step", "test_accuracy", "train_cross_entropy", "epoch", "noise_scale"]
    np.testing.assert_allclose(mine[cols].to_numpy(), one[cols].to_numpy(), rtol=1e-10)


def test_manifest_records_version_backend_data_and_spec(finished):
    spec, store, df = finished
    m = json.loads((store / "manifest.json").read_text())
    assert m["format"] == "sgdcore.sweep-store" and m["format_version"] == 1
    assert m["spec_sha256"] == spec.sha256
    assert SweepSpec.from_dict(m["spec"]) == spec
    env = m["environment"]
    assert env["sgdcore_version"] and env["backend"] == env["backend_resolved"] == "numpy"
    assert m["data"]["train"]["source"] and len(m["data"]["train"]["sha256"]) == 64
    assert m["data"]["train"]["n"] == 200 and m["data"]["test"]["n"] == 300
    assert len(m["data"]["arrays_sha256"]) == 64
    assert len(m["groups"]) == len(list((store / "groups").glob("*.parquet")))
    loaded = sweep.load(store)
    assert loaded.attrs["complete"]
    pd.testing.assert_frame_equal(loaded, df, check_like=False)
    info = sweep.ResultStore(store, m).group_info(m["groups"][0]["id"])
    assert info["backend"] == "numpy" and info["seconds"] > 0


def test_rerun_of_a_finished_sweep_trains_nothing(finished, monkeypatch):
    spec, store, df = finished

    def boom(*a, **k):
        raise AssertionError("a finished group was trained again")

    monkeypatch.setattr(sweep.executors, "run_group", boom)
    again = sweep.run(spec, store)
    pd.testing.assert_frame_equal(again, df)


def _copy_store(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_store_made_by_another_spec_is_refused(finished, tmp_path):
    spec, store, _ = finished
    store = _copy_store(store, tmp_path / "s")
    with pytest.raises(StoreError, match=r"different sweep spec \(steps: stored 30, now 40"):
        sweep.run(tiny_spec(steps=40), store)


def test_store_on_other_data_is_refused(finished, tmp_path):
    spec, store, _ = finished
    store = _copy_store(store, tmp_path / "s")
    train_set, test_set = sweep.load_data(spec.data, spec.dtype)
    from dataclasses import replace

    other = replace(train_set, X=np.ascontiguousarray(train_set.X[::-1]))
    with pytest.raises(StoreError, match="different data"):
        sweep.run(spec, store, data=(other, test_set))


def test_foreign_and_corrupt_folders_are_refused(finished, tmp_path):
    spec, store, _ = finished
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and holds no sweep manifest"):
        sweep.run(spec, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]  # untouched

    bad = _copy_store(store, tmp_path / "bad_json")
    (bad / "manifest.json").write_text('{"format": "sgdcore.sweep-st')
    with pytest.raises(StoreError, match="corrupt: manifest.json cannot be read"):
        sweep.run(spec, bad)

    other = _copy_store(store, tmp_path / "other_format")
    (other / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(StoreError, match="not an sgdcore sweep manifest"):
        sweep.run(spec, other)

    trunc = _copy_store(store, tmp_path / "truncated")
    victim = sorted((trunc / "groups").glob("*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(StoreError, match=f"corrupt: group file {victim.name} cannot be read"):
        sweep.run(spec, trunc)

    swapped = _copy_store(store, tmp_path / "swapped")
    a, b = sorted((swapped / "groups").glob("*.parquet"))[:2]
    a.write_bytes(b.read_bytes())
    with pytest.raises(StoreError, match=f"{a.name} belongs to another sweep"):
        sweep.run(spec, swapped)

    stray = _copy_store(store, tmp_path / "stray")
    (stray / "groups" / "results.csv").write_text("x\n1\n")
    with pytest.raises(StoreError, match="holds a file it did not write"):
        sweep.run(spec, stray)

    with pytest.raises(StoreError, match="not a sweep result store"):
        sweep.load(tmp_path / "foreign")


def test_lock_held_by_a_live_process_is_respected_and_a_stale_one_taken_over(finished, tmp_path):
    spec, store, df = finished
    store = _copy_store(store, tmp_path / "s")
    import socket

    lock = store / ".lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(StoreError, match=f"in use by process {os.getppid()}"):
        sweep.run(spec, store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    (store / "groups" / ".g0000-x.parquet.abc.tmp").write_bytes(b"half a file")
    again = sweep.run(spec, store)
    pd.testing.assert_frame_equal(again, df)
    assert not lock.exists()
    assert not list((store / "groups").glob(".*.tmp"))


KILL_SCRIPT = """
import sys, time
from sgdcore import sweep
from sgdcore.sweep import executors

real = executors.run_group

def slow(group, job, arrays, progress=None):
    time.sleep(float(sys.argv[3]))  # a long group: the kill lands inside one
    return real(group, job, arrays, progress)

executors.run_group = slow
sweep.run(sweep.SweepSpec.from_toml(sys.argv[1]), sys.argv[2])
"""

KILL_SPEC = """
steps = 20
eval = {every = 10}
dtype = "float64"
backend = "numpy"
model = {kind = "mlp", hidden = 8}
data = {name = "mnist", n_train = 200, n_test = 300}
fixed = {lr = 0.1, momentum = 0.9}
[grid]
batch_size = [4, 8, 16, 32, 64]
seed = [0, 1]
"""


def test_killed_sweep_resumes_without_loss_or_duplication(tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(KILL_SPEC)
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    store = tmp_path / "store"
    err = tmp_path / "stderr.txt"
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(spec_file), str(store), "1.5"],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
        groups = store / "groups"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if groups.is_dir() and list(groups.glob("g*.parquet")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, err.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    survivors = {p.name: p.stat().st_mtime_ns for p in groups.glob("g*.parquet")}
    assert 1 <= len(survivors) < 5, survivors
    assert (store / ".lock").exists()  # the killed process could not clean up

    spec = SweepSpec.from_toml(spec_file)
    trained = []
    real = sweep.executors.run_group

    def counting(group, *a, **k):
        trained.append(group.id)
        return real(group, *a, **k)

    sweep.executors.run_group = counting
    try:
        df = sweep.run(spec, store)
    finally:
        sweep.executors.run_group = real
    assert len(trained) == 5 - len(survivors)
    assert not {f"{t}.parquet" for t in trained} & set(survivors)
    for name, mtime in survivors.items():  # finished groups were not rewritten
        assert (groups / name).stat().st_mtime_ns == mtime
    assert len(df) == 10 * 3 and not df.duplicated(["run", "step"]).any()
    fresh = sweep.run(spec, tmp_path / "fresh")
    pd.testing.assert_frame_equal(df.drop(columns="group"), fresh.drop(columns="group"))


# -- Dask ----------------------------------------------------------------------------------


def test_dask_executor_gives_the_local_result(finished, tmp_path):
    distributed = pytest.importorskip("distributed")
    spec, _, df = finished
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        out = sweep.run(spec, tmp_path / "dask", executor="dask", client=client)
    pd.testing.assert_frame_equal(out, df)
    assert sweep.load(tmp_path / "dask").attrs["complete"]


def test_dask_failures_keep_the_finished_groups(finished, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    spec, _, df = finished
    real = sweep.executors.run_group

    def flaky(group, *a, **k):  # in-process workers see the patched module
        if group.batch_size == 32:
            raise RuntimeError("worker lost its mind")
        return real(group, *a, **k)

    monkeypatch.setattr(sweep.executors, "run_group", flaky)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        why = r"1 of 2 group.*stored: .* \(B=32 K=4 steps=30\): RuntimeError: worker lost its mind$"
        with pytest.raises(sweep.SweepError, match=why):
            sweep.run(spec, tmp_path / "s", executor="dask", client=client)
    kept = sweep.load(tmp_path / "s")
    assert not kept.attrs["complete"] and set(kept["batch_size"]) == {8}
    assert not (tmp_path / "s" / ".lock").exists()
    monkeypatch.setattr(sweep.executors, "run_group", real)
    pd.testing.assert_frame_equal(sweep.run(spec, tmp_path / "s"), df)


def test_executor_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="executor must be one of"):
        sweep.run(tiny_spec(), tmp_path / "s", executor="ray")
    with pytest.raises(ValueError, match="client/scheduler are for executor='dask'"):
        sweep.run(tiny_spec(), tmp_path / "s2", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="connect_timeout must be a positive number"):
        sweep.run(tiny_spec(), tmp_path / "s3", executor="dask", connect_timeout=0)
    assert not any(tmp_path.iterdir())


# -- progress ------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_groups_and_steps_on_a_terminal_only():
    tty = _Tty()
    bar = sweep.Progress(4, done=1, stream=tty, min_interval=0.0)
    bar.start_group("B=8 K=2 steps=100", 100)
    bar(50)
    assert "1/4 groups" in bar.line() and "step 50/100" in bar.line()
    bar.finish_group()
    bar.close()
    text = tty.getvalue()
    assert "\r" in text and "2/4 groups" in text and "B=8 K=2" in text
    assert text.endswith("\n")
    pipe = io.StringIO()
    quiet = sweep.Progress(4, stream=pipe)
    quiet.start_group("x", 10)
    quiet(5)
    quiet.close()
    assert pipe.getvalue() == ""


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_eta_counts_model_steps_not_groups():
    # one small group (1 model x 100 steps), then a big one (10 models x 100 steps)
    clock = _Clock()
    bar = sweep.Progress(2, stream=_Tty(), min_interval=0.0, work=1100, clock=clock)
    assert bar.eta() is None and "eta" not in bar.line()
    bar.start_group("B=8 K=1 steps=100", 100, 1)
    clock.t = 5.0
    bar(50)
    assert bar.eta() == pytest.approx(1050 * 5.0 / 50)  # 10 model-steps a second
    clock.t = 10.0
    bar.finish_group()
    # counting groups would say 10 s (one group left, 10 s a group); the work left
    # is 1,000 model-steps at the measured 10 a second
    assert bar.eta() == pytest.approx(100.0)
    assert "eta 1:40" in bar.line()
    bar.start_group("B=8 K=10 steps=100", 100, 10)
    clock.t = 60.0
    bar(50)
    assert bar.eta() == pytest.approx(50.0)
    clock.t = 110.0
    bar.finish_group()
    assert bar.eta() == 0.0 and "eta" not in bar.line()


def test_sweep_gives_the_progress_bar_its_model_steps(monkeypatch, tmp_path):
    made = []

    class Spy(sweep.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(importlib.import_module("sgdcore.sweep.runner"), "Progress", Spy)
    spec = tiny_spec(grid={"batch_size": [8, 16], "lr": [0.1], "seed": [0, 1, 2]})
    sweep.run(spec, tmp_path / "a")
    (bar,) = made
    assert bar.work == 6 * 30 and bar.work_done == 6 * 30


def test_sweep_is_quiet_off_a_terminal_and_draws_when_asked(tmp_path, capsys):
    spec = tiny_spec(grid={"batch_size": [8, 16], "lr": [0.1]})
    sweep.run(spec, tmp_path / "a")
    assert capsys.readouterr().err == ""
    sweep.run(spec, tmp_path / "b", progress=True)
    err = capsys.readouterr().err
    assert "2/2 groups" in err and "step" in err


# -- command line --------------------------------------------------------------------------


def test_cli_sweep_runs_a_toml_spec_and_resumes(tmp_path, capsys):
    from sgdcore import cli

    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(KILL_SPEC.replace("[4, 8, 16, 32, 64]", "[8, 16]"))
    assert cli.main(["sweep", str(spec_file), "--store", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    assert "2 groups" in out and "4 runs" in out
    df = sweep.load(tmp_path / "st")
    assert len(df) == 4 * 3
    assert cli.main(["sweep", str(spec_file), "--store", str(tmp_path / "st")]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert cli.main(["sweep", str(spec_file), "--store", str(tmp_path)]) == 1
    assert "not empty and holds no sweep manifest" in capsys.readouterr().err
    argv = ["sweep", str(spec_file), "--store", str(tmp_path / "d"), "--scheduler", "x:1"]
    assert cli.main(argv) == 2
    assert "--scheduler is for --executor dask" in capsys.readouterr().err


def test_cli_sweep_on_a_dask_scheduler(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    from sgdcore import cli

    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(KILL_SPEC.replace("[4, 8, 16, 32, 64]", "[8, 16]"))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        argv = ["sweep", str(spec_file), "--store", str(tmp_path / "st")]
        argv += ["--executor", "dask", "--scheduler", cluster.scheduler_address]
        assert cli.main(argv) == 0
    assert "done: 4 runs, 12 rows" in capsys.readouterr().out
    local = sweep.run(SweepSpec.from_toml(spec_file), tmp_path / "local")
    pd.testing.assert_frame_equal(sweep.load(tmp_path / "st"), local, check_like=True)


def test_spec_docs_describe_every_key_and_their_example_parses(tmp_path):
    from sgdcore.sweep import spec as spec_module

    text = (Path(__file__).resolve().parents[1] / "docs" / "SPEC.md").read_text()

    def keys(heading):
        section = text.split(f"## {heading}\n")[1].split("\n## ")[0]
        return {m for m in re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)}

    assert keys("Top-level keys") == set(spec_module._SPEC_KEYS)
    assert keys("Run keys") == set(sweep.RUN_KEYS)
    assert keys("`data`") == set(spec_module._DATA_KEYS)
    assert keys("`model`") == set().union(*spec_module._MODEL_KEYS.values())
    example = re.search(r"## Example\n\n```toml\n(.*?)```", text, flags=re.S).group(1)
    (tmp_path / "spec.toml").write_text(example)
    spec = SweepSpec.from_toml(tmp_path / "spec.toml")
    assert len(spec.expand()) == 6 * 3
