"""Per-example gradients, their norms and gradient-noise statistics: every backend x
dtype x model against the float64 oracle, the identities they must satisfy, streaming,
the memory budget and the input contract."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from conftest import MODELS, RTOL, bad_inputs, make_problem, rel_err

import sgdcore
from sgdcore import _backend, reference
from sgdcore.models import MLP, LogisticRegression

QUANTITIES = ["per_example_grads", "per_example_grad_norms", "gradient_noise", "cov_matvec"]


def _directions(model, k, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal((model.n_params, k)).astype(dtype)


# ---------------------------------------------------------------- per-example grads


def test_per_example_grads_match_oracle(model, dtype, backend):
    theta, X, y = make_problem(model, dtype=dtype)
    g = sgdcore.per_example_grads(model, theta, X, y, backend=backend)
    assert g.dtype == dtype and g.shape == (X.shape[0], model.n_params)
    assert rel_err(g, reference.per_example_grads(model, theta, X, y)) <= RTOL[np.dtype(dtype)]


def test_per_example_grads_sum_to_batch_gradient(model, backend):
    theta, X, y = make_problem(model)
    g = sgdcore.per_example_grads(model, theta, X, y, backend=backend)
    _, batch = sgdcore.loss_and_grad(model, theta, X, y, backend="numpy")
    assert rel_err(g.sum(axis=0), batch) <= 1e-12


def test_per_example_grads_out_is_written(model, backend):
    theta, X, y = make_problem(model)
    out = np.full((X.shape[0], model.n_params), np.nan)
    g = sgdcore.per_example_grads(model, theta, X, y, out=out, backend=backend)
    assert g is out and np.all(np.isfinite(out))
    assert rel_err(out, reference.per_example_grads(model, theta, X, y)) <= 1e-10


@pytest.mark.parametrize("chunk", [1, 5, 23, 100])
def test_chunked_blocks_cover_every_example(backend, chunk):
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    full = reference.per_example_grads(model, theta, X, y)
    starts = []
    for start, block in sgdcore.per_example_grads(
        model, theta, X, y, chunk_size=chunk, backend=backend
    ):
        starts.append(start)
        assert block.shape == (min(chunk, X.shape[0] - start), model.n_params)
        assert rel_err(block, full[start : start + block.shape[0]]) <= 1e-10
    assert starts == list(range(0, X.shape[0], chunk))


def test_chunked_blocks_reuse_out():
    model = MODELS["logistic_softmax"]
    theta, X, y = make_problem(model)
    out = np.empty((4, model.n_params))
    full = reference.per_example_grads(model, theta, X, y)
    for start, block in sgdcore.per_example_grads(model, theta, X, y, chunk_size=4, out=out):
        assert np.shares_memory(block, out)
        assert rel_err(block, full[start : start + block.shape[0]]) <= 1e-10
    with pytest.raises(ValueError, match=r"out must have shape \(4, 40\)"):
        sgdcore.per_example_grads(model, theta, X, y, chunk_size=4, out=np.empty((23, 40)))


@functools.lru_cache(maxsize=1)
def _big_problem():
    """More rows (2200) than one compiled chunk takes (2097 at H = 2000), and the
    oracle's per-example gradients (computed once for the tests that share it)."""
    model = MLP(1, 2000, 2)
    theta, X, y = make_problem(model, n=2200)
    for a in (theta, X, y):
        a.setflags(write=False)
    g = reference.per_example_grads(model, theta, X, y)
    g.setflags(write=False)
    return model, theta, X, y, g


def test_large_batch_crosses_chunks(backend):
    """The public functions over more rows than one kernel call takes."""
    model, theta, X, y, g = _big_problem()
    sq = sgdcore.per_example_grad_norms(model, theta, X, y, squared=True, backend=backend)
    assert rel_err(sq, np.sum(g * g, axis=1)) <= 1e-10
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    G = g.mean(axis=0)
    assert rel_err(r.mean_grad, G) <= 1e-10
    assert rel_err(r.trace_cov, np.sum((g - G) ** 2) / g.shape[0]) <= 1e-10
    V = _directions(model, 2, np.float64)
    Fv = (g - G).T @ ((g - G) @ V) / g.shape[0]
    assert rel_err(r.cov_matvec(V), Fv) <= 1e-10
    pg = sgdcore.per_example_grads(model, theta, X, y, backend=backend)
    assert rel_err(pg, g) <= 1e-10


