"""`sgdcore.tune`: the Appendix E recipe on synthetic accuracy surfaces, then on real runs."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

import sgdcore
from sgdcore import cli
from sgdcore.tuning import STAGES, TuneError, parse_budget, recipe

N = 10_000
#: Seed offsets of the synthetic surfaces: seed sd 0.002, so with 3 seeds the fall
#: threshold is z * 0.002 * sqrt(2/3) = 0.003266 at z = 2.
OFFSETS = (-0.002, 0.0, 0.002)
THRESHOLD = 2 * 0.002 * math.sqrt(2 / 3)


class Surface:
    """Validation accuracy as a function of the noise scale ``lr/(1-m) N/B``, peaked at
    ``g_star`` (B_opt = 64 at lr 0.1, m 0.9), minus penalties where the learning rate or
    the momentum horizon ``1/(1-m)`` grows too large; records every call.
    """

    def __init__(self, lr_max=2.0, horizon_max=math.inf, offsets=OFFSETS):
        self.g_star = 1.0 * N / 64
        self.lr_max, self.horizon_max, self.offsets = lr_max, horizon_max, offsets
        self.calls = []

    def __call__(self, b, lr, m):
        self.calls.append((b, lr, m))
        g = lr / (1 - m) * N / b
        acc = 0.95 - 0.01 * math.log(g / self.g_star) ** 2
        if lr > self.lr_max:
            acc -= 0.1
        if 1 / (1 - m) > self.horizon_max:
            acc -= 0.05
        return [acc + o for o in self.offsets]


def steps_of(result):
    return [(p.stage, p.batch_size, p.lr, round(p.momentum, 10), p.decision) for p in result.points]


def test_recipe_walks_every_stage_on_a_known_surface():
    s = Surface(lr_max=2.0)
    r = recipe(s, N, seeds=3)
    m3, m9 = 1 - 0.1 / 3, 1 - 0.1 / 9
    m_cap = 1 - (0.1 / 9) / (10_000 / 5184)
    assert steps_of(r) == [
        # 1. powers of 4 up to N at lr 0.1, m 0.9; the peak is at B = 64
        *[(STAGES[0], b, 0.1, 0.9, "B_opt" if b == 64 else "swept") for b in (4, 16, 64)],
        *[(STAGES[0], b, 0.1, 0.9, "swept") for b in (256, 1024, 4096)],
        # 2. B x3 with lr x3: g is unchanged until lr = 2.7 > lr_max
        (STAGES[1], 192, 0.3, 0.9, "kept"),
        (STAGES[1], 576, 0.9, 0.9, "kept"),
        (STAGES[1], 1728, 2.7, 0.9, "fell"),
        # 3. from the last point kept, B x3 with 1-m / 3, the last step clipped to N
        (STAGES[2], 1728, 0.9, round(m3, 10), "kept"),
        (STAGES[2], 5184, 0.9, round(m9, 10), "kept"),
        (STAGES[2], 10_000, 0.9, round(m_cap, 10), "kept"),
    ]
    assert r.stops == {STAGES[0]: "done", STAGES[1]: "fell", STAGES[2]: "cap"}
    rec = r.points[r.recommended]
    assert (rec.batch_size, rec.lr) == (10_000, 0.9)
    # along the path the noise scale lr/(1-m) N/B stays at the optimum
    assert rec.lr / (1 - rec.momentum) * N / rec.batch_size == pytest.approx(s.g_star, rel=1e-9)
    assert len(s.calls) == len(set(s.calls)) == len(r.points)  # each point evaluated once
    t = r.table()
    assert t["recommended"].sum() == 1 and t.loc[t["recommended"], "batch_size"].item() == N
    assert t["noise_scale"].to_numpy() == pytest.approx(
        [sgdcore.theory.noise_scale(p.lr, N, p.batch_size, p.momentum) for p in r.points]
    )
    assert t["threshold"].iloc[6:].to_numpy() == pytest.approx(THRESHOLD)
    fresh = Surface(lr_max=2.0)
    assert t[["seed0", "seed1", "seed2"]].to_numpy() == pytest.approx(
        np.array([fresh(b, lr, m) for b, lr, m in s.calls])
    )


def test_momentum_stage_stops_when_accuracy_falls():
    s = Surface(lr_max=2.0, horizon_max=20)  # 1/(1-m) = 30 at the first momentum step
    r = recipe(s, N, seeds=3)
    assert r.stops[STAGES[2]] == "fell"
    last = r.points[-1]
    assert (last.stage, last.batch_size, last.decision) == (STAGES[2], 1728, "fell")
    assert last.reference - last.mean == pytest.approx(0.05, abs=1e-9)
    rec = r.points[r.recommended]
    assert (rec.stage, rec.batch_size, rec.lr, rec.momentum) == (STAGES[1], 576, 0.9, 0.9)


def test_cap_ends_the_growth_stages():
    s = Surface(lr_max=100.0)
    r = recipe(s, N, seeds=3, max_batch=1000)
    assert [p.batch_size for p in r.points] == [4, 16, 64, 256, 192, 576, 1000]
    last = r.points[-1]
    assert last.lr == pytest.approx(0.9 * 1000 / 576)  # the clipped step scales lr by 1000/576
    assert r.stops == {STAGES[0]: "done", STAGES[1]: "cap", STAGES[2]: "cap"}
    assert r.points[r.recommended] is last


@pytest.mark.parametrize("ratio, decision", [(0.9, "kept"), (1.1, "fell")])
def test_a_drop_falls_exactly_when_it_exceeds_the_seed_noise(ratio, decision):
    """B_opt's seeds (sd 0.01) set the noise: threshold z s sqrt(2/seeds) with z = 2."""
    sd = 0.01
    thr = 2 * sd * math.sqrt(2 / 3)

    def evaluate(b, lr, m):
        if lr == 0.1:  # the batch sweep: B = 64 is best
            mean = 0.9 if b == 64 else 0.8
        else:
            mean = 0.9 - ratio * thr if b == 192 else 0.5
        return [mean - sd, mean, mean + sd]

    r = recipe(evaluate, N, seeds=3)
    p = next(q for q in r.points if q.stage == STAGES[1])
    assert p.threshold == pytest.approx(thr)
    assert p.decision == decision


