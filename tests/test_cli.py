"""The `sgdcore` command: info, run targets, errors as one line, Ctrl-C, `show`."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sgdcore
from sgdcore import cli, sweep

sweep_run_module = importlib.import_module("sgdcore.sweep.runner")


def test_info_reports_backends_blas_and_data(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cpp    usable" in out and "numba  usable" in out and "numpy  usable" in out
    assert "loss_and_grad" in out
    assert "BLAS from scipy.linalg.cython_blas" in out
    assert "threads=" in out
    assert "MNIST" in out


def test_entry_point_runs_in_a_fresh_process():
    res = subprocess.run(
        [sys.executable, "-m", "sgdcore", "info"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "auto -> cpp" in res.stdout


def test_unknown_command_is_an_error(capsys):
    try:
        cli.main(["frobnicate"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err


# -- one error path -------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep.toml"

# the example spec, made quicker: 2 groups of 4 runs, 20 steps, evaluated at 0 and 20
SPEC = EXAMPLE.read_text().replace("steps = 200", "steps = 20")


def one_error_line(err: str) -> str:
    """The single line an error prints; fails on a traceback or several lines."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sgdcore: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sgdcore {sgdcore.__version__}"


def test_info_reports_a_bad_sgdcore_backend_instead_of_crashing(monkeypatch, capsys):
    monkeypatch.setenv("SGDCORE_BACKEND", "foo")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    (auto,) = [ln for ln in out.splitlines() if "auto ->" in ln]
    assert "SGDCORE_BACKEND" in auto and "'foo'" in auto
    assert "cpp    usable" in out


