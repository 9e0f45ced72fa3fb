"""Sweeps on a real Dask cluster: the same results as in-process, and the faults a cluster
meets (a worker killed mid-group, the client killed mid-sweep, no scheduler to reach).

The cluster is a ``LocalCluster`` of two worker processes with one thread each, shared
by the module. Every result is compared, bit for bit, with the same sweep run by the
local executor (itself checked against direct engine calls in ``test_sweep.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from sgdcore import sweep
from sgdcore.sweep import SweepError, SweepSpec
from sgdcore.sweep.executors import local_slices

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]

# Four groups (one per batch size) of two models, each a second or so of work: long
# enough to kill a worker or the client while a group runs.
SPEC_TOML = """
name = "dask-faults"
steps = 300
eval = {every = 100}
dtype = "float64"
backend = "numpy"
model = {kind = "mlp", hidden = 8}
data = {name = "mnist", n_train = 200, n_test = 300, seed = 0}
fixed = {lr = 0.1, momentum = 0.9}
[grid]
batch_size = [8, 16, 32, 64]
seed = [0, 1]
"""


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(SPEC_TOML)
    return path


@pytest.fixture(scope="module")
def local(spec_file, tmp_path_factory) -> pd.DataFrame:
    """The sweep run in this process, the reference for every cluster run."""
    return sweep.run(SweepSpec.from_toml(spec_file), tmp_path_factory.mktemp("local") / "s")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def assert_same(df: pd.DataFrame, local: pd.DataFrame) -> None:
    """Every run exactly once, every number bitwise equal to the local executor's."""
    assert not df.duplicated(["run", "step"]).any()
    pd.testing.assert_frame_equal(df, local, check_exact=True)


def _executing(dask_worker) -> list[str]:
    """The sgdcore group tasks a worker is running right now."""
    return [
        str(key)
        for key, ts in dask_worker.state.tasks.items()
        if ts.state == "executing" and str(key).startswith("sgdcore-g")
    ]


def wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# -- results ---------------------------------------------------------------------------------


def test_two_worker_processes_give_the_local_result_bitwise(spec_file, local, client, tmp_path):
    spec = SweepSpec.from_toml(spec_file)
    df = sweep.run(spec, tmp_path / "s", executor="dask", scheduler=client)  # or client=
    assert_same(df, local)
    assert_same(sweep.load(tmp_path / "s"), local)
    # the groups were trained by the worker processes, none in this one (which workers
    # got them is the scheduler's choice: on a busy machine one may take them all)
    store = sweep.ResultStore(tmp_path / "s", sweep.read_manifest(tmp_path / "s"))
    pids = {store.group_info(g["id"])["pid"] for g in store.manifest["groups"]}
    assert pids and pids <= set(client.run(os.getpid).values())
    assert os.getpid() not in pids


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_killed_mid_group_is_retried_and_nothing_is_duplicated(
    spec_file, local, client, tmp_path
):
    pids = client.run(os.getpid)
    store = tmp_path / "s"
    out: dict = {}

    def sweep_in_background():
        try:
            out["df"] = sweep.run(
                SweepSpec.from_toml(spec_file), store, executor="dask", client=client
            )
        except BaseException as exc:  # handed to the test thread below
            out["error"] = exc

    thread = threading.Thread(target=sweep_in_background)
    thread.start()
    busy = wait_for(
        lambda: {w: keys for w, keys in client.run(_executing).items() if keys},
        "a worker to start a group",
    )
    worker, (key,) = next(iter(busy.items()))
    os.kill(pids[worker], signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]
    assert_same(out["df"], local)
    assert_same(sweep.load(store), local)
    # the killed group was started twice: on the killed worker and again elsewhere
    starts = [
        t for t in client.story(key) if t[0] == "scheduler" and t[1] == key and t[3] == "processing"
    ]
    assert len(starts) == 2, starts
    assert pids[worker] not in client.run(os.getpid).values()  # the nanny started a new one