def test_threshold_is_clipped_to_min_and_max_drop():
    def evaluate(b, lr, m):
        if lr == 0.1:
            return [0.9] if b == 64 else [0.8]
        return [0.9 - 0.004] if b == 192 else [0.9]

    # one seed: no noise to measure, so any drop above min_drop falls
    r = recipe(evaluate, N, seeds=1)
    assert next(p for p in r.points if p.stage == STAGES[1]).decision == "fell"
    r = recipe(evaluate, N, seeds=1, min_drop=0.005)
    assert next(p for p in r.points if p.stage == STAGES[1]).decision == "kept"

    def noisy(b, lr, m):  # seed sd 0.05: a 0.02 drop is within seed noise ...
        mean = (0.9 if b == 64 else 0.8) if lr == 0.1 else 0.88
        return [mean - 0.05, mean, mean + 0.05]

    r = recipe(noisy, N, seeds=3)
    assert next(p for p in r.points if p.stage == STAGES[1]).decision == "kept"
    r = recipe(noisy, N, seeds=3, max_drop=0.01)  # ... but more than one accepts to lose
    p = next(p for p in r.points if p.stage == STAGES[1])
    assert (p.decision, p.threshold) == ("fell", 0.01)


def test_unstable_sweep_lowers_lr_and_repeats():
    def evaluate(b, lr, m):
        return [math.nan, math.nan] if lr > 0.05 else [0.9 if b == 16 else 0.8] * 2

    r = recipe(evaluate, 1000, seeds=2, batch_sizes=[4, 16, 64], factor=3)
    sweep = [p for p in r.points if p.stage == STAGES[0]]
    assert [p.lr for p in sweep] == [0.1] * 3 + [pytest.approx(0.1 / 3)] * 3
    assert [p.decision for p in sweep[3:]] == ["swept", "B_opt", "swept"]
    with pytest.raises(TuneError, match="every run of the batch sweep diverged"):
        recipe(lambda b, lr, m: [math.nan], 1000, seeds=1, batch_sizes=[4], retries=1)


def test_a_diverged_candidate_ends_its_stage():
    def evaluate(b, lr, m):
        if lr == 0.1 and m == 0.9:
            return [0.9 if b == 64 else 0.8] * 2
        return [0.9, math.nan]

    r = recipe(evaluate, N, seeds=2)
    grow = [p for p in r.points if p.stage != STAGES[0]]
    assert [(p.stage, p.decision) for p in grow] == [
        (STAGES[1], "diverged"),
        (STAGES[2], "diverged"),
    ]
    assert r.points[r.recommended].batch_size == 64
    assert r.stops[STAGES[1]] == r.stops[STAGES[2]] == "diverged"


