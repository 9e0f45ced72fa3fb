"""The one pass over the inputs that both the finiteness check and the C++ kernels'
choice of a sparse first layer need (``sgdcore._cpu.scan_inputs``,
``sgdcore._validate.check_finite`` / ``nonzeros``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_problem

import sgdcore
from sgdcore import _validate

_cpu = pytest.importorskip("sgdcore._cpu")


def _special(n, dtype, seed):
    """n entries, most zero, with -0.0, subnormals, NaN and infinities among them."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(dtype)
    a[rng.random(n) < 0.7] = 0
    a[rng.random(n) < 0.05] = -0.0
    a[rng.random(n) < 0.01] = np.finfo(dtype).smallest_subnormal
    return a


@pytest.mark.parametrize("n", [1, 1000, 700_001])  # the last shared among the OpenMP team
@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_scan_inputs_matches_numpy_for_any_thread_count(dtype, n, bad):
    from threadpoolctl import threadpool_limits

    a = _special(n, dtype, seed=n)
    if bad is not None:
        a[n // 2] = bad
    want = (bool(np.isfinite(a).all()), int(np.count_nonzero(a)))
    assert _cpu.scan_inputs(a) == want
    assert _cpu.scan_inputs(a.reshape(1, n)) == want
    with threadpool_limits(1, user_api="openmp"):
        assert _cpu.scan_inputs(a) == want


def test_scan_inputs_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="must be float32 or float64, got int64"):
        _cpu.scan_inputs(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="must be C-contiguous"):
        _cpu.scan_inputs(np.zeros((4, 4))[:, ::2])


@pytest.fixture()
def scans(monkeypatch):
    """The arrays the C++ scan reads, by identity, in order."""
    seen = []
    real = _validate._scanner()
    if real is None:
        pytest.skip("no C++ scan")

    def counted(a):
        seen.append(id(a))
        return real(a)

    monkeypatch.setattr(_validate, "_SCAN", [counted])
    return seen


@pytest.mark.parametrize("check_finite", [True, False])
@pytest.mark.parametrize("kind", ["mlp", "logistic"])
def test_a_call_reads_X_once(scans, monkeypatch, check_finite, kind):
    """A default call reads X once for both the NaN/inf check and the sparse rule's
    count; without the check the rule still reads it once, and NumPy never counts."""
    models = sgdcore.models
    model = models.MLP(30, 40, 4) if kind == "mlp" else models.LogisticRegression(30, 4)
    theta, X, y = make_problem(model, n=50)
    X[X < 0.7] = 0

    def refused(*args, **kwargs):
        raise AssertionError("np.count_nonzero read X")

    monkeypatch.setattr(np, "count_nonzero", refused)
    sgdcore.loss_and_grad(model, theta, X, y, backend="cpp", check_finite=check_finite)
    reads = scans.count(id(X))
    assert reads == (1 if check_finite or kind == "mlp" else 0)


def test_an_unchecked_call_counts_inputs_changed_in_place():
    """What a checked call learnt of X is not reused by an unchecked call, which may see
    X changed in place since."""
    from sgdcore.kernels._cpp.sparse import density

    model = sgdcore.models.MLP(30, 40, 4)
    theta, X, y = make_problem(model, n=50)
    X[:, 3:] = 0
    sgdcore.loss(model, theta, X, y, backend="cpp")
    assert density(X) == np.count_nonzero(X) / X.size == 0.1
    X[:] = 1.0
    sgdcore.loss(model, theta, X, y, backend="cpp", check_finite=False)
    assert density(X) == 1.0


def test_the_check_still_names_the_argument_and_the_index():
    model = sgdcore.models.MLP(30, 40, 4)
    theta, X, y = make_problem(model, n=50)
    X[7, 11] = np.inf
    with pytest.raises(ValueError, match=r"^X contains NaN or inf \(first at index \[7, 11\]\)$"):
        sgdcore.loss(model, theta, X, y, backend="cpp")
