"""The Langevin sampler (sgdcore.sample) against exact posteriors, closed forms and a
hand-written loop; its diagnostics against processes with known autocorrelation.
"""

from __future__ import annotations

import numpy as np
import pytest

from sgdcore import evidence, hessian, reference
from sgdcore.models import LogisticRegression
from sgdcore.philox import batch_indices
from sgdcore.sample import (
    chain_seeds,
    effective_sample_size,
    euler_stationary_variance,
    langevin,
    split_rhat,
)

# ------------------------------------------------------------------------ diagnostics


def ar1(a, chains, n, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((chains, n))
    x = np.empty((chains, n))
    x[:, 0] = e[:, 0] / np.sqrt(1 - a * a)
    for t in range(1, n):
        x[:, t] = a * x[:, t - 1] + e[:, t]
    return x


@pytest.mark.parametrize("a", [0.0, 0.5, 0.8])
def test_ess_matches_the_integrated_autocorrelation_time_of_ar1(a):
    chains, n = 4, 20_000
    tau = (1 + a) / (1 - a)  # sum over all lags of a^|k|
    ess = effective_sample_size(ar1(a, chains, n, seed=int(10 * a)))[0]
    assert ess == pytest.approx(chains * n / tau, rel=0.12)


def test_ess_is_per_coordinate_and_blocks_do_not_mix():
    x = np.stack([ar1(0.0, 2, 4000, seed=1), ar1(0.9, 2, 4000, seed=2)], axis=-1)
    wide = np.concatenate([x] * 150, axis=-1)  # 300 coordinates: two FFT blocks
    ess = effective_sample_size(wide)
    assert ess.shape == (300,)
    np.testing.assert_allclose(ess[0::2], ess[0])
    np.testing.assert_allclose(ess[1::2], ess[1])
    assert ess[1] < ess[0] / 5


def test_split_rhat_closed_form_for_shifted_chains():
    rng = np.random.default_rng(3)
    n, d = 40_000, 0.3
    same = rng.standard_normal((2, n))
    assert abs(split_rhat(same)[0] - 1.0) < 0.005
    shifted = same + np.array([[d], [-d]])
    # four halves with means +-d: variance of the means 4 d^2 / 3; W = 1
    expected = np.sqrt((n / 2 - 1) / (n / 2) + 4 * d * d / 3)
    assert split_rhat(shifted)[0] == pytest.approx(expected, abs=0.005)
    # a drift inside one chain is caught by splitting it
    trend = same + np.linspace(-1, 1, n)[None, :]
    assert split_rhat(trend)[0] > 1.1


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (np.zeros((2, 3)), "at least 4 draws"),
        (np.zeros(5), "shape"),
        (np.full((2, 10), np.nan), "NaN"),
    ],
)
def test_diagnostics_reject_bad_samples(samples, match):
    with pytest.raises(ValueError, match=match):
        effective_sample_size(samples)


# ---------------------------------------------------------------- exact posteriors