def test_run_budget_stops_before_the_point_that_would_exceed_it():
    s = Surface()
    r = recipe(s, N, seeds=3, max_runs=6 * 3 + 2 * 3 + 2)  # the sweep, two growth points
    assert len(s.calls) == 8
    assert r.stops == {STAGES[0]: "done", STAGES[1]: "budget"}
    assert r.points[r.recommended].batch_size == 576
    with pytest.raises(TuneError, match="smaller than one point"):
        recipe(Surface(), N, seeds=3, max_runs=2)
    with pytest.raises(TuneError, match="budget ran out before the batch sweep had a run"):
        recipe(lambda b, lr, m: [math.nan], N, seeds=1, max_runs=2)


def test_time_budget_uses_the_clock():
    clock = iter(range(0, 1000, 10))  # 10 "seconds" pass at every look
    s = Surface()
    r = recipe(s, N, seeds=3, max_seconds=45, clock=lambda: next(clock))
    assert len(s.calls) == 3 and r.stops == {STAGES[0]: "budget"}
    assert r.points[r.recommended].decision == "B_opt"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seeds": 0}, "seeds must be a positive integer"),
        ({"seeds": 3, "factor": 1.0}, "factor must be"),
        ({"seeds": 3, "lr": -1.0}, "lr must be"),
        ({"seeds": 3, "momentum": 1.0}, "momentum must lie"),
        ({"seeds": 3, "batch_sizes": [20_000]}, "within the cap"),
        ({"seeds": 3, "min_drop": 0.1, "max_drop": 0.01}, "min_drop <= max_drop"),
        ({"seeds": 2}, "returned 3 accuracies; expected one per seed"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(TuneError, match=message):
        recipe(Surface(), N, **kwargs)


def test_evaluate_returning_a_non_accuracy_is_refused():
    with pytest.raises(TuneError, match=r"outside \[0, 1\]"):
        recipe(lambda b, lr, m: [95.0], N, seeds=1)


@pytest.mark.parametrize(
    "budget, expected",
    [
        (None, (None, None)),
        (40, (40, None)),
        ("12", (12, None)),
        ("90s", (None, 90.0)),
        ("5m", (None, 300.0)),
        ("1.5h", (None, 5400.0)),
    ],
)
def test_parse_budget(budget, expected):
    assert parse_budget(budget) == expected


@pytest.mark.parametrize("budget", ["0", "5q", "-3", True, 2.5, "m"])
def test_parse_budget_refuses_nonsense(budget):
    with pytest.raises(TuneError, match="budget must be"):
        parse_budget(budget)


# -- tune: real training runs --------------------------------------------------------------


@pytest.fixture()
def count_training(monkeypatch):
    """Counts calls of the SGD engine (every sweep group and B_simple's run go through it)."""
    engine = sys.modules["sgdcore.training"]
    calls = []
    real = engine.train

    def counted(*args, **kwargs):
        calls.append(kwargs.get("batch_size"))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train", counted)
    return calls


def test_tune_scores_the_validation_split_and_resumes_from_its_store(tmp_path, count_training):
    pool = sgdcore.data.synthetic(500, seed=3, n_features=20, n_classes=3, teacher="linear")
    model = sgdcore.models.LogisticRegression(20, 3)
    kw = dict(epochs=2, seeds=2, batch_sizes=[8, 32], store=tmp_path / "s", backend="numpy")
    table, rec = sgdcore.tune(model, pool, **kw)
    n_points = len(table)
    assert len(count_training) == n_points + 1  # one group per point, one run for B_simple
    assert rec.n_train == 400 and rec.n_val == 100
    # the accuracies are those of an independent run scored on the held-out 20%
    train, val = sgdcore.data.subset(pool, 400, 100, 0)

    def run(b, lr, m, steps, seeds):
        return sgdcore.train(model, (train.X, train.y), (val.X, val.y), batch_size=int(b),
                             lr=lr, momentum=m, steps=int(steps), seeds=seeds,
                             backend="numpy", return_params=True)  # fmt: skip

    for _, row in table.iterrows():
        df, _ = run(row["batch_size"], row["lr"], row["momentum"], row["steps"], [0, 1])
        fin = df[df["step"] == row["steps"]]
        assert fin["test_accuracy"].tolist() == [row["seed0"], row["seed1"]]
    assert table["steps"].tolist() == [math.ceil(2 * 400 / b) for b in table["batch_size"]]
    # B_simple = tr F / |G|^2 over the training set at seed 0's final parameters, here
    # from the explicit per-example gradients
    _, thetas = run(rec.batch_size, rec.lr, rec.momentum, rec.steps, [0])
    theta = thetas[0].astype(np.float64)
    g = sgdcore.per_example_grads(model, theta, train.X.astype(np.float64), train.y)
    mean = g.mean(axis=0)
    tr_f = np.mean(np.sum(g**2, axis=1)) - mean @ mean
    assert rec.b_simple == pytest.approx(tr_f / (mean @ mean), rel=1e-4)
    assert rec.noise_scale == sgdcore.theory.noise_scale(rec.lr, 400, rec.batch_size, rec.momentum)
    # a rerun with the store trains nothing and returns the same table
    count_training.clear()
    table2, rec2 = sgdcore.tune(model, pool, **kw)
    assert count_training == []
    pd.testing.assert_frame_equal(table, table2)
    assert rec2 == rec


def test_tune_refuses_a_model_that_does_not_fit_the_data():
    pool = sgdcore.data.synthetic(100, seed=0, n_features=20, n_classes=3)
    with pytest.raises(TuneError, match="does not fit the data"):
        sgdcore.tune(sgdcore.models.MLP(784, 8, 10), pool, seeds=1)
    with pytest.raises(TuneError, match="must be an sgdcore.models"):
        sgdcore.tune("mlp:8", pool, seeds=1)
    with pytest.raises(TuneError, match="val_fraction"):
        sgdcore.tune(sgdcore.models.LogisticRegression(20, 3), pool, val_fraction=1.0)


def test_cli_tune_end_to_end_on_the_digits(tmp_path, capsys, monkeypatch, count_training):
    monkeypatch.delenv("SGDCORE_DATA", raising=False)
    out = tmp_path / "tune"
    argv = ["tune", "--model", "logistic", "--epochs", "1", "--seeds", "2",
            "--batch-sizes", "32", "128", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "recommended: B = " in text and "B_simple" in text and "noise scale g" in text
    table = pd.read_csv(out / "tune.csv")
    assert table["stage"].iloc[0] == STAGES[0] and table["recommended"].sum() == 1
    assert (out / "tune_path.png").stat().st_size > 10_000
    rec = json.loads((out / "recommendation.json").read_text())
    assert rec["n_train"] + rec["n_val"] == 4000  # the training split of the 5,000 digits
    assert rec["val_accuracy"] == pytest.approx(table.loc[table["recommended"], "val_accuracy"])
    assert rec["val_accuracy"] > 0.8
    first = len(count_training)
    assert first == len(table) + 1
    assert cli.main(argv) == 0  # resumed from OUT/store: nothing is trained again
    assert len(count_training) == first
    assert pd.read_csv(out / "tune.csv").equals(table)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "mlp:x"], "--model 'mlp:x': use logistic or mlp:H"),
        (["--budget", "5q"], "budget must be a number of runs"),
        (["--data", "/no/such/folder"], "--data '/no/such/folder': not mnist"),
        (["--max-batch", "0"], "max_batch must be a positive integer"),
    ],
)
def test_cli_tune_bad_input_is_one_line(extra, message, tmp_path, capsys):
    assert cli.main(["tune", "--out", str(tmp_path), "--model", "logistic", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgdcore: error: tune: ") and message in err
    assert err.count("\n") == 1


def test_cli_tune_help_explains_the_recipe_and_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tune", "--help"])
    text = capsys.readouterr().out
    for line in ("1. train at log-spaced B", "2. from B_opt", "3. then multiply B by 3"):
        assert line in text
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["tune"]
    for action in sub._actions:
        assert action.help, action.dest
        for flag in action.option_strings:
            assert flag in text


def test_small_factor_still_grows_b_by_at_least_one():
    calls = []

    def flat(b, lr, m):
        calls.append(b)
        return [0.9, 0.9]

    r = recipe(flat, 100, seeds=2, batch_sizes=[1, 2], factor=1.2, max_batch=4)
    assert [p.batch_size for p in r.points] == [1, 2, 3, 4]  # ties go to the larger B
    assert r.points[2].lr == pytest.approx(0.15) and r.stops[STAGES[2]] == "cap"
    assert calls == [1, 2, 3, 4]