def test_kernels_accumulate_over_their_own_chunks(backend):
    """Each kernel called directly on more rows than one compiled chunk, so the C++
    loops over chunks (and their accumulation) are exercised too."""
    model, theta, X, y, g = _big_problem()
    kernel = {q: _backend.get_kernel(model, q, backend)[1] for q in [*QUANTITIES, "grad_gram"]}
    out = np.empty_like(g)
    kernel["per_example_grads"](model, theta, X, y, out)
    assert rel_err(out, g) <= 1e-10
    sq = np.empty(X.shape[0])
    kernel["per_example_grad_norms"](model, theta, X, y, sq)
    assert rel_err(sq, np.sum(g * g, axis=1)) <= 1e-10
    total, sq2 = np.empty(model.n_params), np.empty(X.shape[0])
    ssq = kernel["gradient_noise"](model, theta, X, y, total, sq2)
    assert rel_err(total, g.sum(axis=0)) <= 1e-10 and rel_err(sq2, sq) <= 1e-12
    assert rel_err(ssq, total @ total) <= 1e-12
    Vt = _directions(model, 2, np.float64).T.copy()
    shift = np.array([0.5, -0.25])
    fv, ssum = np.empty_like(Vt), np.empty(2)
    kernel["cov_matvec"](model, theta, X, y, Vt, shift, fv, ssum)
    s = g @ Vt.T - shift
    assert rel_err(fv, s.T @ g) <= 1e-10 and rel_err(ssum, s.sum(axis=0)) <= 1e-10
    K = np.empty((300, 300))
    kernel["grad_gram"](model, theta, X[:300], y[:300], K)
    assert rel_err(K, g[:300] @ g[:300].T) <= 1e-10


@pytest.mark.parametrize("shift", [0, 1], ids=["aligned", "misaligned"])
def test_large_outputs_are_streamed(backend, dtype, shift):
    """Outputs over 8 MiB take the C++ non-temporal store path; rows start at every
    alignment (odd P), and ``out`` itself may start off a 16-byte boundary."""
    for model, n in ((LogisticRegression(784), 2800), (MLP(784, 100, 10), 30)):
        theta, X, y = make_problem(model, n=n, dtype=dtype)
        buf = np.empty(n * model.n_params + 1, dtype=dtype)
        out = buf[shift : shift + n * model.n_params].reshape(n, model.n_params)
        assert out.nbytes >= 8 << 20
        g = sgdcore.per_example_grads(model, theta, X, y, out=out, backend=backend)
        want = reference.per_example_grads(model, theta, X, y)
        assert rel_err(g, want) <= RTOL[np.dtype(dtype)]


@pytest.mark.parametrize("what", ["norms", "noise", "cov_matvec", "gram"])
def test_statistics_never_form_n_by_p(what):
    """Norms, noise statistics, covariance products and the Gram matrix allocate
    O(N (D + H + C)) (plus O(P) and O(N^2) results), never N x P: NumPy's allocations,
    which the NumPy backend's temporaries are, traced by tracemalloc."""
    import tracemalloc

    model = MLP(100, 200, 10)  # P = 22,210
    theta, X, y = make_problem(model, n=400)
    r = sgdcore.gradient_noise(model, theta, X, y, backend="numpy")
    V = _directions(model, 2, np.float64)
    run = {
        "norms": lambda: sgdcore.per_example_grad_norms(model, theta, X, y, backend="numpy"),
        "noise": lambda: sgdcore.gradient_noise(model, theta, X, y, backend="numpy"),
        "cov_matvec": lambda: r.cov_matvec(V),
        "gram": lambda: r.top_eigenvalues(3, method="gram"),
    }[what]
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n_by_p = X.shape[0] * model.n_params * 8  # 71 MB; the Gram matrix is 1.3 MB
    assert peak < n_by_p / 8, f"{what} peaked at {peak / 1e6:.1f} MB"


# ------------------------------------------------------------------- memory budget


def test_memory_budget_refuses_with_advice():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    nbytes = X.shape[0] * model.n_params * 8
    with pytest.raises(sgdcore.MemoryBudgetError) as info:
        sgdcore.per_example_grads(model, theta, X, y, max_bytes=nbytes - 1)
    msg = str(info.value)
    assert f"needs 0.0 MB ({nbytes:,} bytes)" in msg
    assert "per_example_grad_norms" in msg and "gradient_noise" in msg and "chunk_size" in msg
    assert isinstance(info.value, MemoryError)
    g = sgdcore.per_example_grads(model, theta, X, y, max_bytes=nbytes)
    assert g.shape == (X.shape[0], model.n_params)


