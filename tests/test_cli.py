"""The `sgdcore` command: info, and the run targets it discovers."""

from __future__ import annotations

import subprocess
import sys

from sgdcore import cli


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
