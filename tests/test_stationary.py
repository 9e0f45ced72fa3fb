"""Stationary fluctuations of momentum SGD (sgdcore.stationary): the SDE's prediction with
the noise scale g = ε(N/B - 1)/(1 - m) and the exact discrete answer, against simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from sgdcore import reference
from sgdcore.experiments.momentum_noise import logistic_problem
from sgdcore.sample import effective_sample_size
from sgdcore.stationary import (
    discrete_stationary_cov,
    minibatch_noise_cov,
    sde_stationary_cov,
    simulate_quadratic,
    simulate_sgd,
)
from sgdcore.theory import noise_scale


def variance_and_error(samples):
    """Per-coordinate E[x^2] of zero-mean samples and its Monte-Carlo standard error."""
    sq = samples**2
    ess = effective_sample_size(sq)
    return sq.mean(axis=(0, 1)), sq.std(axis=(0, 1)) / np.sqrt(ess)


@pytest.mark.parametrize("m", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("eps", [0.01, 0.3, 1.5])
def test_one_dimensional_closed_forms(eps, m):
    h, s2 = 0.8, 2.5
    sde = eps * s2 / (2 * h * (1 - m))
    exact = eps * s2 * (1 + m) / ((1 - m) * h * (2 * (1 + m) - eps * h))
    assert sde_stationary_cov(h, s2, eps, m)[0, 0] == pytest.approx(sde, rel=1e-12)
    assert discrete_stationary_cov(h, s2, eps, m)[0, 0] == pytest.approx(exact, rel=1e-10)


def test_the_sde_is_the_small_lr_limit_of_the_recursion():
    H = np.array([[1.0, 0.3], [0.3, 0.5]])
    S = np.array([[0.4, -0.1], [-0.1, 0.2]])
    for m in (0.0, 0.9):
        sde = sde_stationary_cov(H, S, 1e-5, m)
        assert np.allclose(discrete_stationary_cov(H, S, 1e-5, m), sde, rtol=1e-4)
        # Lyapunov: H Σ + Σ H = ε/(1-m) S
        assert np.allclose(H @ sde + sde @ H, 1e-5 / (1 - m) * S)


def test_noise_cov_carries_the_noise_scale():
    F = np.diag([2.0, 0.5])
    n, b, eps, m = 1000, 30, 0.1, 0.9
    S = minibatch_noise_cov(F, n, b)
    g = noise_scale(eps, n, b, m)
    # H Σ + Σ H = (g / N) F: the paper's temperature
    sigma = sde_stationary_cov(np.eye(2), S, eps, m)
    assert np.allclose(2 * sigma, g / n * F)
    exact = minibatch_noise_cov(F, n, b, exact=True)
    assert np.allclose(exact, F * (n - b) / (b * (n - 1)))
    assert np.allclose(minibatch_noise_cov(F, n, n), 0.0)


def test_unstable_momentum_sgd_has_no_stationary_distribution():
    with pytest.raises(ValueError, match=r"unstable at lr = 4.*2 \(1 \+ m\) = 3.8"):
        discrete_stationary_cov(1.0, 1.0, 4.0, 0.9)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.eye(2), np.eye(3), 0.1), "same shape"),
        ((-np.eye(2), np.eye(2), 0.1), "positive definite"),
        ((np.array([[1.0, 2.0], [0.0, 1.0]]), np.eye(2), 0.1), "symmetric"),
        ((np.eye(2), np.eye(2), 0.0), "lr must be"),
        ((np.eye(2), np.eye(2), 0.1, 1.0), "momentum must be in"),
    ],
)
def test_bad_input_is_named(args, match):
    with pytest.raises(ValueError, match=match):
        sde_stationary_cov(*args)


# One grid of (ε, B, m) on a quadratic with known Hessian and per-example covariance.
H = np.diag([1.0, 0.25])
F = np.diag([1.0, 4.0])
N = 1000
GRID = [
    (0.002, 10, 0.9),
    (0.01, 100, 0.0),
    (0.01, 1, 0.5),
    (0.5, 10, 0.0),
    (1.2, 10, 0.0),
    (0.5, 100, 0.9),
    (2.5, 10, 0.9),
]


@pytest.mark.parametrize(("eps", "b", "m"), GRID)
def test_simulation_matches_the_recursion_everywhere_and_the_sde_at_small_lr(eps, b, m):
    S = minibatch_noise_cov(F, N, b)
    relax = (1 - m) / (eps * 0.25) if m else 1 / (eps * 0.25)  # slowest direction, steps
    steps = int(min(max(60 * relax, 3000), 60_000))
    x = simulate_quadratic(
        H, S, eps, m, steps=steps, burn_in=int(min(10 * relax, steps // 4)), replicas=32, seed=3
    )
    var, err = variance_and_error(x)
    exact = np.diag(discrete_stationary_cov(H, S, eps, m))
    sde = np.diag(sde_stationary_cov(H, S, eps, m))
    assert np.all(np.abs(var - exact) < 4 * err), (var, exact, err)
    gap = np.abs(exact / sde - 1)  # the SDE's error, known in closed form
    small = gap < err / var
    assert np.all(np.abs(var - sde)[small] < 4.5 * err[small])
    large = gap > 10 * err / var
    assert np.all(np.abs(var - sde)[large] > 4 * err[large])  # the SDE limit has broken
    if eps * 1.0 > 0.5 * (1 + m):
        assert large[0]


def test_non_commuting_noise_and_hessian():
    Hn = np.array([[1.0, 0.4], [0.4, 0.6]])
    Sn = np.array([[0.5, 0.3], [0.3, 0.4]])
    eps, m = 0.4, 0.5
    x = simulate_quadratic(Hn, Sn, eps, m, steps=40_000, burn_in=200, replicas=16, seed=1)
    emp = np.einsum("rti,rtj->ij", x, x) / (x.shape[0] * x.shape[1])
    exact = discrete_stationary_cov(Hn, Sn, eps, m)
    np.testing.assert_allclose(emp, exact, rtol=0.05, atol=0.05 * exact[0, 0])


def test_logistic_regression_near_its_map_follows_the_noise_scale():
    model, X, y, l2, theta, Hm, Fm = logistic_problem(seed=0)
    n = X.shape[0]
    G = reference.per_example_grads(model, theta, X, y)
    np.testing.assert_allclose(Fm, G.T @ G / n - np.outer(G.mean(0), G.mean(0)), rtol=1e-9)
    eps, b, m = 0.05, 10, 0.9
    S = minibatch_noise_cov(Fm, n, b, exact=True)
    x = simulate_sgd(
        model,
        theta,
        X,
        y,
        lr=eps,
        momentum=m,
        batch_size=b,
        l2=l2,
        steps=6000,
        burn_in=300,
        replicas=8,
        thin=2,
        seed=0,
    )
    dev = x - theta
    tr = np.einsum("rti,rti->rt", dev, dev)
    ess = effective_sample_size(tr)[0]
    measured, err = tr.mean(), tr.std() / np.sqrt(ess)
    sde = np.trace(sde_stationary_cov(Hm, S, eps, m))
    exact = np.trace(discrete_stationary_cov(Hm, S, eps, m))
    assert abs(exact / sde - 1) < 0.02  # the SDE limit holds here
    assert measured == pytest.approx(sde, abs=4 * err + 0.03 * sde)