def test_set_memory_budget_and_restore():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    old = sgdcore.set_memory_budget(1000)
    try:
        assert sgdcore.memory_budget() == 1000
        with pytest.raises(
            sgdcore.MemoryBudgetError, match=r"over the memory budget of 0.0 MB \(1,000 bytes\)"
        ):
            sgdcore.per_example_grads(model, theta, X, y)
        # a caller-provided out needs no new memory, and one small block fits
        out = np.empty((X.shape[0], model.n_params))
        assert sgdcore.per_example_grads(model, theta, X, y, out=out) is out
        blocks = list(sgdcore.per_example_grads(model, theta, X, y, chunk_size=1))
        assert len(blocks) == X.shape[0]
        with pytest.raises(sgdcore.MemoryBudgetError, match="smaller chunk_size"):
            sgdcore.per_example_grads(model, theta, X, y, chunk_size=10)
    finally:
        sgdcore.set_memory_budget(old)
    assert sgdcore.memory_budget() > 1000
    with pytest.raises(ValueError, match="nbytes"):
        sgdcore.set_memory_budget(-1)
    with pytest.raises(ValueError, match="max_bytes"):
        sgdcore.per_example_grads(model, theta, X, y, max_bytes=1.5)


# ------------------------------------------------------------------------ norms


@pytest.mark.parametrize("squared", [False, True])
def test_grad_norms_match_oracle(model, dtype, backend, squared):
    theta, X, y = make_problem(model, dtype=dtype)
    n = sgdcore.per_example_grad_norms(model, theta, X, y, squared=squared, backend=backend)
    g = reference.per_example_grads(model, theta, X, y)
    want = np.sum(g * g, axis=1)
    assert n.dtype == dtype and n.shape == (X.shape[0],)
    assert rel_err(n, want if squared else np.sqrt(want)) <= RTOL[np.dtype(dtype)]
    assert (
        rel_err(n, reference.per_example_grad_norms(model, theta, X, y, squared))
        <= (RTOL[np.dtype(dtype)])
    )


def test_grad_norms_out_is_written(model, backend):
    theta, X, y = make_problem(model)
    out = np.full(X.shape[0], np.nan)
    n = sgdcore.per_example_grad_norms(model, theta, X, y, out=out, backend=backend)
    assert n is out and np.all(np.isfinite(out))


# --------------------------------------------------------------- noise statistics


def test_gradient_noise_matches_oracle(model, dtype, backend):
    theta, X, y = make_problem(model, dtype=dtype)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    ref = reference.gradient_noise(model, theta, X, y)
    tol = RTOL[np.dtype(dtype)]
    assert r.n == ref["n"] == X.shape[0]
    assert r.mean_grad.dtype == dtype and r.mean_grad.shape == (model.n_params,)
    assert rel_err(r.mean_grad, ref["mean_grad"]) <= tol
    for key in ("trace_cov", "grad_norm_sq", "b_simple"):
        assert isinstance(getattr(r, key), float)
        assert rel_err(getattr(r, key), ref[key]) <= tol, key
    assert "GradientNoiseResult(n=23" in repr(r)


def test_cov_matvec_matches_oracle(model, dtype, backend):
    theta, X, y = make_problem(model, dtype=dtype)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    F = reference.gradient_noise(model, theta, X, y)["cov"]
    V = _directions(model, 3, dtype)
    tol = RTOL[np.dtype(dtype)]
    FV = r.cov_matvec(V)
    assert FV.shape == V.shape and FV.dtype == dtype and FV.flags.c_contiguous
    assert rel_err(FV, F @ V.astype(np.float64)) <= tol
    Fv = r.cov_matvec(V[:, 1].copy())
    assert Fv.shape == (model.n_params,)
    assert rel_err(Fv, F @ V[:, 1].astype(np.float64)) <= tol
    assert r.cov_matvec(V[:, :0]).shape == (model.n_params, 0)


def test_covariance_is_symmetric_psd(model, backend):
    theta, X, y = make_problem(model)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    V = _directions(model, 6, np.float64)
    M = V.T @ r.cov_matvec(V)  # V^T F V
    assert rel_err(M, M.T) <= 1e-12
    assert np.linalg.eigvalsh((M + M.T) / 2).min() >= -1e-12 * np.abs(M).max()
    # the explicit covariance, column by column, is symmetric with trace tr F
    Fm = r.cov_matvec(np.eye(model.n_params))
    assert rel_err(Fm, Fm.T) <= 1e-12
    assert rel_err(np.trace(Fm), r.trace_cov) <= 1e-12


