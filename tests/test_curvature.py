"""Curvature: hvp, ggn_vp, hessian on every backend x dtype x model against the float64
oracle (and finite differences), the identities they must satisfy, the operators, and the
Lanczos / Hutchinson / SLQ estimators against dense linear algebra."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from conftest import MODELS, RTOL, make_problem, rel_err

import sgdcore
from sgdcore import _backend, _cpu, curvature, reference
from sgdcore.models import MLP, LogisticRegression


def _directions(model, k, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((model.n_params, k)).astype(dtype)


# ------------------------------------------------------------------ products vs oracle


@pytest.mark.parametrize("quantity", ["hvp", "ggn_vp"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_products_match_oracle(model, dtype, backend, quantity, reduction, l2):
    theta, X, y = make_problem(model, dtype=dtype)
    fn, oracle = getattr(sgdcore, quantity), getattr(reference, quantity)
    V = _directions(model, 3, dtype)
    kw = dict(reduction=reduction, l2=l2, backend=backend)
    block = fn(model, theta, X, y, V, **kw)
    single = fn(model, theta, X, y, V[:, 1], **kw)
    want = oracle(model, theta, X, y, V, reduction=reduction, l2=l2)
    assert block.shape == V.shape and block.dtype == dtype
    assert single.shape == (model.n_params,) and single.dtype == dtype
    assert rel_err(block, want) <= RTOL[np.dtype(dtype)]
    assert rel_err(single, want[:, 1]) <= RTOL[np.dtype(dtype)]


def test_hessian_matches_oracle(model, dtype, backend):
    theta, X, y = make_problem(model, dtype=dtype)
    H = sgdcore.hessian(model, theta, X, y, l2=0.3, backend=backend)
    assert H.shape == (model.n_params,) * 2 and H.dtype == dtype
    assert rel_err(H, reference.hessian(model, theta, X, y, l2=0.3)) <= RTOL[np.dtype(dtype)]
    Hm = sgdcore.hessian(model, theta, X, y, l2=0.3, reduction="mean", backend=backend)
    want = reference.hessian(model, theta, X, y, l2=0.3, reduction="mean")
    assert rel_err(Hm, want) <= RTOL[np.dtype(dtype)]


def test_hvp_matches_finite_differences_of_the_gradient(model):
    """Independent of the oracle: (g(theta + e v) - g(theta - e v)) / 2e."""
    theta, X, y = make_problem(model)
    if model.kind == "mlp":  # keep every pre-activation off the ReLU kink
        p = model.unflatten(theta)
        a = X @ p["W1"].T + p["b1"]
        p["b1"] += np.where(np.abs(a).min(axis=0) < 0.05, 0.1, 0.0)
    v = _directions(model, 1, np.float64)[:, 0]
    eps = 1e-6
    gp = sgdcore.loss_and_grad(model, theta + eps * v, X, y, l2=0.2)[1]
    gm = sgdcore.loss_and_grad(model, theta - eps * v, X, y, l2=0.2)[1]
    np.testing.assert_allclose(
        sgdcore.hvp(model, theta, X, y, v, l2=0.2), (gp - gm) / (2 * eps), rtol=5e-6, atol=1e-7
    )


def test_chunks_are_crossed(backend):
    """More rows than one compiled chunk holds (MLP and logistic)."""
    for model, n in ((MLP(5, 2000, 3), 1100), (LogisticRegression(300), 1000)):
        theta, X, y = make_problem(model, n=n)
        V = _directions(model, 2, np.float64)
        got = sgdcore.hvp(model, theta, X, y, V, backend=backend)
        assert rel_err(got, reference.hvp(model, theta, X, y, V)) <= 1e-10


@pytest.mark.parametrize("n_classes", [2, 3])
def test_threaded_logistic_split_matches_numpy(n_classes):
    """Enough rows for the compiled kernel to split them between threads."""
    model = LogisticRegression(20, n_classes)
    theta, X, y = make_problem(model, n=5000)
    V = _directions(model, 3, np.float64)
    for v in (V, V[:, 0].copy()):
        got = sgdcore.hvp(model, theta, X, y, v, backend="cpp")
        assert rel_err(got, sgdcore.hvp(model, theta, X, y, v, backend="numpy")) <= 1e-12
    op = curvature.HessianOperator(model, theta, X, y, backend="cpp")
    assert rel_err(op @ V, sgdcore.hvp(model, theta, X, y, V, backend="numpy")) <= 1e-12


def test_out_is_written_and_must_not_alias(model, backend):
    theta, X, y = make_problem(model)
    V = _directions(model, 2, np.float64)
    out = np.full_like(V, np.nan)
    res = sgdcore.hvp(model, theta, X, y, V, out=out, backend=backend)
    assert res is out and np.all(np.isfinite(out))
    v = V[:, 0].copy()
    with pytest.raises(ValueError, match="must not share memory"):
        sgdcore.hvp(model, theta, X, y, v, out=v, backend=backend)


def test_one_example_and_read_only_inputs(model, backend):
    theta, X, y = make_problem(model, n=1)
    v = _directions(model, 1, np.float64)[:, 0]
    for a in (theta, X, y, v):
        a.setflags(write=False)
    got = sgdcore.hvp(model, theta, X, y, v, backend=backend)
    assert rel_err(got, reference.hvp(model, theta, X, y, v)) <= 1e-10


# ----------------------------------------------------------------------- identities


def test_hessian_is_symmetric_and_block_equals_columns(model, backend):
    theta, X, y = make_problem(model)
    V = _directions(model, 4, np.float64)
    HV = sgdcore.hvp(model, theta, X, y, V, l2=0.1, backend=backend)
    np.testing.assert_allclose(V.T @ HV, (V.T @ HV).T, rtol=1e-10, atol=1e-12)
    cols = np.stack(
        [
            sgdcore.hvp(model, theta, X, y, V[:, j].copy(), l2=0.1, backend=backend)
            for j in range(4)
        ],
        axis=1,
    )
    assert rel_err(HV, cols) <= 1e-12


def test_logistic_hessian_equals_ggn_and_mlp_does_not(model, backend):
    theta, X, y = make_problem(model)
    eye = np.eye(model.n_params)
    H = sgdcore.hvp(model, theta, X, y, eye, backend=backend)
    G = sgdcore.ggn_vp(model, theta, X, y, eye, backend=backend)
    if model.kind != "mlp":
        assert rel_err(H, G) <= 1e-12
        return
    # The cross term lives only in the W2 x (W1, b1) blocks: the diagonals agree.
    assert rel_err(np.diag(H), np.diag(G)) <= 1e-12
    assert rel_err(H, G) > 1e-3
    off = model.offsets()
    D = H - G
    hidden = np.r_[off["W1"].start : off["b1"].stop]
    out = np.r_[off["W2"].start : off["W2"].stop]
    assert np.max(np.abs(D[np.ix_(hidden, out)])) > 1e-3
    mask = np.ones_like(D, dtype=bool)
    mask[np.ix_(hidden, out)] = mask[np.ix_(out, hidden)] = False
    assert np.max(np.abs(D[mask])) <= 1e-12


def test_ggn_is_positive_semidefinite(model, backend):
    theta, X, y = make_problem(model)
    G = sgdcore.ggn_vp(model, theta, X, y, np.eye(model.n_params), backend=backend)
    assert np.linalg.eigvalsh(0.5 * (G + G.T)).min() >= -1e-10 * np.abs(G).max()


def test_backends_agree_with_each_other(model, dtype):
    theta, X, y = make_problem(model, dtype=dtype, n=40)
    V = _directions(model, 2, dtype)
    base = sgdcore.hvp(model, theta, X, y, V, backend="numpy")
    for b in _backend.backends_with("hvp"):
        assert (
            rel_err(sgdcore.hvp(model, theta, X, y, V, backend=b), base)
            <= 2 * RTOL[np.dtype(dtype)]
        )


# -------------------------------------------------------------------- input contract


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda m, t: np.zeros(m.n_params + 1, t.dtype), ValueError, r"v must have shape"),
        (lambda m, t: np.zeros((m.n_params, 2, 1), t.dtype), ValueError, r"v must have shape"),
        (lambda m, t: np.zeros(m.n_params, np.float32), TypeError, r"v has dtype float32"),
        (lambda m, t: np.full(m.n_params, np.nan), ValueError, r"v contains NaN"),
        (lambda m, t: list(np.zeros(m.n_params)), TypeError, r"v must be a NumPy array"),
    ],
)
def test_bad_directions_are_refused(model, make, error, match):
    theta, X, y = make_problem(model)
    with pytest.raises(error, match=match):
        sgdcore.hvp(model, theta, X, y, make(model, theta))


def test_bad_data_are_refused(model):
    theta, X, y = make_problem(model)
    v = np.zeros_like(theta)
    with pytest.raises(TypeError, match="X has dtype float32"):
        sgdcore.hvp(model, theta, X.astype(np.float32), y, v)
    with pytest.raises(ValueError, match="reduction"):
        sgdcore.ggn_vp(model, theta, X, y, v, reduction="avg")
    with pytest.raises(ValueError, match="l2 must be"):
        sgdcore.hessian(model, theta, X, y, l2=-1.0)
    bad = X.copy()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        sgdcore.hvp(model, theta, bad, y, v)


def test_compiled_boundary_checks_without_crashing():
    model = MLP(4, 3, 2)
    theta, X, y = make_problem(model)
    P = model.n_params
    Vt = np.zeros((2, P))
    with pytest.raises(ValueError, match="out must have shape"):
        _cpu.hvp(*model.dims, theta, X, y, Vt, np.zeros((3, P)))
    with pytest.raises(ValueError, match="out must be writable"):
        out = np.zeros((2, P))
        out.setflags(write=False)
        _cpu.ggn_vp(*model.dims, theta, X, y, Vt, out)
    with pytest.raises(ValueError, match="must not share memory"):
        _cpu.hvp(*model.dims, theta, X, y, Vt, Vt)
    with pytest.raises(ValueError, match="state_A"):
        _cpu.hvp(*model.dims, theta, X, y, Vt, np.zeros((2, P)), None, np.zeros((23, 2)))
    with pytest.raises(ValueError, match=r"state_P must have shape"):
        _cpu.hvp(*model.dims, theta, X, y, Vt, np.zeros((2, P)), np.zeros((23, 3)), np.zeros(5))
    with pytest.raises(ValueError, match=r"y\[0\] = 7 is out of range"):
        _cpu.hvp(*model.dims, theta, X, np.full(23, 7), Vt, np.zeros((2, P)))
    with pytest.raises(TypeError, match="V must have dtype"):
        _cpu.hvp(*model.dims, theta, X, y, Vt.astype(np.float32), np.zeros((2, P)))
    with pytest.raises(ValueError, match="closed form for logistic regression"):
        _cpu.logistic_hessian(*model.dims, theta, X, np.zeros((P, P)))


def test_dense_hessian_refuses_politely():
    model = MLP(20, 10, 3)
    theta, X, y = make_problem(model)
    with pytest.raises(sgdcore.MemoryBudgetError, match="HessianOperator"):
        sgdcore.hessian(model, theta, X, y, max_bytes=1000)


# ------------------------------------------------------------------------ operators


@pytest.mark.parametrize("cache", [True, False])
def test_operators_match_dense(model, backend, cache):
    theta, X, y = make_problem(model)
    H = curvature.HessianOperator(
        model, theta, X, y, l2=0.4, reduction="mean", backend=backend, cache_state=cache
    )
    G = curvature.GGNOperator(model, theta, X, y, l2=0.4, backend=backend, cache_state=cache)
    assert (H.state is not None) == cache and H.shape == (model.n_params,) * 2
    V = _directions(model, 3, np.float64)
    want_h = reference.hvp(model, theta, X, y, V, l2=0.4, reduction="mean")
    assert rel_err(H @ V, want_h) <= 1e-10
    assert rel_err(H.matvec(V[:, 0]), want_h[:, 0]) <= 1e-10
    assert rel_err(H.rmatvec(V[:, 0]), want_h[:, 0]) <= 1e-10
    assert rel_err(G.matmat(V), reference.ggn_vp(model, theta, X, y, V, l2=0.4)) <= 1e-10
    assert H.H is H and H.n_products == 5


def test_float32_operator_takes_float64_vectors():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model, dtype=np.float32)
    op = curvature.HessianOperator(model, theta, X, y)
    v = _directions(model, 1, np.float64)[:, 0]
    got = op @ v
    assert got.dtype == np.float32
    assert rel_err(got, reference.hvp(model, theta, X, y, v.astype(np.float32))) <= 1e-5


def test_operator_validates_once():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model)
    with pytest.raises(ValueError, match="cache_state"):
        curvature.HessianOperator(model, theta, X, y, cache_state="sometimes")
    with pytest.raises(ValueError, match="y holds label"):
        curvature.GGNOperator(model, theta, X, np.full_like(y, 9))


# --------------------------------------------------------------------------- Lanczos


def _spd(n, seed=0, decay=1.0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    ev = np.exp(-decay * np.arange(n) / 10) * 10 + rng.random(n) * 0.01
    return (Q * ev) @ Q.T, np.sort(ev)


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_top_eigenvalues_match_eigsh(which):
    model = MLP(8, 9, 3)
    theta, X, y = make_problem(model, n=60)
    op = curvature.HessianOperator(model, theta, X, y, l2=0.05)
    dense = sgdcore.hessian(model, theta, X, y, l2=0.05)
    res = curvature.top_eigenvalues(op, 6, which=which, tol=1e-10, return_eigenvectors=True)
    want = sla.eigsh(dense, 6, which=which, return_eigenvectors=False, tol=1e-12)
    key = {"LA": lambda e: -e, "SA": lambda e: e, "LM": lambda e: -np.abs(e)}[which]
    want = want[np.argsort(key(want), kind="stable")]
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    assert res.converged and res.n_iter >= 6 and res.residuals.shape == (6,)
    Y = res.eigenvectors
    R = dense @ Y - Y * res.eigenvalues
    np.testing.assert_allclose(np.linalg.norm(R, axis=0), res.residuals, atol=1e-8)
    # tol is relative to the largest |Ritz value|, an estimate of the operator's norm
    assert np.all(res.residuals <= 1e-10 * np.abs(np.linalg.eigvalsh(dense)).max())


def test_top_eigenvalues_restarts_and_small_operators():
    A, ev = _spd(300, decay=0.3)
    res = curvature.top_eigenvalues(A, 10, ncv=22, tol=1e-10)
    assert res.n_restarts > 0
    np.testing.assert_allclose(res.eigenvalues, ev[::-1][:10], rtol=1e-9)
    small, ev_small = _spd(12)
    res = curvature.top_eigenvalues(small, 3)  # P <= ncv: dense
    np.testing.assert_allclose(res.eigenvalues, ev_small[::-1][:3], rtol=1e-12)
    assert res.n_iter == 12


def test_top_eigenvalues_errors():
    A, _ = _spd(100, decay=0.05)
    with pytest.raises(curvature.ConvergenceError, match="still have residual") as info:
        curvature.top_eigenvalues(A, 10, max_products=25, tol=1e-14)
    assert info.value.result.eigenvalues.shape == (10,) and not info.value.result.converged
    with pytest.raises(ValueError, match="which"):
        curvature.top_eigenvalues(A, 2, which="BE")
    with pytest.raises(ValueError, match="k must be"):
        curvature.top_eigenvalues(A, 0)
    with pytest.raises(ValueError, match="ncv"):
        curvature.top_eigenvalues(A, 5, ncv=5)
    with pytest.raises(ValueError, match="square"):
        curvature.top_eigenvalues(np.zeros((3, 4)), 1)
    with pytest.raises(ValueError, match="v0"):
        curvature.top_eigenvalues(A, 2, v0=np.zeros(100))


# --------------------------------------------------------------- trace, SLQ, density


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_is_unbiased_within_its_error(method):
    A, ev = _spd(200, seed=3, decay=0.5)
    est = curvature.trace(A, n_products=60, method=method, seed=4)
    assert est.std_error > 0 and est.n_products == 60
    assert abs(est.estimate - ev.sum()) <= 4 * est.std_error
    exact = curvature.trace(A[:50, :50], n_products=60, method=method)
    assert exact.std_error == 0 and np.isclose(exact.estimate, np.trace(A[:50, :50]))


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    A, _ = _spd(300, seed=5, decay=2.0)
    hpp = curvature.trace(A, n_products=90, method="hutch++", seed=1)
    hut = curvature.trace(A, n_products=90, method="hutchinson", seed=1)
    assert hpp.std_error < 0.2 * hut.std_error
    with pytest.raises(ValueError, match="method"):
        curvature.trace(A, method="exact")


def test_trace_of_the_hessian_operator():
    model = MODELS["mlp"]
    theta, X, y = make_problem(model, n=40)
    est = curvature.trace(curvature.HessianOperator(model, theta, X, y, l2=0.1), n_products=300)
    assert est.std_error == 0  # P = 102 <= 300: exact
    assert np.isclose(est.estimate, np.trace(reference.hessian(model, theta, X, y, l2=0.1)))


def test_slq_with_full_steps_is_hutchinson_of_f():
    """With steps = P the Gauss rule is exact, so each probe gives z^T log(A) z."""
    A, ev = _spd(40, seed=7)
    est = curvature.logdet(A, n_probes=5, steps=40, seed=11)
    w, Q = np.linalg.eigh(A)
    logA = (Q * np.log(w)) @ Q.T
    rng = np.random.default_rng(11)
    vals = []
    for _ in range(5):
        z = rng.integers(0, 2, size=(40, 1)).astype(float)[:, 0] * 2 - 1
        vals.append(z @ logA @ z)
    assert np.isclose(est.estimate, np.mean(vals), rtol=1e-10)
    assert np.isclose(est.std_error, np.std(vals, ddof=1) / np.sqrt(5), rtol=1e-8)


def test_logdet_against_slogdet():
    A, ev = _spd(250, seed=8, decay=0.2)
    est = curvature.logdet(A, shift=0.5, n_probes=30, steps=25, seed=2)
    want = np.sum(np.log(ev + 0.5))
    assert abs(est.estimate - want) <= 4 * est.std_error + 1e-6 * abs(want)
    two = curvature.slq(A, (np.log, lambda x: x), n_probes=10, steps=25)
    assert isinstance(two, tuple) and abs(two[1].estimate - ev.sum()) <= 4 * two[1].std_error
    with pytest.raises(ValueError, match="not positive definite"):
        curvature.logdet(A - 5 * np.eye(250), n_probes=3, steps=10)
    with pytest.raises(ValueError, match="n_probes"):
        curvature.logdet(A, n_probes=1)


def test_spectral_density_integrates_to_one_and_peaks_at_eigenvalues():
    A = np.diag(np.r_[np.full(50, 1.0), np.full(50, 5.0)])
    sd = curvature.spectral_density(A, n_probes=4, steps=10, sigma=0.1)
    assert np.isclose(np.trapezoid(sd.density, sd.grid), 1.0, atol=1e-3)
    peaks = sd.grid[np.argsort(sd.density)[-2:]]
    assert np.allclose(np.sort(peaks), [1.0, 5.0], atol=0.05)
    assert np.allclose(sd.weights.sum(axis=1), 1.0)


def test_docstring_examples():
    from sgdcore.curvature import _operators, _products

    for mod in (_products, _operators):
        failed, tried = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert tried > 0 and failed == 0


# ------------------------------------------------------- sparse (MNIST-like) inputs


def _sparse_problem(model, n=23, dtype=np.float64, seed=0):
    """make_problem() with about 85% of the inputs zero and one all-zero row: the compiled
    MLP kernels then run the first layer on the non-zeros."""
    theta, X, y = make_problem(model, n=n, dtype=dtype, seed=seed)
    X[np.random.default_rng(seed + 1).random(X.shape) > 0.15] = 0
    X[2] = 0
    return theta, X, y


@pytest.mark.parametrize("quantity", ["hvp", "ggn_vp"])
@pytest.mark.parametrize("cache", [True, False])
def test_sparse_inputs_products_match_oracle(dtype, backend, quantity, cache):
    model = MLP(30, 40, 4)  # 40 hidden units: rows padded to whole vectors in float32
    theta, X, y = _sparse_problem(model, dtype=dtype)
    V = _directions(model, 3, dtype)
    op = (curvature.HessianOperator if quantity == "hvp" else curvature.GGNOperator)(
        model, theta, X, y, l2=0.3, backend=backend, cache_state=cache
    )
    want = getattr(reference, quantity)(model, theta, X, y, V, l2=0.3)
    assert (
        rel_err(getattr(sgdcore, quantity)(model, theta, X, y, V, l2=0.3, backend=backend), want)
        <= RTOL[np.dtype(dtype)]
    )
    assert rel_err(op.matmat(V.astype(np.float64)), want) <= max(RTOL[np.dtype(dtype)], 1e-10)


def test_sparse_inputs_cross_chunks_and_threads():
    # More rows than one chunk (H = 2,000: 1,048 rows a chunk), work split among threads.
    from threadpoolctl import threadpool_limits

    model = MLP(20, 2000, 3)
    theta, X, y = _sparse_problem(model, n=1100)
    V = _directions(model, 2, np.float64)
    want = reference.hvp(model, theta, X, y, V)
    got = sgdcore.hvp(model, theta, X, y, V, backend="cpp")
    with threadpool_limits(1):
        one = sgdcore.hvp(model, theta, X, y, V, backend="cpp")
    assert rel_err(got, want) <= 1e-10 and np.array_equal(got, one)


@pytest.mark.parametrize("zeros", [True, False], ids=["sparse", "dense"])
def test_cpp_operator_decides_the_first_layer_once(monkeypatch, zeros):
    """An operator that keeps its forward state counts the non-zeros of X once, when the
    state is computed: its products reuse that decision, with the same results as a
    product that decides afresh."""
    from sgdcore.kernels._cpp import sparse as cpp_sparse
    from sgdcore.kernels._cpp.sparse import sparse_inputs

    model = MLP(30, 40, 4)
    theta, X, y = _sparse_problem(model) if zeros else make_problem(model)
    V = _directions(model, 2, np.float64)
    op = curvature.HessianOperator(model, theta, X, y, backend="cpp", cache_state=True)
    assert op.state.sparse == sparse_inputs(model, X) == zeros
    fresh = sgdcore.hvp(model, theta, X, y, V, backend="cpp")

    def counted(*args):
        raise AssertionError("the non-zeros of X were counted again")

    monkeypatch.setattr(cpp_sparse, "sparse_inputs", counted)
    monkeypatch.setattr(cpp_sparse, "nonzeros", counted)
    monkeypatch.setattr(sgdcore._validate, "_SCAN", [counted])  # nor read by a check
    assert rel_err(op.matmat(V), fresh) <= 1e-12
    assert rel_err(op.matvec(V[:, 0]), fresh[:, 0]) <= 1e-12
