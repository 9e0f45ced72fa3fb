"""loss, loss_and_grad, predict_proba, accuracy: every backend x dtype x model against
the oracle, plus the input contract."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RTOL, bad_inputs, make_problem, rel_err

import sgdcore
from sgdcore import reference


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_loss_and_grad_matches_oracle(model, dtype, backend, reduction, l2):
    theta, X, y = make_problem(model, dtype=dtype)
    c, g = sgdcore.loss_and_grad(model, theta, X, y, reduction=reduction, l2=l2, backend=backend)
    c0 = reference.loss(model, theta, X, y, reduction=reduction, l2=l2)
    g0 = reference.grad(model, theta, X, y, reduction=reduction, l2=l2)
    assert g.dtype == dtype and g.shape == theta.shape
    assert rel_err(c, c0) <= RTOL[np.dtype(dtype)]
    assert rel_err(g, g0) <= RTOL[np.dtype(dtype)]
    assert sgdcore.loss(model, theta, X, y, reduction=reduction, l2=l2, backend=backend) == (
        pytest.approx(c, rel=1e-6)
    )


def test_large_batch_crosses_chunks(backend):
    """More rows than one compiled chunk holds, so chunked accumulation is exercised."""
    model = sgdcore.models.MLP(5, 2000, 3)
    theta, X, y = make_problem(model, n=2500)
    c, g = sgdcore.loss_and_grad(model, theta, X, y, backend=backend)
    assert rel_err(g, reference.grad(model, theta, X, y)) <= 1e-10
    assert rel_err(c, reference.loss(model, theta, X, y)) <= 1e-10


def test_out_is_written(model, backend):
    theta, X, y = make_problem(model)
    out = np.full_like(theta, np.nan)
    _, g = sgdcore.loss_and_grad(model, theta, X, y, out=out, backend=backend)
    assert np.shares_memory(g, out) and np.all(np.isfinite(out))


def test_one_example(model, backend):
    theta, X, y = make_problem(model, n=1)
    _, g = sgdcore.loss_and_grad(model, theta, X, y, backend=backend)
    assert rel_err(g, reference.grad(model, theta, X, y)) <= 1e-10


def test_read_only_inputs(model, backend):
    theta, X, y = make_problem(model)
    for a in (theta, X, y):
        a.setflags(write=False)
    _, g = sgdcore.loss_and_grad(model, theta, X, y, backend=backend)
    assert rel_err(g, reference.grad(model, theta, X, y)) <= 1e-10


def test_predict_proba_and_accuracy(model, dtype):
    theta, X, y = make_problem(model, dtype=dtype)
    p = sgdcore.predict_proba(model, theta, X)
    assert p.shape == (X.shape[0], model.n_classes)
    assert rel_err(p, reference.predict_proba(model, theta, X)) <= RTOL[np.dtype(dtype)]
    assert sgdcore.accuracy(model, theta, X, y) == reference.accuracy(model, theta, X, y)


def test_int32_labels_accepted(model, backend):
    theta, X, y = make_problem(model)
    _, g = sgdcore.loss_and_grad(model, theta, X, y.astype(np.int32), backend=backend)
    assert rel_err(g, reference.grad(model, theta, X, y)) <= 1e-10


@pytest.mark.parametrize(
    "mutate, error, match", bad_inputs("float-labels", "nan-X", "inf-theta", "list")
)
def test_bad_input_is_refused(model, backend, mutate, error, match):
    theta, X, y = make_problem(model)
    with pytest.raises(error, match=match):
        sgdcore.loss_and_grad(model, *mutate(theta, X, y), backend=backend)


def test_bad_arguments(model):
    theta, X, y = make_problem(model)
    with pytest.raises(ValueError, match="reduction"):
        sgdcore.loss(model, theta, X, y, reduction="avg")
    with pytest.raises(ValueError, match="l2"):
        sgdcore.loss(model, theta, X, y, l2=-1)
    with pytest.raises(ValueError, match="out must have shape"):
        sgdcore.loss_and_grad(model, theta, X, y, out=np.empty(3))
    with pytest.raises(TypeError, match="model must be"):
        sgdcore.loss("mlp", theta, X, y)


def test_compiled_boundary_checks_itself():
    """The C++ entry point refuses bad arrays even when Python's checks are bypassed."""
    _cpu = pytest.importorskip("sgdcore._cpu")
    model = sgdcore.models.MLP(4, 3, 2)
    theta, X, y = make_problem(model)
    with pytest.raises(ValueError, match="theta must have shape"):
        _cpu.loss_and_grad(2, 4, 3, 2, theta[:-1], X, y, None)
    with pytest.raises(TypeError, match="X must have dtype float64"):
        _cpu.loss_and_grad(2, 4, 3, 2, theta, X.astype(np.float32), y, None)
    with pytest.raises(ValueError, match="C-contiguous"):
        _cpu.loss_and_grad(2, 4, 3, 2, theta, np.asfortranarray(X), y, None)
    with pytest.raises(ValueError, match="out of range"):
        _cpu.loss_and_grad(2, 4, 3, 2, theta, X, y + 2, None)
    with pytest.raises(TypeError, match="y must have dtype int64"):
        _cpu.loss_and_grad(2, 4, 3, 2, theta, X, y.astype(np.int32), None)
    with pytest.raises(ValueError, match="grad must be writable"):
        g = np.empty_like(theta)
        g.setflags(write=False)
        _cpu.loss_and_grad(2, 4, 3, 2, theta, X, y, g)