def two_param_problem():
    """Binary logistic regression on one feature (P = 2): exact moments by quadrature."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.5, 1.0, 12)
    y = (rng.random(12) < 1 / (1 + np.exp(-(1.5 * x - 0.5)))).astype(np.int64)
    return LogisticRegression(1), x[:, None], y, 1.0


def quadrature_moments(X, y, l2):
    w = np.linspace(-6, 8, 561)
    b = np.linspace(-7, 7, 561)
    W, B = np.meshgrid(w, b, indexing="ij")
    z = W[..., None] * X[:, 0] + B[..., None]
    ce = np.where(y == 1, np.logaddexp(0, -z), np.logaddexp(0, z)).sum(-1)
    c = ce + 0.5 * l2 * (W**2 + B**2)
    p = np.exp(-(c - c.min()))
    p /= p.sum()
    mean = np.array([(p * W).sum(), (p * B).sum()])
    dw, db = W - mean[0], B - mean[1]
    cov = np.array([[(p * dw * dw).sum(), (p * dw * db).sum()], [0, (p * db * db).sum()]])
    cov[1, 0] = cov[0, 1]
    return mean, cov


def test_matches_the_exact_posterior_at_small_lr(backend):
    model, X, y, l2 = two_param_problem()
    mean, cov = quadrature_moments(X, y, l2)
    fit = evidence.fit_map(model, X, y, l2)
    lam = np.linalg.eigvalsh(hessian(model, fit.theta, X, y, l2=l2))
    lr = 0.05 * len(y) / lam[-1]  # ε λ_max / N = 0.05: Euler's inflation at most 2.6 %
    r = langevin(
        model,
        fit.theta,
        X,
        y,
        lr=lr,
        steps=12_000,
        l2=l2,
        burn_in=500,
        chains=4,
        seed=11,
        backend=backend,
    )
    assert r.backend == backend
    z = (r.mean() - mean) / r.mcse()
    assert np.all(np.abs(z) < 3), z
    assert r.ess.min() > 400
    assert r.summary()["rhat_max"] < 1.02
    assert np.trace(r.cov()) == pytest.approx(np.trace(cov), rel=0.1)
    # the Laplace mean is the MAP: the exact mean differs from it (skewed posterior)
    assert np.abs(mean - fit.theta).max() > 0.02


def test_bias_grows_with_lr_as_the_euler_recursion_predicts():
    """With X = 0 the weight's posterior is N(0, 1/l2) exactly and the sampler along it
    is a linear recursion: its variance is (1/l2) / (1 - ε l2 / 2N) at every ε."""
    model, l2 = LogisticRegression(1), 1.0
    X, y = np.zeros((1, 1)), np.array([1])
    exact_b = quadrature_moments(X, y, l2)[1][1, 1]
    errors = []
    for lr in (0.05, 0.5, 1.2):
        r = langevin(
            model, np.zeros(2), X, y, lr=lr, steps=8000, l2=l2, burn_in=200, chains=4, seed=5
        )
        w = r.samples[:, :, 0]
        var = float(w.var())
        ess_sq = effective_sample_size(w**2)[0]
        predicted = euler_stationary_variance([l2], lr, 1)[0]
        assert predicted == pytest.approx((1 / l2) / (1 - lr * l2 / 2))
        assert var == pytest.approx(predicted, rel=4 * np.sqrt(2 / ess_sq))
        errors.append(abs(np.trace(r.cov()) - (1 / l2 + exact_b)))
    assert errors[0] < errors[1] < errors[2]
    assert errors[2] > 0.5  # at ε λ / N = 1.2 the variance is inflated by 2.5x


@pytest.mark.slow
def test_785_parameters_800_digits_match_the_laplace_posterior():
    """The paper's logistic model on 800 MNIST zeros and ones, at l2 = 10."""
    from sgdcore.experiments import random_labels as rl

    pool = rl.load_pool(download=False)
    train, _ = rl.draw_split(pool, n_train=800, seed=0)
    model, X, y, l2 = LogisticRegression(784), train.X, train.y, 10.0
    assert model.n_params == 785
    fit = evidence.fit_map(model, X, y, l2)
    lam, U = np.linalg.eigh(hessian(model, fit.theta, X, y, l2=l2))
    cov = (U / lam) @ U.T
    rng = np.random.default_rng(0)
    starts = fit.theta + (rng.standard_normal((4, 785)) / np.sqrt(lam)) @ U.T
    lr = 0.25 * 800 / lam[-1]
    r = langevin(
        model,
        np.ascontiguousarray(starts),
        X,
        y,
        lr=lr,
        steps=4000,
        l2=l2,
        burn_in=200,
        thin=4,
        chains=4,
        seed=0,
    )
    z = (r.mean() - fit.theta) / r.mcse()
    assert np.mean(np.abs(z) < 3) >= 0.98  # 0.9973 expected
    assert np.sqrt(np.mean(z**2)) < 1.3
    trace = np.trace(r.cov())
    assert trace == pytest.approx(np.trace(cov), rel=0.10)
    assert trace == pytest.approx(euler_stationary_variance(lam, lr, 800).sum(), rel=0.05)


# ---------------------------------------------------------------- the update itself


def hand_loop(model, theta, X, y, lr, l2, T, steps, seed, chain, batch_size):
    """Eq. 14 written out with the float64 oracle's gradient."""
    n = len(y)
    rng, key = chain_seeds(seed, chain)
    batches = batch_indices(key, n, batch_size, steps) if batch_size < n else None
    out = []
    theta = theta.astype(np.float64).copy()
    for t in range(steps):
        idx = np.arange(n) if batches is None else batches[t]
        g = (n / len(idx)) * reference.grad(model, theta, X[idx], y[idx]) + l2 * theta
        theta = theta - (lr / n) * g + np.sqrt(2 * lr * T / n) * rng.standard_normal(theta.size)
        out.append(theta)
    return np.array(out)


