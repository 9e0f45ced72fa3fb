"""Tests of sgdcore.theory against closed forms, planted optima and SciPy's regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sgdcore import theory
from sgdcore.models import MLP
from sgdcore.training import train

# -- noise scale ---------------------------------------------------------------------------


def test_noise_scale_closed_forms():
    assert theory.noise_scale(1.0, 1000, 30, 0.9) == pytest.approx(10 * (1000 / 30 - 1))
    assert theory.noise_scale(0.1, 1000, 1000, 0.9) == 0.0  # full batch: no noise
    assert theory.noise_scale(0.5, 100, 10) == pytest.approx(0.5 * 9)  # plain SGD
    g = theory.noise_scale(np.array([0.1, 0.2]), 1000, np.array([[10], [100]]), 0.5)
    np.testing.assert_allclose(g, [[19.8, 39.6], [1.8, 3.6]])
    assert isinstance(theory.noise_scale(0.1, 10, 2), float)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.1, 100, 200, 0.9), "batch_size must lie in"),
        ((0.1, 100, 0, 0.9), "batch_size must lie in"),
        ((0.1, 100, 10, 1.0), "momentum must be in"),
        ((-0.1, 100, 10, 0.0), "lr must be >= 0"),
        ((np.nan, 100, 10, 0.0), "lr must be finite"),
        ((0.1, 0, 1, 0.0), "n must be >= 1"),
        ((0.1, "many", 1, 0.0), "n must be a number"),
        ((0.1, [10, 20], [1, 2, 3], 0.0), "do not broadcast"),
    ],
)
def test_noise_scale_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        theory.noise_scale(*args)


def test_noise_scale_matches_the_engine_column():
    model = MLP(5, 3, 2)
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 5)), rng.integers(0, 2, 40)
    df = train(
        model,
        (X, y),
        (X, y),
        batch_size=4,
        lr=[0.1, 0.3],
        momentum=[0.0, 0.8],
        steps=2,
        seeds=[0, 1],
        n_train=[40, 20],
        dtype=np.float64,
        backend="numpy",
    )
    want = theory.noise_scale(df["lr"], df["n_train"], df["batch_size"], df["momentum"])
    np.testing.assert_allclose(df["noise_scale"], want, rtol=1e-14)


# -- optimal batch size --------------------------------------------------------------------

GRID = [2**k for k in range(0, 11)]  # 1 .. 1024


def planted(b_star, seeds=4, noise=0.0, setting=None, grid=GRID, curvature=0.01, seed=0):
    """Accuracy 0.9 - curvature * (log B - log b_star)^2 (+ noise) at two steps per run;
    the earlier step carries a decoy value that must be ignored.
    """
    rng = np.random.default_rng(seed)
    rows = []
    run = 0
    for b in grid:
        for s in range(seeds):
            acc = 0.9 - curvature * (np.log(b) - np.log(b_star)) ** 2 + noise * rng.normal()
            common = {"batch_size": b, "seed": s, "run": run, **(setting or {})}
            rows.append({**common, "step": 0, "test_accuracy": 0.1, "test_cross_entropy": 9.0})
            rows.append(
                {**common, "step": 100, "test_accuracy": acc, "test_cross_entropy": 1 - acc}
            )
            run += 1
    return pd.DataFrame(rows)


def test_planted_optimum_is_found_exactly_without_noise():
    df = planted(b_star=45.0)
    r = theory.optimal_batch_size(df).iloc[0]
    assert r["b_best"] == 32 and (r["b_lo"], r["b_hi"]) == (16, 64)
    assert r["b_smooth"] == pytest.approx(45.0, rel=1e-9)  # the parabola is exact
    assert r["b_smooth_lo"] == pytest.approx(45.0) and r["b_smooth_hi"] == pytest.approx(45.0)
    assert r["interior"] and r["n_seeds"] == 4 and r["n_batch_sizes"] == 11
    assert r["best"] == pytest.approx(0.9 - 0.01 * np.log(32 / 45) ** 2)
    # the cross-entropy here is 1 - accuracy: its minimum is the same batch size
    ce = theory.optimal_batch_size(df, metric="test_cross_entropy").iloc[0]
    assert ce["b_best"] == 32 and ce["b_smooth"] == pytest.approx(45.0)


def test_bootstrap_interval_covers_the_planted_optimum_and_shrinks_with_seeds():
    few = theory.optimal_batch_size(planted(70.0, seeds=4, noise=0.003, seed=1)).iloc[0]
    many = theory.optimal_batch_size(planted(70.0, seeds=40, noise=0.003, seed=1)).iloc[0]
    for r in (few, many):
        assert r["b_smooth_lo"] <= 70.0 <= r["b_smooth_hi"]
        assert r["b_smooth_lo"] <= r["b_smooth"] <= r["b_smooth_hi"]
    width = lambda r: np.log(r["b_smooth_hi"] / r["b_smooth_lo"])  # noqa: E731
    assert width(many) < 0.6 * width(few)
    assert many["spread"] == pytest.approx(0.003, rel=0.3)


def test_optimum_at_the_grid_edge_is_flagged_and_clamped():
    r = theory.optimal_batch_size(planted(5000.0)).iloc[0]
    assert r["b_best"] == 1024 and not r["interior"]
    assert r["b_hi"] == 1024 and r["b_smooth"] <= 1024


def test_settings_are_separated_by_the_columns_that_vary():
    df = pd.concat(
        [
            planted(10.0, setting={"lr": 0.01, "momentum": 0.9}),
            planted(100.0, setting={"lr": 0.1, "momentum": 0.9}),
        ]
    )
    df["run"] = np.arange(len(df)) // 2
    out = theory.optimal_batch_size(df)
    assert list(out["lr"]) == [0.01, 0.1] and "momentum" not in out
    np.testing.assert_allclose(out["b_smooth"], [10.0, 100.0], rtol=1e-9)
    with pytest.raises(ValueError, match="absent column"):
        theory.optimal_batch_size(df, by=["l2"])


def test_diverged_runs_count_as_chance_not_as_missing():
    df = planted(45.0, seeds=2)
    # at B = 32 one seed diverged: NaN must not be skipped (which would keep B = 32's mean
    # at the other seed's value) but count as chance accuracy
    bad = (df["batch_size"] == 32) & (df["seed"] == 0) & (df["step"] == 100)
    df.loc[bad, "test_accuracy"] = np.nan
    r = theory.optimal_batch_size(df, n_boot=0).iloc[0]
    assert r["b_best"] == 64
    assert np.isnan(r["b_smooth_lo"])


def test_step_argument_selects_a_given_evaluation():
    df = planted(45.0)
    r = theory.optimal_batch_size(df, step=0, n_boot=0).iloc[0]
    assert r["b_best"] == 1 and r["best"] == pytest.approx(0.1)  # all equal: first wins
    with pytest.raises(ValueError, match="no rows at step 7"):
        theory.optimal_batch_size(df, step=7)


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="lacks column"):
        theory.optimal_batch_size(pd.DataFrame({"batch_size": [1]}))
    with pytest.raises(ValueError, match="only one batch size"):
        theory.optimal_batch_size(planted(4.0, grid=[8]))
    with pytest.raises(ValueError, match="empty"):
        theory.optimal_batch_size(planted(4.0).iloc[:0])


# -- scaling fits --------------------------------------------------------------------------


def test_exact_power_law_is_recovered():
    x = np.array([0.01, 0.03, 0.1, 0.3, 1.0])
    f = theory.fit_scaling(x, 300 * x**1.0)
    assert f.slope == pytest.approx(1.0, abs=1e-12)
    assert np.exp(f.intercept) == pytest.approx(300.0)
    assert f.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(f.predict([0.5]), [150.0])
    assert f.consistent_with(1.0) and not f.weighted


def test_unweighted_fit_matches_scipy_linregress():
    rng = np.random.default_rng(3)
    x = np.geomspace(1, 64, 6)
    b = 5 * x**0.8 * np.exp(0.2 * rng.standard_normal(6))
    f = theory.fit_scaling(x, b, ci=0.95)
    ref = stats.linregress(np.log(x), np.log(b))
    t = stats.t.ppf(0.975, 4)
    assert f.slope == pytest.approx(ref.slope, rel=1e-12)
    assert f.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert f.slope_lo == pytest.approx(ref.slope - t * ref.stderr, rel=1e-10)
    assert f.slope_hi == pytest.approx(ref.slope + t * ref.stderr, rel=1e-10)
    assert f.r2 == pytest.approx(ref.rvalue**2, rel=1e-12)


def test_weighted_fit_matches_numpy_polyfit():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    b = np.array([3.0, 7.0, 11.0, 30.0, 50.0])
    lo, hi = b / np.array([1.2, 2.0, 1.1, 1.5, 3.0]), b * np.array([1.2, 2.0, 1.1, 1.5, 3.0])
    f = theory.fit_scaling(x, b, lo, hi, ci=0.9)
    s = np.log(hi / lo) / 2
    coef, cov = np.polyfit(np.log(x), np.log(b), 1, w=1 / s, cov=True)
    t = stats.t.ppf(0.95, 3)
    assert f.weighted
    assert f.slope == pytest.approx(coef[0], rel=1e-10)
    assert f.slope_hi - f.slope == pytest.approx(t * np.sqrt(cov[0, 0]), rel=1e-8)


@pytest.mark.slow
def test_slope_interval_has_its_nominal_coverage():
    rng = np.random.default_rng(11)
    x = np.geomspace(0.01, 1.0, 5)
    hits = 0
    n = 400
    for _ in range(n):
        b = 100 * x * np.exp(0.3 * rng.standard_normal(5))
        f = theory.fit_scaling(x, b, ci=0.9)
        hits += f.slope_lo <= 1.0 <= f.slope_hi
    assert 0.84 <= hits / n <= 0.95  # 90% nominal, binomial sd 1.5%


def test_known_error_fit_matches_the_textbook_weighted_line():
    # weighted least squares with known errors: slope sd = 1/sqrt(S_xx,w) when the
    # points scatter no more than their errors (chi^2 <= n - 2), else scaled by the
    # Birge ratio with a Student t quantile
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    b = np.array([3.0, 7.0, 11.0, 30.0, 50.0])
    sig = np.array([0.2, 0.7, 0.1, 0.4, 1.1])
    f = theory.fit_scaling(x, b, sigma=sig, ci=0.9)
    coef, cov = np.polyfit(np.log(x), np.log(b), 1, w=1 / sig, cov="unscaled")
    resid = (np.log(b) - np.polyval(coef, np.log(x))) / sig
    birge = np.sqrt(resid @ resid / 3)
    assert f.weighted and f.slope == pytest.approx(coef[0], rel=1e-10)
    q = stats.t.ppf(0.95, 3) * birge if birge > 1 else stats.norm.ppf(0.95)
    assert f.slope_hi - f.slope == pytest.approx(q * np.sqrt(cov[0, 0]), rel=1e-8)
    # large errors: the points scatter less than their errors, no scaling down
    g = theory.fit_scaling(x, b, sigma=10 * sig, ci=0.9)
    assert g.slope_hi - g.slope == pytest.approx(
        stats.norm.ppf(0.95) * 10 * np.sqrt(cov[0, 0]), rel=1e-8
    )
    # two points with known errors have a finite interval
    two = theory.fit_scaling([1, 10], [4, 40], sigma=[0.1, 0.1])
    sd = np.sqrt(2) * 0.1 / np.log(10)
    assert two.slope == pytest.approx(1.0)
    assert two.slope_hi - 1.0 == pytest.approx(stats.norm.ppf(0.95) * sd, rel=1e-10)
    with pytest.raises(ValueError, match="sigma or b_lo"):
        theory.fit_scaling([1, 10], [4, 40], [3, 30], [5, 50], sigma=[0.1, 0.1])
    with pytest.raises(ValueError, match="finite and positive"):
        theory.fit_scaling([1, 10], [4, 40], sigma=[0.1, 0.0])


def test_two_points_give_a_slope_without_interval():
    f = theory.fit_scaling([1, 10], [4, 40])
    assert f.slope == pytest.approx(1.0) and np.isnan(f.slope_lo) and np.isnan(f.slope_hi)


@pytest.mark.parametrize(
    ("args", "kw", "message"),
    [
        (([1.0], [2.0]), {}, "at least two points"),
        (([1.0, 2.0], [2.0, -1.0]), {}, "finite and positive"),
        (([1.0, 2.0], [2.0]), {}, "equal length"),
        (([3.0, 3.0], [2.0, 4.0]), {}, "all x are equal"),
        (([1.0, 2.0], [2.0, 4.0]), {"ci": 1.5}, "ci must be in"),
        (([1.0, 2.0], [2.0, 4.0], [1.0, 1.0]), {}, "both b_lo and b_hi"),
        (([1.0, 2.0], [2.0, 4.0], [3.0, 1.0], [2.0, 5.0]), {}, "0 < b_lo <= b_hi"),
    ],
)
def test_fit_scaling_rejects_bad_input(args, kw, message):
    with pytest.raises(ValueError, match=message):
        theory.fit_scaling(*args, **kw)