@pytest.mark.parametrize("value", ["foo", "absent"])
def test_bad_sgdcore_backend_is_one_line_naming_the_variable(
    monkeypatch, capsys, spec_file, tmp_path, value, missing_backend
):
    monkeypatch.setenv("SGDCORE_BACKEND", value)
    store = tmp_path / "store"
    assert cli.main(["sweep", str(spec_file), "--store", str(store)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"SGDCORE_BACKEND={value!r}" in line
    assert not store.exists()


def test_library_error_names_sgdcore_backend(monkeypatch):
    monkeypatch.setenv("SGDCORE_BACKEND", "foo")
    with pytest.raises(
        ValueError, match="'foo' \\(set by the environment variable SGDCORE_BACKEND"
    ):
        sgdcore._backend.resolve("auto")


def test_unavailable_backend_in_a_spec_fails_validation_before_any_store(
    capsys, spec_file, tmp_path, missing_backend
):
    spec_file.write_text(SPEC.replace('backend = "auto"', 'backend = "absent"'))
    store = tmp_path / "store"
    assert cli.main(["sweep", str(spec_file), "--store", str(store)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(spec_file) in line and "backend = 'absent'" in line and "not usable" in line
    assert not store.exists()
    with pytest.raises(sweep.SpecError, match="backend = 'absent' is not usable"):
        sweep.SweepSpec(grid={"batch_size": [8]}, fixed={"lr": 0.1}, steps=5, backend="absent")


def _interrupt_after(n_groups: int):
    """A stand-in for the local executor: runs ``n_groups`` groups, then Ctrl-C."""
    real = sweep_run_module.run_local

    def run_local(groups, job, arrays, bar=None):
        for i, item in enumerate(real(groups, job, arrays, bar)):
            if i == n_groups:
                break
            yield item
        raise KeyboardInterrupt

    return run_local


def test_ctrl_c_says_what_was_kept_and_how_to_resume(monkeypatch, capsys, spec_file, tmp_path):
    store = tmp_path / "store"
    argv = ["sweep", str(spec_file), "--store", str(store)]
    with monkeypatch.context() as m:
        m.setattr(sweep_run_module, "run_local", _interrupt_after(1))
        assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert err.strip() == (
        f"interrupted: 1 of 2 groups kept in {store}; rerun the same command to resume"
    )
    assert cli.main(["show", str(store)]) == 0
    assert "1 of 2 groups done (4 of 8 runs)" in capsys.readouterr().out
    assert cli.main(argv) == 0
    assert "1 finished, 1 to run" in capsys.readouterr().out
    assert len(sweep.load(store)) == 8 * 2


def test_ctrl_c_before_the_first_group_leaves_nothing(monkeypatch, capsys, spec_file, tmp_path):
    store = tmp_path / "new" / "store"
    monkeypatch.setattr(sweep_run_module, "run_local", _interrupt_after(0))
    assert cli.main(["sweep", str(spec_file), "--store", str(store)]) == 130
    assert "nothing was kept" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["sweep", str(spec_file), "--store", str(empty)]) == 130
    assert list(empty.iterdir()) == []


def test_failure_in_the_first_group_leaves_nothing(monkeypatch, capsys, spec_file, tmp_path):
    def broken(groups, job, arrays, bar=None):
        raise ValueError("the engine failed")
        yield

    monkeypatch.setattr(sweep_run_module, "run_local", broken)
    store = tmp_path / "store"
    assert cli.main(["sweep", str(spec_file), "--store", str(store)]) == 1
    assert one_error_line(capsys.readouterr().err) == "sgdcore: error: the engine failed"
    assert not store.exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--seeds", "0"),
        ("--lr", "-1"),
        ("--steps", "0"),
        ("--momentum", "1.0"),
        ("--backend", "foo"),
        ("--hidden", "0"),
    ],
)
def test_run_flag_errors_name_the_flag_and_make_nothing(capsys, tmp_path, flag, value):
    out = tmp_path / "out"
    assert cli.main(["run", "batch-size", "--quick", "--out", str(out), flag, value]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"argument {flag}:" in line and repr(value) in line
    assert "grid[" not in line and "keeps its sweep" not in line and "store" not in line
    assert not out.exists()


def test_run_store_clash_says_what_to_do_without_store_flag(capsys, tmp_path):
    out = tmp_path / "out"
    (out / "store").mkdir(parents=True)
    (out / "store" / "notes.txt").write_text("mine")
    argv = ["run", "batch-size", "--quick", "--out", str(out), "--steps", "2", "--hidden", "4"]
    assert cli.main([*argv, "--seeds", "1"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"--out {out}" in line and "give another --out, or delete that folder" in line
    assert "--store" not in line
    assert sorted(p.name for p in out.rglob("*")) == ["notes.txt", "store"]


def test_runtime_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    assert cli.main(["show", str(tmp_path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(tmp_path) in line and "manifest.json" in line
    assert cli.main(["show", str(tmp_path), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == line
    monkeypatch.setenv("SGDCORE_DEBUG", "1")
    assert cli.main(["show", str(tmp_path)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2_in_one_line(capsys, tmp_path):
    assert cli.main(["sweep", str(tmp_path / "missing.toml"), "--store", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "missing.toml does not exist" in line
    assert cli.main(["sweep"]) == 2
    assert "the following arguments are required: spec" in one_error_line(capsys.readouterr().err)


def test_a_failed_run_in_a_real_process_prints_one_line(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "sgdcore", "run", "batch-size", "--quick", "--seeds", "0"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stdout == ""
    assert one_error_line(res.stderr).startswith("sgdcore: error: argument --seeds:")
    assert not out.exists()


# -- results -----------------------------------------------------------------------------------


def test_example_spec_runs_and_show_prints_and_exports_it(capsys, tmp_path):
    store = tmp_path / "example"
    assert cli.main(["sweep", str(EXAMPLE), "--store", str(store)]) == 0
    assert f"sgdcore show {store}" in capsys.readouterr().out
    csv, parquet = tmp_path / "all.csv", tmp_path / "all.parquet"
    argv = ["show", str(store), "--csv", str(csv), "--parquet", str(parquet)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    df = sweep.load(store)
    n_runs = df["run"].nunique()
    spec = sweep.SweepSpec.from_toml(EXAMPLE)
    assert n_runs == len(spec.expand())
    assert f"2 of 2 groups done ({n_runs} of {n_runs} runs)" in out
    # the table of runs: one line per run with its final test accuracy
    final = df[df["step"] == df["total_steps"]].set_index("run")
    runs = out.split("finished runs:")[1].split("\nwrote ")[0].strip().splitlines()
    assert f"wrote {len(df)} rows ({n_runs} runs) to {csv}" in out
    assert len(runs) == 1 + n_runs
    for line in runs[1:]:
        run, *_, acc, _ce, _tce, _div = line.split()
        assert float(acc) == pytest.approx(final.loc[int(run), "test_accuracy"], abs=5e-4)
    # the summary per group: the mean final accuracy of its runs
    for gid, sub in final.groupby("group"):
        (row,) = [ln for ln in out.splitlines() if ln.strip().startswith(gid)]
        assert f"{sub['test_accuracy'].mean():.4g}" in row.split()
    exported = pd.read_csv(csv)
    pd.testing.assert_frame_equal(exported, df.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), df, check_like=True)
    assert cli.main(["show", str(store), "--csv", str(tmp_path / "x.txt")]) == 2
    assert "--csv" in one_error_line(capsys.readouterr().err)
    assert cli.main(["show", str(store), "--max-runs", "3"]) == 0
    assert f"{n_runs - 3} more runs" in capsys.readouterr().out


def test_run_prints_figure_paths_not_markdown_image_links(capsys, tmp_path):
    out = tmp_path / "bs"
    argv = ["run", "batch-size", "--quick", "--out", str(out), "--steps", "4", "--hidden", "4"]
    assert cli.main([*argv, "--seeds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "![" not in printed and "](" not in printed
    figures = re.findall(r"^figure: (.+)$", printed, flags=re.M)
    assert figures and all(Path(f).is_file() for f in figures)
    assert "![" in (out / "summary.md").read_text()  # the report keeps its links


def _truncated_idx(folder: Path) -> None:
    """MNIST IDX files whose training images stop half-way through."""
    import struct

    import numpy as np

    folder.mkdir()
    for split, n in (("train", 60), ("t10k", 20)):
        images = struct.pack(">IIII", 0x803, n, 28, 28) + bytes(n * 28 * 28)
        labels = struct.pack(">II", 0x801, n) + bytes(np.arange(n, dtype=np.uint8) % 10)
        if split == "train":
            images = images[: len(images) // 2]
        (folder / f"{split}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(labels)


@pytest.mark.parametrize("data", ["missing", "truncated"])
def test_data_errors_are_one_line_and_leave_nothing(monkeypatch, capsys, spec_file, tmp_path, data):
    folder = tmp_path / "mnist"
    if data == "truncated":
        _truncated_idx(folder)
    monkeypatch.setenv("SGDCORE_DATA", str(folder))
    store = tmp_path / "store"
    assert cli.main(["sweep", str(spec_file), "--store", str(store)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "SGDCORE_DATA" in line or str(folder) in line
    assert not store.exists()