def test_mean_of_per_example_grads_is_mean_grad(model, backend):
    """sum_i g_i = N G, and tr F = mean |g_i|^2 - |G|^2 from the norms."""
    theta, X, y = make_problem(model)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    g = sgdcore.per_example_grads(model, theta, X, y, backend=backend)
    sq = sgdcore.per_example_grad_norms(model, theta, X, y, squared=True, backend=backend)
    assert rel_err(g.sum(axis=0), r.n * r.mean_grad) <= 1e-12
    assert rel_err(r.grad_norm_sq, r.mean_grad @ r.mean_grad) <= 1e-12
    assert rel_err(r.trace_cov, sq.mean() - r.grad_norm_sq) <= 1e-10
    assert rel_err(r.b_simple, r.trace_cov / r.grad_norm_sq) <= 1e-15


def test_one_example(model, backend):
    theta, X, y = make_problem(model, n=1)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    g = reference.per_example_grads(model, theta, X, y)
    assert r.trace_cov == 0.0 and r.b_simple == 0.0 and r.n == 1
    assert rel_err(r.mean_grad, g[0]) <= 1e-12
    assert r.minibatch_cov_trace(1) == 0.0
    V = _directions(model, 2, np.float64)
    assert np.abs(r.cov_matvec(V)).max() <= 1e-14 * (g[0] @ g[0]) * np.abs(V).max()
    assert rel_err(sgdcore.per_example_grads(model, theta, X, y, backend=backend), g) <= 1e-12


def test_zero_gradient_gives_inf_or_nan_b_simple():
    """theta = 0 and balanced labels on constant inputs: G = 0 exactly."""
    model = LogisticRegression(3)
    X, y = np.ones((4, 3)), np.array([0, 1, 1, 0])
    r = sgdcore.gradient_noise(model, np.zeros(4), X, y)
    assert r.grad_norm_sq == 0.0 and r.trace_cov == 1.0 and r.b_simple == np.inf
    r = sgdcore.gradient_noise(model, np.zeros(4), np.zeros((2, 3)), np.array([0, 1]))
    assert r.b_simple == np.inf  # g_i = (0, 0, 0, +-1/2): tr F = 1/4
    ref = reference.gradient_noise(model, np.zeros(4), X, y)
    assert ref["b_simple"] == np.inf


# ----------------------------------------------------------- mini-batch covariance


def _enumerated_minibatch_trace(g, B):
    """E |mean_batch g - G|^2 over every subset of size B (exact, tiny N)."""
    G = g.mean(axis=0)
    devs = [
        np.sum((g[list(s)].mean(axis=0) - G) ** 2) for s in itertools.combinations(range(len(g)), B)
    ]
    return float(np.mean(devs))


@pytest.mark.parametrize("B", [1, 2, 3, 5, 6])
def test_minibatch_cov_trace_matches_enumeration(model, B):
    theta, X, y = make_problem(model, n=6)
    r = sgdcore.gradient_noise(model, theta, X, y)
    g = reference.per_example_grads(model, theta, X, y)
    want = _enumerated_minibatch_trace(g, B)
    got = r.minibatch_cov_trace(B)
    assert abs(got - want) <= 1e-10 * r.trace_cov
    assert got == pytest.approx(reference.minibatch_cov_trace(r.trace_cov, 6, B), rel=1e-14)
    if B == 6:
        assert got == 0.0


@pytest.mark.slow
def test_minibatch_cov_trace_matches_monte_carlo():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model, n=200)
    r = sgdcore.gradient_noise(model, theta, X, y)
    g = reference.per_example_grads(model, theta, X, y)
    G = g.mean(axis=0)
    rng = np.random.default_rng(7)
    for B in (10, 150):
        draws = np.array(
            [
                np.sum((g[rng.choice(200, B, replace=False)].mean(axis=0) - G) ** 2)
                for _ in range(20000)
            ]
        )
        se = draws.std() / np.sqrt(draws.size)
        assert abs(draws.mean() - r.minibatch_cov_trace(B)) <= 5 * se


# ----------------------------------------------------------------- eigenvalues


