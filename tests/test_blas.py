"""The thread rule of ``sgdcore._blas``: hot paths never call NumPy's own BLAS, and the
helpers that replace it compute the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgdcore import _blas

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_hot_paths_never_wake_numpys_blas_threads():
    # A fresh process (tests/blas_sentinel.py) finds NumPy's OpenBLAS workers as the
    # threads its import starts, then runs losses, gradients and noise statistics, HVPs,
    # Lanczos, Hutch++, SLQ and every training engine, and reports how long those workers
    # ran: any `theta @ theta`, `np.dot` or `np.linalg.norm` on a large vector wakes them.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENBLAS_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "blas_sentinel.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["numpy_workers"] == 0:
        pytest.skip("NumPy's BLAS runs no worker threads here (one core)")
    woke = {path: ns for path, ns in report["ns"].items() if ns > 0}
    assert report["ns"] and not woke, f"NumPy's BLAS threads ran (ns) during: {woke}"


def test_vector_helpers_match_float64_sums(dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(10_001).astype(dtype)
    b = rng.standard_normal(10_001).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = float(np.sum(a64 * b64))
    assert _blas.dot(a, b) == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert _blas.sqnorm(a) == pytest.approx(float(np.sum(a64 * a64)), rel=1e-12)
    assert _blas.norm(a) == pytest.approx(float(np.sqrt(np.sum(a64 * a64))), rel=1e-12)
    assert isinstance(_blas.dot(a, b), float) and _blas.norm(np.zeros(3)) == 0.0
