"""The training engine: every backend against the NumPy engine, the NumPy engine against
hand-written loops over the float64 oracle and a closed-form trajectory, the schedule,
divergence, evaluation, the returned table and input checks."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from conftest import MODELS, rel_err

import sgdcore
from sgdcore import _backend, available_backends, backend_status, philox, reference
from sgdcore.data import randomize_labels
from sgdcore.models import MLP, LogisticRegression
from sgdcore.training import COLUMNS, DIVERGENCE_FACTOR, diverged

#: Relative tolerance of parameters after 50 steps, backend against the NumPy engine.
ENGINE_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
#: Every engine checked against the NumPy reference engine.
COMPILED = [b for b in _backend.backends_with("train") if b != "numpy"]


def need(engine):
    ok, why = backend_status(engine)
    if not ok:
        pytest.skip(f"backend {engine} unavailable: {why}")


#: Wide enough that the C++ engine cuts it into slices (lockstep schedule).
WIDE = MLP(20, 40, 4)


def problem(model, n=30, n_test=17, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, model.n_features))
    y = rng.integers(0, model.n_classes, n)
    Xt = rng.random((n_test, model.n_features))
    yt = rng.integers(0, model.n_classes, n_test)
    return (X, y), (Xt, yt)


# A group of three models that differ in everything a model may differ in.
GROUP = dict(
    batch_size=4,
    lr=[0.2, 0.05, 0.1],
    momentum=[0.9, 0.0, 0.5],
    l2=[0.0, 0.5, 2.0],
    seeds=[0, 7, 2**33 + 1],
    n_train=[30, 25, 11],
    label_seeds=[None, 3, None],
)


def run(model, backend, dtype=np.float64, steps=50, **kw):
    tr, te = problem(model)
    args = {**GROUP, "eval_every": 10, **kw}
    return sgdcore.train(
        model, tr, te, steps=steps, dtype=dtype, backend=backend, return_params=True, **args
    )


# ----------------------------------------------------------------- backends agree


@pytest.mark.parametrize("engine", COMPILED)
def test_engine_matches_numpy_engine(model, dtype, engine):
    need(engine)
    df0, th0 = run(model, "numpy", dtype)
    df1, th1 = run(model, engine, dtype)
    tol = ENGINE_RTOL[np.dtype(dtype)]
    assert th1.dtype == dtype
    for k in range(3):
        assert rel_err(th1[k], th0[k]) < tol, k
    cols = ["test_accuracy", "test_cross_entropy", "train_cross_entropy"]
    assert np.allclose(df1[cols].to_numpy(), df0[cols].to_numpy(), rtol=tol, atol=tol)
    assert (df1.drop(columns=cols).to_numpy() == df0.drop(columns=cols).to_numpy()).all()


@pytest.mark.parametrize("engine", COMPILED)
def test_wide_mlp_matches_numpy_engine(dtype, engine):
    need(engine)
    _, th0 = run(WIDE, "numpy", dtype)
    _, th1 = run(WIDE, engine, dtype)
    assert rel_err(th1, th0) < ENGINE_RTOL[np.dtype(dtype)]


@pytest.mark.parametrize("k", [1, 3])
def test_cpp_lockstep_schedule_matches_numpy_engine(dtype, k):
    # The hidden layer cut into slices run in lockstep (opt-in), with fewer and with
    # more models than threads.
    need("cpp")
    from sgdcore.kernels._cpp import train as cpp

    one = {key: val[:k] for key, val in GROUP.items() if key != "batch_size"}
    _, th0 = run(WIDE, "numpy", dtype, **one)
    try:
        cpp.OVERRIDE = dict(threads=2, slices=2)
        df1, th1 = run(WIDE, "cpp", dtype, **one)
    finally:
        cpp.OVERRIDE = None
    assert rel_err(th1, th0) < ENGINE_RTOL[np.dtype(dtype)]
    assert df1.test_cross_entropy.notna().all()


def test_group_equals_separate_runs(backend):
    for model in (MODELS["mlp"], WIDE):
        _, together = run(model, backend, steps=30)
        for k in range(3):
            one = {key: [val[k]] for key, val in GROUP.items() if key != "batch_size"}
            _, alone = run(model, backend, steps=30, **one)
            assert rel_err(alone[0], together[k]) < 1e-12, (model, k)


# ------------------------------------------------- the update, against independent code


def test_momentum_sgd_matches_hand_written_loop(model, backend):
    (X, y), te = problem(model, n=20)
    n, B, steps, lr, m, l2, seed = 15, 4, 20, 0.3, 0.9, 0.5, 5
    theta = model.init(seed, np.float64)
    v = np.zeros_like(theta)
    for idx in philox.batch_indices(seed, n, B, steps):
        g = reference.grad(model, theta, X[idx], y[idx], reduction="sum") / B + l2 / n * theta
        v = m * v - lr * g
        theta = theta + v
    _, got = sgdcore.train(
        model,
        (X, y),
        te,
        batch_size=B,
        lr=lr,
        momentum=m,
        l2=l2,
        steps=steps,
        seeds=[seed],
        n_train=[n],
        dtype=np.float64,
        backend=backend,
        return_params=True,
    )
    assert rel_err(got[0], theta) < 1e-10


def test_weights_follow_closed_form_when_inputs_are_zero(model, backend):
    # With X = 0 the cross-entropy does not depend on the input weights, so they only feel
    # the L2 term: a quadratic whose heavy-ball trajectory is (w_t, v_t) = T^t (w_0, 0),
    # T = [[1 - lr c, m], [-lr c, m]], c = l2 / n.
    n, B, steps, lr, m, l2 = 12, 5, 40, 0.5, 0.8, 3.0
    X = np.zeros((n, model.n_features))
    y = np.arange(n) % model.n_classes
    c = l2 / n
    T = np.array([[1 - lr * c, m], [-lr * c, m]])
    factor = np.linalg.matrix_power(T, steps)[0, 0]
    _, got = sgdcore.train(
        model,
        (X, y),
        (X, y),
        batch_size=B,
        lr=lr,
        momentum=m,
        l2=l2,
        steps=steps,
        seeds=[3],
        dtype=np.float64,
        backend=backend,
        return_params=True,
    )
    name = "W1" if model.kind == "mlp" else ("w" if model.kind == "logistic_binary" else "W")
    w0 = model.unflatten(model.init(3, np.float64))[name]
    w = model.unflatten(got[0])[name]
    assert rel_err(w, factor * w0) < 1e-12


def test_plain_sgd_on_binary_logistic_by_hand():
    # One example, B = 1, no momentum: theta_{t+1} = theta_t - lr (sigmoid(z) - y) x~.
    model = LogisticRegression(2)
    X = np.array([[1.0, -2.0]])
    y = np.array([1])
    theta = model.init(0, np.float64)
    for _ in range(7):
        z = X[0] @ theta[:2] + theta[2]
        theta = theta - 0.5 * (1 / (1 + np.exp(-z)) - 1) * np.array([1.0, -2.0, 1.0])
    for backend in available_backends():
        _, got = sgdcore.train(
            model,
            (X, y),
            (X, y),
            batch_size=1,
            lr=0.5,
            steps=7,
            seeds=[0],
            dtype=np.float64,
            backend=backend,
            return_params=True,
        )
        assert rel_err(got[0], theta) < 1e-13, backend


@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_inputs_with_dead_pixels(engine, l2, dtype):
    # Pixels that are zero in every training row the group uses (like MNIST's border) but
    # not in the test set or in unused rows: the C++ engine drops them from its training
    # GEMMs, which must not change the result.
    need(engine)
    model = WIDE
    (X, y), (Xt, yt) = problem(model, n=40)
    dead = np.arange(0, 20, 3)
    X[:30, dead] = 0.0  # rows 30.. are outside every model's n_train
    kw = {**GROUP, "l2": l2, "n_train": [30, 25, 11]}
    out = []
    for backend in ("numpy", engine):
        out.append(
            sgdcore.train(
                model,
                (X, y),
                (Xt, yt),
                steps=40,
                eval_every=20,
                dtype=dtype,
                backend=backend,
                return_params=True,
                **kw,
            )
        )
    (df0, th0), (df1, th1) = out
    tol = ENGINE_RTOL[np.dtype(dtype)]
    assert rel_err(th1, th0) < tol
    cols = ["test_accuracy", "test_cross_entropy", "train_cross_entropy"]
    assert np.allclose(df1[cols].to_numpy(), df0[cols].to_numpy(), rtol=tol, atol=tol)
    if l2 == 0:  # the dead pixels' weights never move
        W1 = th1[:, : model.n_hidden * model.n_features].reshape(3, model.n_hidden, -1)
        init = np.stack([model.init(s, dtype) for s in GROUP["seeds"]])
        W1_0 = init[:, : model.n_hidden * model.n_features].reshape(3, model.n_hidden, -1)
        assert np.array_equal(W1[:, :, dead], W1_0[:, :, dead])


# ------------------------------------------------------------------------ evaluation


def test_evaluation_matches_oracle(model, backend):
    tr, te = problem(model)
    df, th = run(model, backend, steps=20)
    last = df[df.step == 20].set_index("model")
    for k in range(3):
        n = GROUP["n_train"][k]
        ytr = (
            tr[1]
            if GROUP["label_seeds"][k] is None
            else randomize_labels(tr[1], GROUP["label_seeds"][k], n_classes=model.n_classes)
        )
        row = last.loc[k]
        acc = reference.accuracy(model, th[k], *te)
        assert row.test_accuracy == pytest.approx(acc, abs=1e-12)
        want = reference.loss(model, th[k], *te, reduction="mean")
        assert row.test_cross_entropy == pytest.approx(want, rel=1e-10)
        want = reference.loss(model, th[k], tr[0][:n], ytr[:n], reduction="mean")
        assert row.train_cross_entropy == pytest.approx(want, rel=1e-10)


def test_eval_chunks_longer_than_one_block():
    # More evaluation rows than one chunk of every engine (256 or 1,024 rows), ragged ends.
    model = MODELS["logistic_softmax"]
    rng = np.random.default_rng(1)
    X, y = rng.random((2100, 9)), rng.integers(0, 4, 2100)
    for backend in available_backends():
        df, th = sgdcore.train(
            model,
            (X, y),
            (X[:1523], y[:1523]),
            batch_size=50,
            lr=0.1,
            steps=3,
            seeds=[1, 2],
            n_train=[2100, 1301],
            dtype=np.float64,
            backend=backend,
            return_params=True,
        )
        last = df[df.step == 3]
        for k, n in enumerate([2100, 1301]):
            want = reference.loss(model, th[k], X[:n], y[:n], reduction="mean")
            assert last.train_cross_entropy.iloc[k] == pytest.approx(want, rel=1e-10)
        want = reference.accuracy(model, th[1], X[:1523], y[:1523])
        assert last.test_accuracy.iloc[1] == pytest.approx(want, abs=1e-12)


# ------------------------------------------------------------------ schedule and table


def test_engine_draws_the_schedule_without_replacement(backend):
    # With X = identity and w = 0, the weight w_i moves only when example i is in a batch:
    # after two steps of B = 2 exactly the four scheduled examples have moved; after one
    # epoch (three steps) all six have, each in exactly one batch.
    n = 6
    model = LogisticRegression(n)
    X = np.eye(n)
    y = np.zeros(n, dtype=np.int64)
    kw = dict(
        batch_size=2,
        lr=1.0,
        seeds=[4],
        init=np.zeros((1, n + 1)),
        dtype=np.float64,
        backend=backend,
        return_params=True,
    )
    _, got = sgdcore.train(model, (X, y), (X, y), steps=2, **kw)
    moved = set(np.flatnonzero(got[0, :n]).tolist())
    assert moved == set(philox.batch_indices(4, n, 2, 2).ravel().tolist())
    _, got = sgdcore.train(model, (X, y), (X, y), steps=3, **kw)
    assert np.all(got[0, :n] < 0)


def test_table_columns_and_formulas():
    model = MODELS["logistic_softmax"]
    df = run(model, "numpy", steps=25)[0]
    assert list(df.columns) == COLUMNS
    assert len(df) == 3 * 4  # steps 0, 10, 20 and the last, 25
    assert df.step.tolist()[:4] == [0, 10, 20, 25]
    lr, m, n = df.lr.to_numpy(), df.momentum.to_numpy(), df.n_train.to_numpy()
    assert np.allclose(df.noise_scale, lr / (1 - m) * (n / 4 - 1))
    assert np.allclose(df.epoch, df.step * 4 / n)
    assert df.label_seed.tolist()[::4] == [-1, 3, -1]
    assert df.seed.tolist()[::4] == GROUP["seeds"]
    assert (df.batch_size == 4).all() and not df.diverged.any()
    assert df.attrs["backend"] == "numpy"


def test_eval_schedules():
    model = MODELS["logistic_binary"]
    tr, te = problem(model)
    kw = dict(batch_size=3, lr=0.1, seeds=[0], backend="numpy")
    assert sgdcore.train(model, tr, te, steps=7, **kw).step.tolist() == [0, 7]
    assert sgdcore.train(model, tr, te, steps=7, eval_every=3, **kw).step.tolist() == [0, 3, 6, 7]
    assert sgdcore.train(model, tr, te, steps=7, eval_steps=[5, 2, 5], **kw).step.tolist() == [2, 5]
    assert sgdcore.train(model, tr, te, steps=0, **kw).step.tolist() == [0]


def test_label_seeds_and_n_train_are_what_they_say(backend):
    model = MODELS["mlp"]
    (X, y), te = problem(model)
    kw = dict(
        batch_size=4,
        lr=0.1,
        momentum=0.9,
        steps=15,
        dtype=np.float64,
        backend=backend,
        return_params=True,
    )
    _, got = sgdcore.train(model, (X, y), te, seeds=[1], n_train=[20], label_seeds=[9], **kw)
    y9 = randomize_labels(y, 9, n_classes=model.n_classes)
    _, want = sgdcore.train(model, (X[:20], y9[:20]), te, seeds=[1], **kw)
    assert rel_err(got, want) < 1e-12


def test_init_and_float_casting():
    model = MODELS["mlp"]
    (X, y), te = problem(model)
    init = np.stack([model.init(5), model.init(6)])
    kw = dict(batch_size=4, lr=0.0, steps=3, backend="numpy", return_params=True)
    _, th = sgdcore.train(model, (X, y), te, seeds=[0, 1], init=init, dtype=np.float32, **kw)
    assert th.dtype == np.float32 and np.array_equal(th, init.astype(np.float32))
    df, _ = sgdcore.train(model, (X, y), te, seeds=[0], dtype=np.float32, **kw)
    assert df.train_cross_entropy.nunique() == 1  # lr = 0: nothing moves


# ----------------------------------------------------------------------- divergence


def test_divergent_model_is_frozen_and_others_go_on(backend, dtype):
    model = WIDE
    huge = 1e30 if dtype == np.float32 else 1e300  # overflows within a step or two
    lr = [0.1, huge, 0.05]
    df, th = run(model, backend, dtype, steps=30, lr=lr)
    bad = df[df.model == 1]
    good = df[df.model != 1]
    assert not good.diverged.any() and good.test_cross_entropy.notna().all()
    # The step-0 evaluation is fine; the first steps overflow; later rows are NaN.
    assert bad.diverged.tolist() == [False, True, True, True]
    assert bad.test_accuracy.isna().tolist() == [False, True, True, True]
    assert np.isfinite(th[[0, 2]]).all()
    _, th0 = run(model, "numpy", dtype, steps=30, lr=lr)
    assert rel_err(th[[0, 2]], th0[[0, 2]]) < ENGINE_RTOL[np.dtype(dtype)]


@pytest.mark.parametrize("engine", COMPILED)
def test_divergence_step_agrees_across_backends(engine):
    # float32 MLPs at these rates overflow after 2 and 1 steps (the first never does).
    model = MODELS["mlp"]
    kw = dict(
        lr=[0.1, 1e15, 1e20],
        momentum=0.9,
        steps=12,
        eval_every=1,
        seeds=[0, 5, 10],
        n_train=None,
        label_seeds=None,
        l2=0.0,
        dtype=np.float32,
    )
    need(engine)
    df0 = run(model, "numpy", **kw)[0]
    df1 = run(model, engine, **kw)[0]
    # Frozen (NaN metrics) after 2 and 1 steps; flagged from step 1 on, where the first
    # one's cross-entropy already exceeds 10 ln C.
    frozen = df0[df0.test_cross_entropy.isna()].groupby("model").step.min()
    assert frozen.to_dict() == {1: 2, 2: 1}
    first = df0[df0.diverged].groupby("model").step.min()
    assert first.to_dict() == {1: 1, 2: 1}
    assert df0.diverged.tolist() == df1.diverged.tolist()
    assert df0.test_cross_entropy.isna().tolist() == df1.test_cross_entropy.isna().tolist()


def test_diverged_rule_by_hand():
    # Flagged: frozen, a non-finite metric, or a cross-entropy above 10 ln C, row by row.
    lim = DIVERGENCE_FACTOR * np.log(10)
    up = np.nextafter(lim, np.inf)
    m = np.array(
        [
            [0.9, 0.3, 0.2],  # fine
            [0.1, lim, lim],  # at the limit: not above it
            [0.1, up, 0.2],  # test CE above
            [0.1, 0.2, up],  # training CE above
            [np.nan, 0.2, 0.2],
            [0.1, np.inf, 0.2],
            [0.1, 0.2, np.nan],
            [0.9, 0.3, 0.2],  # fine but frozen
        ]
    )
    frozen = np.arange(8) == 7
    want = [False, False, True, True, True, True, True, True]
    assert diverged(m, frozen, 10).tolist() == want
    # Binary: the limit is 10 ln 2 = 6.93.
    b = np.array([[0.5, 6.9, 0.1], [0.5, 7.0, 0.1]])
    assert diverged(b, np.zeros(2, bool), 2).tolist() == [False, True]


def test_huge_learning_rate_is_flagged_normal_run_is_not(backend, model, dtype):
    # lr = 1e6 blows the cross-entropy up by orders of magnitude, finite at first (the
    # softmax is computed stably); lr = 0.1 trains. Same flags on every backend.
    df, _ = run(model, backend, dtype, lr=[1e6, 0.1, 0.1], momentum=0.9, steps=30)
    bad, good = df[df.model == 0], df[df.model != 0]
    assert bad.diverged.tolist() == [False, True, True, True]
    first = bad[bad.step == 10]
    ce = first[["test_cross_entropy", "train_cross_entropy"]].to_numpy()
    limit = DIVERGENCE_FACTOR * np.log(model.n_classes)
    assert np.isfinite(ce).all() and ce.max() > 100 * limit  # flagged by the threshold
    assert not good.diverged.any() and (good.test_cross_entropy < limit).all()
    df0, _ = run(model, "numpy", dtype, lr=[1e6, 0.1, 0.1], momentum=0.9, steps=30)
    assert df.diverged.tolist() == df0.diverged.tolist()


# ------------------------------------------------------------------------ C++ engine


def test_cpp_threads_give_identical_results():
    # Models run on whichever thread is free; with concurrent single-threaded BLAS calls
    # from OpenMP threads the result must not depend on the team size.
    pytest.importorskip("sgdcore._cpu")
    from sgdcore.kernels._cpp import train as cpp

    out = {}
    try:
        for threads, slices in [(1, 1), (2, 1), (3, 1), (2, 2)]:
            cpp.OVERRIDE = dict(threads=threads, slices=slices, chunk=3)
            out[threads, slices] = run(WIDE, "cpp", np.float32, steps=40)[1]
    finally:
        cpp.OVERRIDE = None
    assert np.array_equal(out[2, 1], out[1, 1]) and np.array_equal(out[3, 1], out[1, 1])
    assert rel_err(out[2, 2], out[1, 1]) < 1e-5  # sliced: other GEMM shapes, other rounding


def test_cpp_restores_floating_point_mode():
    pytest.importorskip("sgdcore._cpu")
    run(MODELS["mlp"], "cpp", np.float32, steps=5)
    tiny = np.float32(1e-38) / np.float32(100)  # subnormal unless FTZ leaked out
    assert tiny > 0


def test_plan_rule():
    need("cpp")
    from sgdcore.kernels._cpp.train import plan

    big = MLP(784, 800, 10)
    p = plan(big, 3, 1, np.float32, threads=2)
    assert (p.threads, p.slices, p.block_rows, p.fuse) == (2, 1, 128, True)
    assert not p.sparse  # dense inputs unless told otherwise
    assert plan(big, 3, 16, np.float32, threads=2, density=0.19).sparse  # MNIST-like
    assert not plan(big, 3, 16, np.float32, threads=2, density=0.5).sparse
    assert not plan(LogisticRegression(784), 3, 16, np.float32, density=0.1).sparse
    assert plan(big, 1, 1, np.float32, threads=2).slices == 1  # never slices by default
    p = plan(big, 3, 1000, np.float32, threads=2)
    assert (p.block_rows, p.fuse) == (800, False)
    assert plan(big, 3, 1, np.float32, threads=2).chunk > 20 * p.chunk  # ~0.1 s of work


# ------------------------------------------------------------------ progress, errors


def test_progress_is_called_and_can_stop_the_run(backend):
    model = MODELS["mlp"]
    seen = []
    run(model, backend, steps=20, progress=seen.append)
    assert seen and seen[-1] == 20 and seen == sorted(seen)
    seen.clear()  # also when the last evaluation comes before the last step
    run(model, backend, steps=20, progress=seen.append, eval_every=None, eval_steps=[3])
    assert seen and seen[-1] == 20 and seen == sorted(seen)

    def stop(step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(model, backend, steps=20, progress=stop)


@pytest.mark.parametrize(
    "change, err, match",
    [
        (dict(batch_size=12), ValueError, "batch_size = 12 exceeds"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.0), TypeError, "batch_size must be an integer"),
        (dict(lr=[0.1, 0.2]), ValueError, "lr must be a number or a sequence of 3"),
        (dict(lr=-1.0), ValueError, r"lr\[0\]"),
        (dict(lr=["fast", 1, 2]), ValueError, "lr must be a number"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(l2=np.nan), ValueError, "l2"),
        (dict(seeds=[]), ValueError, "seeds is empty"),
        (dict(seeds=3), TypeError, "seeds must be a sequence"),
        (dict(seeds=[0, -1, 2]), ValueError, "seed must be in"),
        (dict(n_train=[30, 31, 11]), ValueError, "exceeds the 30 training examples"),
        (dict(n_train=[30, 20]), ValueError, "n_train must be None or a sequence of 3"),
        (dict(label_seeds=[None, -2, None]), ValueError, "label_seeds entry"),
        (dict(steps=-1), ValueError, "steps must be >= 0"),
        (dict(eval_every=None, eval_steps=[0, 99]), ValueError, "eval_steps must lie"),
        (dict(eval_every=0), ValueError, "eval_every must be >= 1"),
        (dict(eval_every=2, eval_steps=[1]), ValueError, "not both"),
        (dict(init=np.zeros((2, 3))), ValueError, "init must have shape"),
        (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
        (dict(progress=5), TypeError, "progress must be None or a callable"),
        (dict(backend="fortran"), ValueError, "unknown backend"),
    ],
)
def test_bad_arguments_raise_clear_errors(change, err, match):
    model = MODELS["mlp"]
    tr, te = problem(model)
    kw = {**GROUP, "steps": 3, "eval_every": 1, **change}
    with pytest.raises(err, match=match):
        sgdcore.train(model, tr, te, **kw)


@pytest.mark.parametrize(
    "data, err, match",
    [
        (lambda X, y: ((X.astype(np.int64), y), None), TypeError, "train X must hold floats"),
        (lambda X, y: ((X[:, :3], y), None), ValueError, r"train: X must have shape"),
        (lambda X, y: ((X, y[:-1]), None), ValueError, "train: y must have shape"),
        (lambda X, y: ((X, y + 10), None), ValueError, "train: y holds label"),
        (lambda X, y: ((np.where(X > 0.5, np.nan, X), y), None), ValueError, "NaN"),
        (lambda X, y: (X, None), TypeError, "train must be a pair"),
        (lambda X, y: (None, (X[:, :2], y)), ValueError, "test: X must have shape"),
    ],
)
def test_bad_data_raise_clear_errors(data, err, match):
    model = MODELS["mlp"]
    (X, y), te = problem(model)
    tr, te2 = data(X, y)
    with pytest.raises(err, match=match):
        sgdcore.train(
            model,
            tr if tr is not None else (X, y),
            te2 or te,
            batch_size=2,
            lr=0.1,
            steps=1,
            seeds=[0],
        )


def test_nonfinite_init_is_refused():
    model = MODELS["mlp"]
    tr, te = problem(model)
    init = np.full((1, model.n_params), np.inf)
    with pytest.raises(ValueError, match="init contains NaN or inf"):
        sgdcore.train(model, tr, te, batch_size=2, lr=0.1, steps=1, seeds=[0], init=init)


def test_cpp_boundary_checks():
    _cpu = pytest.importorskip("sgdcore._cpu")
    model = MODELS["mlp"]
    (X, y), (Xt, yt) = problem(model)
    K, P = 1, model.n_params
    good = dict(
        X=X,
        Y=y[None, :],
        X_test=Xt,
        y_test=yt,
        theta=np.zeros((K, P)),
        seeds=np.zeros(K, np.uint64),
        n_train=np.full(K, 30),
        lr=np.ones(K),
        momentum=np.zeros(K),
        l2=np.zeros(K),
        batch_size=2,
        steps=2,
        eval_steps=np.array([0, 2]),
        metrics=np.empty((K, 2, 3)),
        div_step=np.empty(K, np.int64),
    )
    _cpu.train(2, 9, 7, 4, **good)
    for change, match in [
        (dict(Y=(y[None, :] + 4)), "out of range"),
        (dict(eval_steps=np.array([2, 0])), "eval_steps must be increasing"),
        (dict(momentum=np.ones(K)), "momentum"),
        (dict(n_train=np.full(K, 31)), "n_train"),
        (dict(metrics=np.empty((K, 3, 3))), "metrics must have shape"),
        (dict(theta=np.zeros((K, P), np.float32)), "X must have dtype float32"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            _cpu.train(2, 9, 7, 4, **{**good, **change})


def test_frame_is_pandas():
    model = MODELS["logistic_binary"]
    tr, te = problem(model)
    df = sgdcore.train(model, tr, te, batch_size=30, lr=1.0, steps=2, seeds=[0], backend="numpy")
    assert isinstance(df, pd.DataFrame) and df.noise_scale.eq(0).all()  # full batch: g = 0


# ----------------------------------------------------------- C++ engine, sparse inputs


def sparse_problem(model, n=40, n_test=17, density=0.2, seed=0):
    """problem() with most inputs zero (MNIST-like), a pixel zero in every training row
    but not in the test set, and an all-zero training row."""
    (X, y), (Xt, yt) = problem(model, n, n_test, seed)
    rng = np.random.default_rng(seed + 1)
    X[rng.random(X.shape) > density] = 0.0
    Xt[rng.random(Xt.shape) > density] = 0.0
    X[:, 3] = 0.0
    Xt[:, 3] = 0.5
    X[5] = 0.0
    return (X, y), (Xt, yt)


@contextmanager
def cpp_plan(**fields):
    from sgdcore.kernels._cpp import train as cpp

    cpp.OVERRIDE = fields
    try:
        yield
    finally:
        cpp.OVERRIDE = None


def train_sparse(backend, dtype=np.float64, steps=50, n_test=17, **kw):
    tr, te = sparse_problem(WIDE, n_test=n_test)
    args = {**GROUP, "eval_every": 10, **kw}
    return sgdcore.train(
        WIDE, tr, te, steps=steps, dtype=dtype, backend=backend, return_params=True, **args
    )


@pytest.mark.parametrize("B", [1, 5])
@pytest.mark.parametrize("chunk", [3, 1000])
def test_cpp_sparse_inputs_match_numpy_engine(dtype, B, chunk):
    # The first layer on the non-zeros with lazily updated rows of W1 (chunk 3: chunks
    # end every 3 steps and evaluations read rows brought up to date in a copy),
    # with momentum, l2, n_train and permuted labels differing across the group.
    need("cpp")
    df0, th0 = train_sparse("numpy", dtype, batch_size=B)
    with cpp_plan(sparse=True, chunk=chunk):
        df1, th1 = train_sparse("cpp", dtype, batch_size=B)
    tol = ENGINE_RTOL[np.dtype(dtype)]
    assert rel_err(th1, th0) < tol
    cols = ["test_accuracy", "test_cross_entropy", "train_cross_entropy"]
    assert np.allclose(df1[cols].to_numpy(), df0[cols].to_numpy(), rtol=tol, atol=tol)


def test_cpp_sparse_path_is_chosen_and_leaves_unused_pixels_alone():
    need("cpp")
    from sgdcore.kernels._cpp.sparse import SPARSE_DENSITY
    from sgdcore.kernels._cpp.train import plan

    (X, _), _ = sparse_problem(WIDE)
    assert np.count_nonzero(X) / X.size <= SPARSE_DENSITY
    assert plan(WIDE, 3, 4, np.float64, density=np.count_nonzero(X) / X.size).sparse
    # Pixel 3 is zero in every training row: with l2 = 0 its weights never move.
    _, th = train_sparse("cpp", l2=0.0, batch_size=4)
    W1 = th[:, : WIDE.n_hidden * WIDE.n_features].reshape(3, WIDE.n_hidden, -1)
    W1_0 = np.stack([WIDE.init(s) for s in GROUP["seeds"]])[:, : W1[0].size]
    assert np.array_equal(W1[:, :, 3], W1_0.reshape(W1.shape)[:, :, 3])
    assert not np.array_equal(W1[:, :, 0], W1_0.reshape(W1.shape)[:, :, 0])


def test_cpp_sparse_threads_give_identical_results():
    need("cpp")
    out = []
    for threads in (1, 2, 3):
        with cpp_plan(sparse=True, threads=threads, chunk=3):
            out.append(train_sparse("cpp", np.float32, steps=40)[1])
    assert np.array_equal(out[1], out[0]) and np.array_equal(out[2], out[0])


def test_cpp_sparse_evaluation_over_many_chunks_matches_oracle():
    # 2,100 test rows: several evaluation chunks, each compressed on its own.
    need("cpp")
    with cpp_plan(sparse=True):
        df, th = train_sparse("cpp", steps=6, n_test=2100, eval_every=None)
    _, (Xt, yt) = sparse_problem(WIDE, n_test=2100)
    last = df[df.step == 6]
    for k in range(3):
        assert last.test_accuracy.iloc[k] == pytest.approx(
            reference.accuracy(WIDE, th[k], Xt, yt), abs=1e-12
        )
        want = reference.loss(WIDE, th[k], Xt, yt, reduction="mean")
        assert last.test_cross_entropy.iloc[k] == pytest.approx(want, rel=1e-10)


def test_cpp_sparse_divergent_model_is_frozen(dtype):
    need("cpp")
    huge = 1e30 if dtype == np.float32 else 1e300
    lr = [0.1, huge, 0.05]
    _, th0 = train_sparse("numpy", dtype, steps=30, lr=lr)
    with cpp_plan(sparse=True, chunk=4):
        df, th = train_sparse("cpp", dtype, steps=30, lr=lr)
    assert df[df.model == 1].diverged.any() and not df[df.model != 1].diverged.any()
    assert rel_err(th[[0, 2]], th0[[0, 2]]) < ENGINE_RTOL[np.dtype(dtype)]