@pytest.mark.slow
def test_client_killed_mid_sweep_resumes_to_the_local_result(spec_file, local, client, tmp_path):
    store = tmp_path / "s"
    groups = store / "groups"
    argv = [sys.executable, "-m", "sgdcore", "sweep", str(spec_file), "--store", str(store)]
    argv += ["--executor", "dask", "--scheduler", client.scheduler.address, "--no-progress"]
    with (tmp_path / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for(
                lambda: proc.poll() is not None or list(groups.glob("g*.parquet")),
                "the first group to be stored",
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    survivors = {p.name: p.stat().st_mtime_ns for p in groups.glob("g*.parquet")}
    assert 1 <= len(survivors) < 4, survivors
    assert (store / ".lock").exists()  # the killed client could not clean up

    df = sweep.run(SweepSpec.from_toml(spec_file), store, executor="dask", client=client)
    assert_same(df, local)
    for name, mtime in survivors.items():  # finished groups were kept, not retrained
        assert (groups / name).stat().st_mtime_ns == mtime
    assert not (store / ".lock").exists()


def _free_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_and_leaves_no_store(spec_file, tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    store = tmp_path / "s"
    argv = [sys.executable, "-m", "sgdcore", "sweep", str(spec_file), "--store", str(store)]
    argv += ["--executor", "dask", "--scheduler", address, "--connect-timeout", "2"]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"cannot reach the Dask scheduler at {address} within 2 s (--scheduler)" in lines[0]
    assert "dask scheduler" in lines[0] and "dask worker" in lines[0]
    assert seconds < 60  # not the 30 s default of distributed, twice over (loose: busy CI)
    assert not store.exists()

    with pytest.raises(SweepError, match="cannot reach the Dask scheduler"):
        spec = SweepSpec.from_toml(spec_file)
        sweep.run(spec, store, executor="dask", scheduler=address, connect_timeout=1)
    assert not store.exists()
    with pytest.raises(SweepError, match="'localhost:http' is not a Dask scheduler address"):
        sweep.run(spec, store, executor="dask", scheduler="localhost:http")
    assert not store.exists()


def test_without_dask_the_error_says_how_to_get_it(spec_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what a missing package gives
    with pytest.raises(SweepError, match=r"pip install 'sgdcore\[dask\]'"):
        sweep.run(SweepSpec.from_toml(spec_file), tmp_path / "s", executor="dask")
    assert not (tmp_path / "s").exists()


def test_malformed_scheduler_address_is_one_line_without_a_hang(spec_file, tmp_path):
    # a client made on a malformed address hangs the interpreter's exit for 20 s and
    # prints a traceback: the address must be checked before any client is made
    store = tmp_path / "s"
    argv = [sys.executable, "-m", "sgdcore", "sweep", str(spec_file), "--store", str(store)]
    argv += ["--executor", "dask", "--scheduler", "http://localhost:8786"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'http://localhost:8786' is not a Dask scheduler address (--scheduler)" in lines[0]
    assert "unknown address scheme 'http'" in lines[0]
    assert not store.exists()


def test_local_slices_share_the_cores_without_overlap():
    cores = sorted(os.sched_getaffinity(0))
    for n_groups in (1, 2, 3, len(cores), 10 * len(cores)):
        slices = local_slices(n_groups)
        assert len(slices) == min(n_groups, len(cores))
        assert sorted(c for s in slices for c in s) == cores
        assert max(map(len, slices)) - min(map(len, slices)) <= 1


@pytest.mark.slow
def test_cli_executor_dask_starts_and_closes_a_local_cluster(spec_file, local, tmp_path, capsys):
    from sgdcore import cli

    store = tmp_path / "s"
    argv = ["sweep", str(spec_file), "--store", str(store), "--executor", "dask"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    n = len(local_slices(4))
    assert f"Dask local cluster: {n} worker process(es)" in out
    assert "done: 8 runs, 32 rows" in out
    assert_same(sweep.load(store), local)
    # each group was trained in a worker process confined to its share of the cores
    st = sweep.ResultStore(store, sweep.read_manifest(store))
    infos = [st.group_info(g["id"]) for g in st.manifest["groups"]]
    assert os.getpid() not in {i["pid"] for i in infos}
    assert {i["cores"] for i in infos} <= set(map(len, local_slices(4)))


def test_failures_are_summed_up_one_line_per_reason(spec_file):
    from sgdcore.sweep.executors import _failure_message

    groups = sweep.make_groups(SweepSpec.from_toml(spec_file), 784, 10)
    one = _failure_message({"OSError: disk full": groups}, len(groups))
    assert one == (
        "4 of 4 group(s) failed: "
        + ", ".join(f"{g.id} ({g.describe()})" for g in groups[:3])
        + " and 1 more: OSError: disk full"
    )
    two = _failure_message({"A: x": groups[:1], "B: y": groups[2:3]}, len(groups))
    assert two.splitlines() == [
        "2 of 4 group(s) failed; the other groups were stored:",
        f"  {groups[0].id} ({groups[0].describe()}): A: x",
        f"  {groups[2].id} ({groups[2].describe()}): B: y",
    ]
