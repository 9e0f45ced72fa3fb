"""The Numba CUDA kernels (``sgdcore/kernels/_cuda/numba_kernels.py``) against the float64
oracle. Without a GPU they run on Numba's CUDA simulator: ``.ci/run`` runs this file with
``NUMBA_ENABLE_CUDASIM=1``, and the normal test run starts that in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SIMULATOR_SUMMARY

from sgdcore import reference
from sgdcore.models import MLP, LogisticRegression

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _cuda_or_skip():
    from numba import cuda

    if not SIM and not cuda.is_available():
        pytest.skip("no CUDA GPU for Numba; the simulator run covers these tests")
    from sgdcore.kernels._cuda import numba_kernels

    return cuda, numba_kernels


MODELS = [
    LogisticRegression(5),
    LogisticRegression(4, n_classes=3),
    MLP(6, 7, 3),
]


def _factors(model, theta, X, y):
    """``[(delta, a), ...]`` per layer, and ``sum_i g_i``, from the NumPy backend."""
    from sgdcore.kernels._numpy.grads import _layers, residuals

    A, R, dA = residuals(model, theta, X, y)
    layers = [(d, a) for d, a, _, _ in _layers(model, X, A, R, dA)]
    return layers, reference.per_example_grads(model, theta, X, y).sum(axis=0)


def _data(model, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, model.n_features)).astype(dtype)
    y = rng.integers(0, model.n_classes, n)
    theta = model.init(seed, dtype) + 0.1 * rng.standard_normal(model.n_params).astype(dtype)
    return theta, X, y


# n = 1 (one thread), a partial block, exactly one block, several blocks with a tail
@pytest.mark.parametrize("n", [1, 37, 128, 300])
@pytest.mark.parametrize("net", MODELS, ids=lambda m: m.kind)
def test_squared_norms_match_the_oracle(net, n):
    model = net
    _, nk = _cuda_or_skip()
    theta, X, y = _data(model, n, np.float64)
    layers, _ = _factors(model, theta, X, y)
    got = nk.grad_sqnorms(layers).copy_to_host()
    want = reference.per_example_grad_norms(model, theta, X, y, squared=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_float32_factors_accumulate_in_float64():
    _, nk = _cuda_or_skip()
    model = MODELS[2]
    theta, X, y = _data(model, 50, np.float32)
    layers, _ = _factors(model, theta, X, y)
    got = nk.grad_sqnorms(layers).copy_to_host()
    assert got.dtype == np.float64
    want = reference.per_example_grad_norms(model, theta, X, y, squared=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 129, 300])
@pytest.mark.parametrize("net", MODELS, ids=lambda m: m.kind)
def test_noise_statistics_match_the_oracle(net, n):
    model = net
    _, nk = _cuda_or_skip()
    theta, X, y = _data(model, n, np.float64, seed=1)
    layers, gsum = _factors(model, theta, X, y)
    got = nk.noise_statistics(nk.grad_sqnorms(layers), gsum, n)
    want = reference.gradient_noise(model, theta, X, y)
    scale = want["trace_cov"] + want["grad_norm_sq"]
    assert got["grad_norm_sq"] == pytest.approx(want["grad_norm_sq"], rel=1e-12)
    assert abs(got["trace_cov"] - want["trace_cov"]) <= 1e-12 * scale
    if n > 1:
        assert got["b_simple"] == pytest.approx(want["b_simple"], rel=1e-9)


def test_zero_gradient_gives_the_oracle_limits():
    _, nk = _cuda_or_skip()
    got = nk.noise_statistics(np.zeros(3), np.zeros(4), 3)
    assert got["trace_cov"] == 0 and got["grad_norm_sq"] == 0 and np.isnan(got["b_simple"])
    got = nk.noise_statistics(np.ones(3), np.zeros(4), 3)
    assert got["b_simple"] == np.inf


def test_mismatched_rows_and_bad_n_are_refused():
    cuda, nk = _cuda_or_skip()
    out = cuda.device_array(3, dtype=np.float64)
    with pytest.raises(ValueError, match="delta has 4 rows and a 3, but out has 3"):
        nk.layer_sqnorms(np.ones((4, 2)), np.ones((3, 2)), out)
    with pytest.raises(ValueError, match="n must be at least 1"):
        nk.noise_statistics(np.ones(1), np.ones(1), 0)


@pytest.mark.skipif(SIM, reason="already running on the simulator")
def test_the_kernels_pass_on_numbas_cuda_simulator(request):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "failed" not in res.stdout
    request.config.stash[SIMULATOR_SUMMARY] = res.stdout.strip().splitlines()[-1]
