"""The shared output-layer formulas (sgdcore/kernels/formulas.py): the vectorised NumPy
forms, the row loops the compiled kernels run, and the same functions compiled by Numba,
against closed forms written here with the standard library, and the NaN semantics of the
ReLU on every Python backend.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sgdcore
from sgdcore.kernels import formulas as F
from sgdcore.models import KIND_IDS, KIND_LOGISTIC_BINARY, KIND_MLP, MLP, LogisticRegression

Z = np.array([-800.0, -30.0, -1.5, -1e-3, 0.0, 2e-3, 0.7, 25.0, 800.0])


def _softplus(z: float) -> float:
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def _rows(n=7, k=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, k)) * 30.0, rng.integers(0, k, size=n)


def test_elementwise_formulas_match_closed_forms():
    want_sp = np.array([_softplus(z) for z in Z])
    np.testing.assert_allclose(F.softplus(Z), want_sp, rtol=1e-15, atol=0)
    want_s = np.array([math.exp(-_softplus(-z)) for z in Z])
    np.testing.assert_allclose(F.sigmoid(Z), want_s, rtol=1e-15, atol=0)
    assert np.all(np.isfinite(F.sigmoid(Z))) and F.sigmoid(Z)[0] == 0.0
    np.testing.assert_allclose(F.binary_ce(Z, 1), want_sp - Z, rtol=1e-14, atol=1e-300)
    a = np.array([-2.0, -0.0, np.nan, 3.0, -np.inf])
    out = F.relu(a)
    assert out[0] == 0.0 and np.isnan(out[2]) and out[3] == 3.0 and out[4] == 0.0
    b = a.copy()
    F.relu_(b)
    np.testing.assert_array_equal(b, out)


def test_row_loops_match_the_vectorised_forms():
    Zm, y = _rows()
    lse = np.array([math.log(sum(math.exp(v) for v in row - row.max())) + row.max() for row in Zm])
    np.testing.assert_allclose([F.logsumexp_row(r) for r in Zm], lse, rtol=1e-14)
    np.testing.assert_allclose(
        [F.ce_row(r, c, False) for r, c in zip(Zm, y, strict=True)],
        lse - Zm[np.arange(len(y)), y],
        rtol=1e-12,
    )
    ls = F.log_softmax(Zm.copy())
    np.testing.assert_allclose(ls, Zm - lse[:, None], rtol=1e-13, atol=1e-12)
    P = F.softmax(Zm.copy())
    R = Zm.copy()
    for r, c in zip(R, y, strict=True):
        F.residual_row(r, c, False)
    np.testing.assert_allclose(R + np.eye(Zm.shape[1])[y], P, rtol=1e-13, atol=1e-15)
    z = np.array([0.3])
    F.probabilities_row(z, True)
    assert z[0] == pytest.approx(1.0 / (1.0 + math.exp(-0.3)), rel=1e-15)


def test_numba_compiles_the_same_formulas():
    numba = pytest.importorskip("numba")

    @numba.njit
    def rows(Zm, y, out, binary):
        for i in range(Zm.shape[0]):
            out[i] = F.ce_row(Zm[i], y[i], binary)
            F.residual_row(Zm[i], y[i], binary)

    @numba.njit
    def elementwise(z, out):
        for i in range(z.shape[0]):
            out[0, i] = F.softplus(z[i])
            out[1, i] = F.sigmoid(z[i])
            out[2, i] = F.relu(z[i])

    out = np.empty((3, Z.size + 1))
    z = np.append(Z, np.nan)
    elementwise(z, out)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(out[0], F.softplus(z))
        np.testing.assert_array_equal(out[1], F.sigmoid(z))
    np.testing.assert_array_equal(out[2], F.relu(z))  # NaN stays NaN in both
    Zm, y = _rows()
    ce, R = np.empty(len(y)), Zm.copy()
    rows(R, y, ce, False)
    want = Zm.copy()
    for r, c in zip(want, y, strict=True):
        F.residual_row(r, c, False)
    np.testing.assert_allclose(R, want, rtol=1e-15, atol=1e-300)


def test_output_hessian_is_the_cross_entropy_hessian_in_z():
    """Entries of ``d2CE/dz2``, vectorised over rows and compiled, against the hand-written
    ``diag(p) - p p^T`` (softmax) and ``p (1 - p)`` (sigmoid)."""
    Zm, _ = _rows(n=6, k=4)
    P = F.softmax(Zm.copy())
    for c in range(4):
        for d in range(4):
            want = P[:, c] * ((c == d) - P[:, d])
            np.testing.assert_allclose(F.output_hessian(P[:, c], P[:, d], c == d), want)
    s = F.sigmoid(Z)
    np.testing.assert_array_equal(F.output_hessian(s, s, True), s * (1.0 - s))
    numba = pytest.importorskip("numba")

    @numba.njit
    def entries(P, out):
        for i in range(P.shape[0]):
            for c in range(P.shape[1]):
                for d in range(P.shape[1]):
                    out[i, c, d] = F.output_hessian(P[i, c], P[i, d], c == d)

    out = np.empty((6, 4, 4))
    entries(P, out)
    for c in range(4):
        for d in range(4):
            np.testing.assert_array_equal(out[:, c, d], F.output_hessian(P[:, c], P[:, d], c == d))


@pytest.mark.parametrize("python_backend", ["numpy", "numba"])
def test_relu_propagates_nan_through_the_mlp(python_backend):
    """A NaN pre-activation gives a NaN loss on every Python backend (no silent zero)."""
    if python_backend == "numba":
        pytest.importorskip("numba")
    model = MLP(3, 4, 2)
    theta = model.init(0)
    theta[model.offsets()["b1"]][0] = np.nan
    X = np.ones((2, 3))
    y = np.array([0, 1])
    ce = sgdcore.loss(model, theta, X, y, backend=python_backend, check_finite=False)
    assert np.isnan(ce)


def test_kind_ids_on_the_models():
    assert LogisticRegression(4).dims == (KIND_LOGISTIC_BINARY, 4, 0, 2)
    assert LogisticRegression(4, 3).dims == (KIND_IDS["logistic_softmax"], 4, 0, 3)
    assert MLP(4, 5, 3).dims == (KIND_MLP, 4, 5, 3)
    assert sorted(KIND_IDS.values()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: MLP(0, 4, 2), ValueError, "n_features must be >= 1, got 0"),
        (lambda: MLP(3, 0, 2), ValueError, "n_hidden must be >= 1, got 0"),
        (lambda: LogisticRegression(3, 1), ValueError, "n_classes must be >= 2, got 1"),
        (lambda: LogisticRegression(3.0), TypeError, "n_features must be an integer"),
        (lambda: MLP(3, True, 2), TypeError, "n_hidden must be an integer"),
    ],
)
def test_models_check_their_sizes(make, error, message):
    with pytest.raises(error, match=message):
        make()