def test_gram_kernel_matches_oracle(model, dtype, backend):
    theta, X, y = make_problem(model, dtype=dtype)
    _, kernel = _backend.get_kernel(model, "grad_gram", backend)
    K = np.empty((X.shape[0], X.shape[0]), dtype=dtype)
    kernel(model, theta, X, y, K)
    g = reference.per_example_grads(model, theta, X, y)
    assert rel_err(K, g @ g.T) <= RTOL[np.dtype(dtype)]


@pytest.mark.parametrize("method", ["gram", "lanczos"])
def test_top_eigenvalues_match_oracle(model, dtype, backend, method):
    theta, X, y = make_problem(model, dtype=dtype)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    F = reference.gradient_noise(model, theta, X, y)["cov"]
    want = np.linalg.eigvalsh(F)[::-1]
    k = min(4, model.n_params - 1)
    ev = r.top_eigenvalues(k, method=method)
    assert ev.shape == (k,) and ev.dtype == np.float64
    assert np.all(np.diff(ev) <= 0)
    assert rel_err(ev, want[:k]) <= (1e-10 if dtype == np.float64 else 1e-5)


def test_trace_is_sum_of_top_n_eigenvalues(model, backend):
    theta, X, y = make_problem(model, n=8)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    ev = r.top_eigenvalues(min(8, model.n_params), method="gram")
    assert rel_err(ev.sum(), r.trace_cov) <= 1e-12
    assert ev.min() >= -1e-12 * ev.max()  # F is PSD


def test_top_eigenvalues_pad_beyond_rank():
    model = MODELS["mlp"]  # P = 102 > N = 5: rank F <= 4
    theta, X, y = make_problem(model, n=5)
    ev = sgdcore.gradient_noise(model, theta, X, y).top_eigenvalues(10)
    assert np.all(ev[5:] == 0.0) and abs(ev[4]) <= 1e-12 * ev[0]
    want = np.linalg.eigvalsh(reference.gradient_noise(model, theta, X, y)["cov"])[::-1]
    assert rel_err(ev, want[:10]) <= 1e-10


def test_auto_method_and_bad_arguments(monkeypatch):
    model = MODELS["logistic_softmax"]
    theta, X, y = make_problem(model)
    r = sgdcore.gradient_noise(model, theta, X, y)
    want = np.linalg.eigvalsh(reference.gradient_noise(model, theta, X, y)["cov"])[::-1]
    monkeypatch.setattr(sgdcore.grads, "GRAM_MAX_N", 4)  # N = 23 > 4: Lanczos
    assert rel_err(r.top_eigenvalues(3), want[:3]) <= 1e-10
    for k in (0, model.n_params + 1):
        with pytest.raises(ValueError, match="k must satisfy"):
            r.top_eigenvalues(k)
    with pytest.raises(ValueError, match="needs k < P"):
        r.top_eigenvalues(model.n_params, method="lanczos")
    with pytest.raises(ValueError, match="method must be"):
        r.top_eigenvalues(2, method="power")
    with pytest.raises(sgdcore.MemoryBudgetError, match="method='lanczos'"):
        r.top_eigenvalues(2, method="gram", max_bytes=100)


# -------------------------------------------------------------------- streaming


@pytest.mark.parametrize("splits", [[23], [1, 22], [7, 7, 9], [1] * 23])
def test_streaming_equals_one_pass(model, dtype, backend, splits):
    theta, X, y = make_problem(model, dtype=dtype)
    one = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    acc = sgdcore.GradientNoise(model, theta, backend=backend)
    edges = np.cumsum([0, *splits])
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        acc.update(X[a:b], y[a:b])
    assert acc.n == X.shape[0]
    r = acc.result()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert rel_err(r.mean_grad, one.mean_grad) <= tol
    for key in ("trace_cov", "grad_norm_sq", "b_simple"):
        assert rel_err(getattr(r, key), getattr(one, key)) <= tol, key
    V = _directions(model, 2, dtype)
    assert rel_err(r.cov_matvec(V), one.cov_matvec(V)) <= tol
    assert rel_err(r.top_eigenvalues(2), one.top_eigenvalues(2)) <= tol


def test_streaming_without_kept_data():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    acc = sgdcore.GradientNoise(model, theta, keep_data=False)
    r = acc.update(X[:10], y[:10]).update(X[10:], y[10:]).result()
    assert rel_err(r.trace_cov, reference.gradient_noise(model, theta, X, y)["trace_cov"]) <= 1e-10
    with pytest.raises(RuntimeError, match="keep_data=False"):
        r.cov_matvec(np.ones(model.n_params))
    with pytest.raises(RuntimeError, match="keep_data=False"):
        r.top_eigenvalues(1)