@pytest.mark.parametrize("n", [23, 1100])  # 1,100 rows: two chunks of the C++ kernel
def test_sparse_inputs_match_oracle(dtype, backend, n):
    # About 85% zeros and an all-zero row: the C++ MLP kernel then runs the first layer
    # on the non-zeros.
    from sgdcore.models import MLP

    model = MLP(20, 5000, 3) if n > 100 else MLP(30, 40, 4)
    theta, X, y = make_problem(model, n=n, dtype=dtype)
    X[np.random.default_rng(1).random(X.shape) > 0.15] = 0
    X[2] = 0
    c, g = sgdcore.loss_and_grad(model, theta, X, y, l2=0.2, backend=backend)
    tol = RTOL[np.dtype(dtype)]
    assert rel_err(g, reference.grad(model, theta, X, y, l2=0.2)) <= tol
    assert rel_err(c, reference.loss(model, theta, X, y, l2=0.2)) <= tol
    assert sgdcore.loss(model, theta, X, y, l2=0.2, backend=backend) == pytest.approx(c, rel=1e-6)


@pytest.mark.parametrize("density", [1.0, 0.2], ids=["dense", "sparse"])
def test_nan_pre_activation_propagates(backend, density):
    """A NaN hidden pre-activation stays NaN through the ReLU on every backend, as
    NumPy's ``np.maximum`` keeps it: that example's gradient norm and the summed loss are
    NaN, the other examples' norms are untouched. Inputs with many zeros take the
    compiled backends' sparse first layer, the others their GEMMs."""
    model = sgdcore.models.MLP(12, 9, 3)
    theta, X, y = make_problem(model, n=40)
    X[np.random.default_rng(1).random(X.shape) >= density] = 0.0
    X[3, 5] = np.nan  # every pre-activation of example 3 is NaN
    c, g = sgdcore.loss_and_grad(model, theta, X, y, backend=backend, check_finite=False)
    assert np.isnan(c) and np.all(np.isnan(g[model.n_params - model.n_classes :]))
    n = sgdcore.per_example_grad_norms(model, theta, X, y, backend=backend, check_finite=False)
    keep = np.arange(len(X)) != 3
    assert np.isnan(n[3])
    n0 = np.linalg.norm(reference.per_example_grads(model, theta, X[keep], y[keep]), axis=1)
    assert rel_err(n[keep], n0) <= 1e-10