@pytest.mark.parametrize("batch_size", [40, 7], ids=["full", "minibatch"])
@pytest.mark.parametrize("classes", [2, 3])
def test_steps_equal_a_hand_written_loop(backend, batch_size, classes):
    model = LogisticRegression(5, classes)
    rng = np.random.default_rng(1)
    X = rng.random((40, 5))
    y = rng.integers(0, classes, 40)
    theta = model.init(2)
    kw = dict(lr=0.3, l2=0.5, temperature=0.7, seed=9)
    r = langevin(
        model, theta, X, y, steps=30, chains=2, batch_size=batch_size, backend=backend, **kw
    )
    for c in range(2):
        ref = hand_loop(model, theta, X, y, 0.3, 0.5, 0.7, 30, 9, c, batch_size)
        np.testing.assert_allclose(r.samples[c], ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(r.sample_steps, np.arange(1, 31))


def test_same_seed_same_samples_and_chains_independent_of_their_number():
    model, X, y, l2 = two_param_problem()
    kw = dict(lr=0.2, steps=50, l2=l2, batch_size=5, seed=4, thin=5, burn_in=10)
    a = langevin(model, np.zeros(2), X, y, chains=3, **kw)
    b = langevin(model, np.zeros(2), X, y, chains=3, **kw)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.cost, b.cost)
    one = langevin(model, np.zeros(2), X, y, chains=2, **kw)
    np.testing.assert_array_equal(one.samples, a.samples[:2])
    other = langevin(model, np.zeros(2), X, y, chains=3, **{**kw, "seed": 5})
    assert not np.allclose(other.samples, a.samples)
    np.testing.assert_array_equal(a.sample_steps, [15, 20, 25, 30, 35, 40, 45, 50])
    assert a.samples.shape == (3, 8, 2)


def test_float32_follows_float64():
    model, X, y, l2 = two_param_problem()
    kw = dict(lr=0.2, steps=40, l2=l2, seed=1, chains=1)
    r64 = langevin(model, np.zeros(2), X, y, **kw)
    r32 = langevin(model, np.zeros(2, np.float32), X.astype(np.float32), y, **kw)
    assert r32.samples.dtype == np.float32
    np.testing.assert_allclose(r32.samples, r64.samples, rtol=1e-4, atol=1e-5)


def test_cost_trace_is_the_summed_cost_at_each_start():
    model, X, y, l2 = two_param_problem()
    r = langevin(model, np.zeros(2), X, y, lr=0.1, steps=5, l2=l2, seed=0)
    assert r.cost[0, 0] == pytest.approx(len(y) * np.log(2))
    assert r.cost[0, 3] == pytest.approx(reference.loss(model, r.samples[0, 2], X, y, l2=l2))


# ------------------------------------------------------------------------ bad input


def good():
    model, X, y, _ = two_param_problem()
    return {
        "model": model,
        "theta0": np.zeros(2),
        "X": X,
        "y": y,
        "lr": 0.1,
        "steps": 10,
        "l2": 1.0,
    }


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
        ({"lr": np.nan}, ValueError, "lr must be"),
        ({"lr": "fast"}, TypeError, "lr must be a number"),
        ({"steps": 0}, ValueError, "steps must be >= 1"),
        ({"steps": 2.5}, TypeError, "steps must be an integer"),
        ({"thin": 0}, ValueError, "thin must be >= 1"),
        ({"burn_in": 10}, ValueError, "burn_in must be below steps"),
        ({"chains": 0}, ValueError, "chains must be >= 1"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": 13}, ValueError, "batch_size must be <= N = 12"),
        ({"temperature": 0.0}, ValueError, "temperature must be"),
        ({"l2": -1.0}, ValueError, "l2 must be"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"theta0": np.zeros(3)}, ValueError, r"theta must have shape \(2,\)"),
        ({"theta0": np.zeros((3, 2)), "chains": 2}, ValueError, r"chains=2"),
        ({"theta0": [0.0, 0.0]}, TypeError, "theta0 must be a NumPy array"),
        ({"X": np.zeros((12, 1), np.float32)}, TypeError, "X has dtype float32"),
        ({"X": np.full((12, 1), np.nan)}, ValueError, "X contains NaN"),
        ({"y": np.full(12, 2)}, ValueError, "outside"),
        ({"model": "logistic"}, TypeError, "model must be an sgdcore model"),
    ],
)
def test_bad_input_is_named(change, error, match):
    kw = {**good(), **change}
    with pytest.raises(error, match=match):
        langevin(kw.pop("model"), kw.pop("theta0"), kw.pop("X"), kw.pop("y"), **kw)


def test_a_diverging_chain_is_reported():
    kw = good()
    with pytest.raises(FloatingPointError, match="chain 0 left the finite numbers"):
        langevin(
            kw.pop("model"),
            kw.pop("theta0"),
            kw.pop("X"),
            kw.pop("y"),
            **{**kw, "lr": 1e6, "steps": 200},
        )