def test_accumulator_copies_theta_and_checks_chunks():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    acc = sgdcore.GradientNoise(model, theta)
    with pytest.raises(ValueError, match="no examples yet"):
        acc.result()
    acc.update(X, y)
    theta[:] = 0.0  # the accumulator holds its own copy
    assert (
        rel_err(
            acc.result().mean_grad,
            reference.gradient_noise(model, make_problem(model)[0], X, y)["mean_grad"],
        )
        <= 1e-12
    )
    with pytest.raises(TypeError, match="X has dtype float32"):
        acc.update(X.astype(np.float32), y)
    with pytest.raises(ValueError, match="X is empty"):
        acc.update(X[:0], y[:0])
    with pytest.raises(ValueError, match=r"outside \[0"):
        acc.update(X, y + 10)
    with pytest.raises(ValueError, match="X contains NaN"):
        acc.update(np.where(X > 0.5, np.nan, X), y)


# -------------------------------------------------------------------- bad input

PUBLIC = {
    "per_example_grads": sgdcore.per_example_grads,
    "per_example_grads-chunked": lambda *a, **k: sgdcore.per_example_grads(*a, chunk_size=2, **k),
    "per_example_grad_norms": sgdcore.per_example_grad_norms,
    "gradient_noise": sgdcore.gradient_noise,
}


@pytest.mark.parametrize("fn", list(PUBLIC.values()), ids=list(PUBLIC))
@pytest.mark.parametrize("mutate, error, match", bad_inputs("inf-X", "nan-theta"))
def test_bad_input_is_refused(model, backend, fn, mutate, error, match):
    theta, X, y = make_problem(model)
    with pytest.raises(error, match=match):
        fn(model, *mutate(theta, X, y), backend=backend)


def test_fused_finite_check_reports_overflow():
    """The C++ kernel checks the values it writes instead of a separate pass over X."""
    model = MODELS["mlp"]
    theta, X, y = make_problem(model, dtype=np.float32)
    name = _backend.resolve("auto", quantity="per_example_grads", kind=model.kind)
    if "checks_finite" not in _backend.flags(model.kind, "per_example_grads", name):
        pytest.skip("no backend with a fused finiteness check")
    big = theta * np.float32(1e30)  # finite, but the logits overflow
    with pytest.raises(FloatingPointError, match="overflow"):
        sgdcore.per_example_grads(model, big, X, y)
    bad = X.copy()
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at index \[3, 4\]\)"):
        sgdcore.per_example_grads(model, theta, bad, y)
    # check_finite=False: no check, and no error
    out = sgdcore.per_example_grads(model, theta, bad, y, check_finite=False)
    assert not np.all(np.isfinite(out))


