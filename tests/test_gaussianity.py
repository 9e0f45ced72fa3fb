"""The Gaussianity statistics (sgdcore.gaussianity) against scipy.stats and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sgdcore import gaussianity as gs

RNG = np.random.default_rng(7)
SAMPLES = {
    "normal": RNG.standard_normal(3000),
    "exponential": RNG.exponential(size=3000),
    "student-t5": RNG.standard_t(5, size=3000),
    "two-peaks": np.concatenate([RNG.normal(-2, 0.5, 1500), RNG.normal(2, 0.5, 1500)]),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_moments_and_ks_match_scipy(name):
    x = SAMPLES[name]
    assert gs.skewness(x) == pytest.approx(stats.skew(x, bias=True), rel=1e-12, abs=1e-14)
    assert gs.excess_kurtosis(x) == pytest.approx(stats.kurtosis(x, bias=True), rel=1e-12)
    want = stats.kstest(x, "norm", args=(x.mean(), x.std())).statistic
    assert gs.ks_distance(x) == pytest.approx(want, rel=1e-12)


def test_vectorised_moments_match_rows():
    X = RNG.exponential(size=(5, 200))
    np.testing.assert_allclose(gs.skewness(X, axis=-1), stats.skew(X, axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        gs.excess_kurtosis(X, axis=-1), stats.kurtosis(X, axis=1), rtol=1e-12
    )


def test_ks_critical_matches_lilliefors_and_rejects_at_its_level():
    n = 400
    crit = gs.ks_critical(n, 0.05, n_mc=2000, seed=1)
    # Lilliefors' large-sample 5% value 0.886/sqrt(n) (within the Monte-Carlo error)
    assert crit == pytest.approx(0.886 / np.sqrt(n), rel=0.05)
    # fresh Gaussian samples exceed it about 5% of the time: 400 draws, binomial sd 1.1%
    rng = np.random.default_rng(99)
    rate = np.mean([gs.ks_distance(rng.standard_normal(n)) > crit for _ in range(400)])
    assert abs(rate - 0.05) <= 4 * np.sqrt(0.05 * 0.95 / 400) + 0.01
    # and a two-peaked sample is rejected
    assert gs.ks_distance(SAMPLES["two-peaks"][::7][:n]) > crit


def test_bootstrap_interval_covers_the_truth_at_its_level():
    """Exponential samples (skewness 2): the 90% interval covers 2 in most of 60
    repetitions (percentile bootstrap of a skewness undercovers a little)."""
    rng = np.random.default_rng(3)
    hits = 0
    for r in range(60):
        x = rng.exponential(size=2000)
        lo, hi = gs.bootstrap_interval(x, gs.skewness, n_boot=300, ci=0.9, seed=r)
        assert lo < gs.skewness(x) < hi
        hits += lo <= 2.0 <= hi
    assert hits >= 42  # coverage >= 70%; a broken interval covers far less


def test_iid_means_follow_the_clt_closed_form():
    """Means of B i.i.d. exponentials are Gamma(B, 1/B): skewness 2/sqrt(B), excess
    kurtosis 6/B; the sampler's means have those within Monte-Carlo error."""
    pop = RNG.exponential(size=200_000)
    g1, g2 = gs.skewness(pop), gs.excess_kurtosis(pop)
    for B in (1, 4, 30):
        skew_b, kurt_b = gs.iid_mean_moments(g1, g2, B)
        assert (skew_b, kurt_b) == pytest.approx((g1 / np.sqrt(B), g2 / B))
        m = gs.minibatch_means(pop, B, 200_000, replace=True, seed=B)
        assert m.mean() == pytest.approx(pop.mean(), abs=5 * pop.std() / np.sqrt(B * 2e5))
        assert m.var() == pytest.approx(pop.var() / B, rel=0.02)
        # Monte-Carlo error of the kurtosis of 2e5 draws: well under 0.15 here
        assert gs.excess_kurtosis(m) == pytest.approx(kurt_b, abs=0.15 + 0.1 * kurt_b)
        assert gs.skewness(m) == pytest.approx(skew_b, abs=0.05)
    # the kurtosis of the means falls like 1/B
    k4 = gs.excess_kurtosis(gs.minibatch_means(pop, 4, 200_000, replace=True, seed=9))
    k16 = gs.excess_kurtosis(gs.minibatch_means(pop, 16, 200_000, replace=True, seed=10))
    assert k4 / k16 == pytest.approx(4.0, rel=0.25)


def test_sgd_batches_are_distinct_uniform_subsets():
    N, B = 12, 5
    pop = np.arange(N, dtype=np.float64)
    v = np.stack([pop, 10 * pop], axis=1)
    m = gs.minibatch_means(v, B, 20_000, seed=1)
    assert m.shape == (20_000, 2)
    np.testing.assert_allclose(m[:, 1], 10 * m[:, 0])
    # without replacement: Var(mean) = (N - B) / (B (N - 1)) Var(pop)
    want = (N - B) / (B * (N - 1)) * pop.var()
    assert m[:, 0].var() == pytest.approx(want, rel=0.05)
    full = gs.minibatch_means(pop, N, 3, seed=2)
    np.testing.assert_allclose(full, pop.mean())


def test_describe_and_bad_input():
    d = gs.describe(SAMPLES["exponential"], n_boot=200, n_mc=100)
    assert d["skew_lo"] < d["skew"] < d["skew_hi"] and d["kurt_lo"] < d["kurt"] < d["kurt_hi"]
    assert d["gaussian_rejected"] and d["ks"] > d["ks_critical"]
    const = gs.describe(np.full(50, 0.25), n_boot=20, n_mc=20)  # e.g. a dead unit
    assert np.isnan([const["skew"], const["skew_lo"], const["kurt"], const["kurt_hi"]]).all()
    assert const["ks"] == pytest.approx(1 - 1 / 50) and const["gaussian_rejected"]
    with pytest.raises(ValueError, match="at least 2 values"):
        gs.ks_distance([1.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        gs.describe(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="batch_size B=5 exceeds the N=3"):
        gs.minibatch_means(np.ones(3), 5, 10)
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        gs.minibatch_means(np.ones(3), 0, 10)
    with pytest.raises(ValueError, match="alpha must lie in"):
        gs.ks_critical(10, 1.5)