def test_bad_arguments():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    r = sgdcore.gradient_noise(model, theta, X, y)
    with pytest.raises(ValueError, match="batch_size B=24 exceeds the N=23"):
        r.minibatch_cov_trace(24)
    with pytest.raises(ValueError, match="batch_size must satisfy 1 <="):
        r.minibatch_cov_trace(0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        r.minibatch_cov_trace(2.0)
    P = model.n_params
    with pytest.raises(ValueError, match=rf"v must have shape \({P},\) or \({P}, k\)"):
        r.cov_matvec(np.ones(P + 1))
    with pytest.raises(ValueError, match="v must have shape"):
        r.cov_matvec(np.ones((2, P)))
    with pytest.raises(TypeError, match="v has dtype float32"):
        r.cov_matvec(np.ones(P, dtype=np.float32))
    with pytest.raises(ValueError, match="v contains NaN"):
        r.cov_matvec(np.full(P, np.nan))
    with pytest.raises(TypeError, match="v must be a NumPy array"):
        r.cov_matvec([1.0] * P)
    with pytest.raises(ValueError, match="chunk_size must satisfy"):
        sgdcore.per_example_grads(model, theta, X, y, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        sgdcore.per_example_grads(model, theta, X, y, chunk_size=2.5)
    with pytest.raises(ValueError, match="out must have shape"):
        sgdcore.per_example_grad_norms(model, theta, X, y, out=np.empty(3))
    with pytest.raises(ValueError, match="out must have shape"):
        sgdcore.per_example_grads(model, theta, X, y, out=np.empty((23, P), dtype=np.float32))
    with pytest.raises(TypeError, match="model must be"):
        sgdcore.gradient_noise("mlp", theta, X, y)
    with pytest.raises(ValueError, match="unknown backend"):
        sgdcore.per_example_grad_norms(model, theta, X, y, backend="fortran")


def test_read_only_and_int32_inputs(model, backend):
    theta, X, y = make_problem(model)
    y32 = y.astype(np.int32)
    V = _directions(model, 2, np.float64)
    for a in (theta, X, y32, V):
        a.setflags(write=False)
    g = sgdcore.per_example_grads(model, theta, X, y32, backend=backend)
    assert rel_err(g, reference.per_example_grads(model, theta, X, y)) <= 1e-10
    r = sgdcore.gradient_noise(model, theta, X, y32, backend=backend)
    F = reference.gradient_noise(model, theta, X, y)["cov"]
    assert rel_err(r.cov_matvec(V), F @ V) <= 1e-10
    assert rel_err(r.cov_matvec(V[:, 0]), F @ V[:, 0]) <= 1e-10


def test_compiled_boundary_checks_itself():
    """The C++ entry points refuse bad arrays even when Python's checks are bypassed."""
    _cpu = pytest.importorskip("sgdcore._cpu")
    model = MLP(4, 3, 2)
    theta, X, y = make_problem(model, n=5)
    P = model.n_params
    d = (2, 4, 3, 2)
    with pytest.raises(ValueError, match=r"out must have shape \(5, 23\)"):
        _cpu.per_example_grads(*d, theta, X, y, np.empty((4, P)))
    with pytest.raises(ValueError, match="out must be writable"):
        o = np.empty((5, P))
        o.setflags(write=False)
        _cpu.per_example_grads(*d, theta, X, y, o)
    with pytest.raises(ValueError, match="out of range"):
        _cpu.per_example_grad_sqnorms(*d, theta, X, y + 2, np.empty(5))
    with pytest.raises(TypeError, match="out must have dtype float64"):
        _cpu.per_example_grad_sqnorms(*d, theta, X, y, np.empty(5, dtype=np.float32))
    with pytest.raises(ValueError, match=r"sqnorms must have shape \(5,\)"):
        _cpu.gradient_noise(*d, theta, X, y, np.empty(P), np.empty(6))
    with pytest.raises(ValueError, match="grad must have shape"):
        _cpu.gradient_noise(*d, theta, X, y, np.empty(P - 1), np.empty(5))
    Vt = np.ones((2, P))
    with pytest.raises(ValueError, match=r"Vt must have shape \(\*, 23\)"):
        _cpu.cov_matvec(*d, theta, X, y, np.ones((2, P + 1)), np.zeros(2), Vt, np.zeros(2))
    with pytest.raises(ValueError, match=r"shift must have shape \(2,\)"):
        _cpu.cov_matvec(*d, theta, X, y, Vt, np.zeros(3), np.empty((2, P)), np.zeros(2))
    with pytest.raises(TypeError, match="ssum must have dtype float64"):
        _cpu.cov_matvec(
            *d,
            theta.astype(np.float32),
            X.astype(np.float32),
            y,
            Vt.astype(np.float32),
            np.zeros(2, np.float32),
            np.empty((2, P), np.float32),
            np.zeros(2, np.float32),
        )
    with pytest.raises(ValueError, match=r"out must have shape \(5, 5\)"):
        _cpu.grad_gram(*d, theta, X, y, np.empty((5, 4)))
    with pytest.raises(ValueError, match="C-contiguous"):
        _cpu.grad_gram(*d, theta, np.asfortranarray(X), y, np.empty((5, 5)))
    with pytest.raises(ValueError, match="unknown model kind"):
        _cpu.grad_gram(7, 4, 3, 2, theta, X, y, np.empty((5, 5)))
    with pytest.raises(ValueError, match="invalid model widths"):
        _cpu.per_example_grads(2, 4, 0, 2, theta, X, y, np.empty((5, P)))


# ------------------------------------------------------------ registry and CLI


def test_every_backend_registers_every_quantity():
    reg = _backend.registry()
    for b in _backend.available_backends():
        for q in [*QUANTITIES, "grad_gram"]:
            for kind in _backend.MODEL_KINDS:
                assert (kind, q, b) in reg, (kind, q, b)


def test_info_lists_the_quantities():
    from sgdcore.cli import info_lines

    text = "\n".join(info_lines())
    for q in QUANTITIES:
        assert q in text


# ------------------------------------------------- projections and eigenvectors


def test_projections_match_oracle(model, dtype, backend):
    theta, X, y = make_problem(model, dtype=dtype)
    V = _directions(model, 3, dtype)
    want = reference.per_example_grads(model, theta, X, y) @ V.astype(np.float64)
    # a block of 2 examples: several blocks and a short last one
    block = 2 * model.n_params * np.dtype(dtype).itemsize
    got = sgdcore.per_example_projections(
        model, theta, X, y, V, block_bytes=block, backend=backend
    )
    assert got.shape == (X.shape[0], 3) and got.dtype == np.float64
    assert rel_err(got, want) <= RTOL[np.dtype(dtype)]
    one = sgdcore.per_example_projections(model, theta, X, y, V[:, 0], backend=backend)
    assert one.shape == (X.shape[0],)
    assert rel_err(one, want[:, 0]) <= RTOL[np.dtype(dtype)]


def test_projection_on_a_unit_vector_is_one_gradient_element():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    j = model.offsets()["W2"].start + 3
    e = np.zeros(model.n_params)
    e[j] = 1.0
    got = sgdcore.per_example_projections(model, theta, X, y, e, backend="numpy")
    want = sgdcore.per_example_grads(model, theta, X, y)[:, j]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_projections_of_many_examples_never_form_n_by_p():
    """N = 60,000 examples under a budget far below N x P: only blocks are formed."""
    model = MLP(20, 16, 10)  # P = 506
    theta, X, y = make_problem(model, n=60_000)
    V = _directions(model, 2, np.float64)
    old = sgdcore.set_memory_budget(60_000 * model.n_params * 8 // 50)
    try:
        with pytest.raises(sgdcore.MemoryBudgetError):
            sgdcore.per_example_grads(model, theta, X, y)
        got = sgdcore.per_example_projections(
            model, theta, X, y, V, block_bytes=1 << 20, backend="numpy"
        )
    finally:
        sgdcore.set_memory_budget(old)
    idx = np.arange(0, 60_000, 997)
    want = reference.per_example_grads(model, theta, X[idx], y[idx]) @ V
    assert rel_err(got[idx], want) <= 1e-10


def test_projections_bad_input():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    with pytest.raises(ValueError, match=r"V must have shape \(102,\) or \(102, k\)"):
        sgdcore.per_example_projections(model, theta, X, y, np.ones(5))
    with pytest.raises(TypeError, match="V must be a NumPy array"):
        sgdcore.per_example_projections(model, theta, X, y, [1.0] * model.n_params)
    V = np.ones(model.n_params)
    V[4] = np.nan
    with pytest.raises(ValueError, match="V contains NaN"):
        sgdcore.per_example_projections(model, theta, X, y, V)


@pytest.mark.parametrize("method", ["gram", "lanczos"])
def test_top_eigenvectors_match_oracle(model, dtype, backend, method):
    theta, X, y = make_problem(model, dtype=dtype)
    r = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
    F = reference.gradient_noise(model, theta, X, y)["cov"]
    k = min(3, model.n_params - 1)
    ev, U = r.top_eigenvalues(k, method=method, return_vectors=True)
    assert U.shape == (model.n_params, k) and U.dtype == np.float64
    tol = 1e-9 if dtype == np.float64 else 1e-4
    assert rel_err(ev, r.top_eigenvalues(k, method=method)) <= tol
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=tol)
    # F u = lambda u against the oracle's dense covariance
    assert rel_err(F @ U, U * ev[None, :]) <= 10 * tol
    # the variance of the per-example projections on u_j is lambda_j
    s = sgdcore.per_example_projections(model, theta, X, y, U.astype(dtype), backend=backend)
    assert rel_err(s.var(axis=0), ev) <= 10 * tol


def test_top_eigenvectors_beyond_rank_are_refused():
    model = MODELS["mlp"]  # N = 5: rank F <= 4
    theta, X, y = make_problem(model, n=5)
    r = sgdcore.gradient_noise(model, theta, X, y)
    ev, U = r.top_eigenvalues(4, method="gram", return_vectors=True)
    assert U.shape == (model.n_params, 4)
    with pytest.raises(ValueError, match="fewer than k=5 non-zero eigenvalues"):
        r.top_eigenvalues(5, method="gram", return_vectors=True)
