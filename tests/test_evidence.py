"""Evidence: MAP fits, the Laplace evidence against closed forms, quadrature, the float64
oracle and (where installed) laplace-torch; the regularisation path."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from conftest import make_problem

import sgdcore
from sgdcore import evidence, reference
from sgdcore.models import MLP, LogisticRegression

ROOT = Path(__file__).resolve().parents[1]


def _logistic_data(n, d=1, seed=0, n_classes=2):
    """Non-separable data from a logistic teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, n_classes)) * 1.5
    logits = X @ W - np.r_[0.3, np.zeros(n_classes - 1)]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(n_classes, p=row) for row in p])
    return X, y


def _ref_occam(model, theta, X, y, l2):
    """The Occam term with the paper's rule, from the oracle's dense Hessian."""
    ev = np.linalg.eigvalsh(reference.hessian(model, theta, X, y, l2=l2))
    keep = ev >= l2 - 1e-11 * np.abs(ev).max()  # values equal to l2 up to rounding stay
    return 0.5 * np.sum(np.log(np.maximum(ev[keep], l2) / l2)), int(np.sum(~keep))


# --------------------------------------------------------------------------- fit_map


@pytest.mark.parametrize("n_classes", [2, 3])
def test_newton_reaches_the_minimum(n_classes):
    X, y = _logistic_data(120, d=4, n_classes=n_classes)
    model = LogisticRegression(4, n_classes)
    fit = evidence.fit_map(model, X, y, 0.3)
    g = reference.grad(model, fit.theta, X, y, l2=0.3)
    g0 = reference.grad(model, np.zeros(model.n_params), X, y, l2=0.3)
    assert np.linalg.norm(g) <= 1e-9 * np.linalg.norm(g0)
    assert fit.grad_norm <= 1e-10 * fit.grad_scale and fit.method == "newton"
    assert np.isclose(fit.cost, reference.loss(model, fit.theta, X, y, l2=0.3), rtol=1e-12)
    warm = evidence.fit_map(model, X, y, 0.3, theta0=fit.theta + 0.5)
    np.testing.assert_allclose(warm.theta, fit.theta, rtol=1e-8, atol=1e-10)


def test_all_zero_columns_are_solved_in_closed_form():
    X, y = _logistic_data(80, d=5, seed=2)
    X[:, [1, 3]] = 0.0
    model = LogisticRegression(5)
    fit = evidence.fit_map(model, X, y, 0.2, theta0=np.ones(6))
    assert fit.theta[1] == 0.0 and fit.theta[3] == 0.0
    assert np.linalg.norm(reference.grad(model, fit.theta, X, y, l2=0.2)) <= 1e-9
    r = evidence.laplace(model, fit, X, y, 0.2)
    assert np.isclose(r.occam, _ref_occam(model, fit.theta, X, y, 0.2)[0], rtol=1e-10)


def test_float32_data_are_fitted_in_float64():
    X, y = _logistic_data(60, d=3)
    model = LogisticRegression(3)
    fit = evidence.fit_map(model, X.astype(np.float32), y, 1.0)
    assert fit.theta.dtype == np.float64
    np.testing.assert_allclose(
        fit.theta, evidence.fit_map(model, X.astype(np.float32).astype(float), y, 1.0).theta
    )


def test_fit_map_errors():
    X = np.r_[np.full((5, 1), -1.0), np.full((5, 1), 1.0)]
    y = np.r_[np.zeros(5, int), np.ones(5, int)]
    model = LogisticRegression(1)
    with pytest.raises(evidence.ConvergenceError, match="separable data the cost has no minimum"):
        evidence.fit_map(model, X, y, 0.0)
    with pytest.raises(evidence.ConvergenceError, match="did not reach"):
        evidence.fit_map(model, X, y, 1e-3, max_iter=1)
    mlp = MLP(3, 4, 2)
    with pytest.raises(ValueError, match="needs theta0"):
        evidence.fit_map(mlp, np.ones((4, 3)), np.array([0, 1, 0, 1]), 1.0)
    with pytest.raises(ValueError, match="method='newton' is for logistic"):
        evidence.fit_map(mlp, np.ones((4, 3)), np.array([0, 1, 0, 1]), 1.0, method="newton")
    with pytest.raises(ValueError, match="l2 must be"):
        evidence.fit_map(model, X, y, -1.0)
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        evidence.fit_map(model, X.astype(int), y, 1.0)
    with pytest.raises(ValueError, match="theta0 must have shape"):
        evidence.fit_map(model, X, y, 1.0, theta0=np.zeros(3))


def test_lbfgs_meets_the_tolerance_on_a_smooth_cost():
    X, y = _logistic_data(100, d=4, n_classes=3)
    model = LogisticRegression(4, 3)
    fit = evidence.fit_map(model, X, y, 0.3, method="lbfgs", gtol=1e-7)
    assert fit.status == "converged" and fit.grad_norm <= 1e-7 * fit.grad_scale
    np.testing.assert_allclose(fit.theta, evidence.fit_map(model, X, y, 0.3).theta, atol=1e-5)
    mlp = MLP(6, 5, 3)
    theta, X, y = make_problem(mlp, n=40)
    with pytest.raises(evidence.ConvergenceError, match="used its 3 iterations"):
        evidence.fit_map(mlp, X, y, 0.5, theta0=theta, max_iter=3)


def test_lbfgs_reports_a_minimum_on_a_relu_kink():
    """With L2, a ReLU net's minimum often puts a pre-activation exactly at 0, where the
    gradient of either side does not vanish: the fit stops there and says so."""
    model = MLP(6, 5, 3)
    theta, X, y = make_problem(model, n=40)
    fit = evidence.fit_map(model, X, y, 0.5, theta0=theta)
    assert fit.status == "stalled" and fit.grad_norm > 1e-6 * fit.grad_scale
    p = model.unflatten(fit.theta)
    assert np.abs(X @ p["W1"].T + p["b1"]).min() < 1e-8
    assert np.isclose(fit.grad_norm, np.linalg.norm(reference.grad(model, fit.theta, X, y, l2=0.5)))
    assert fit.cost < reference.loss(model, theta, X, y, l2=0.5)


# ---------------------------------------------------------------- laplace: exact forms


def test_conjugate_gaussian_closed_form():
    """Bayesian linear regression: the Laplace evidence is exact."""
    rng = np.random.default_rng(0)
    N, P, sigma, l2 = 30, 4, 0.7, 2.5
    X = rng.standard_normal((N, P))
    y = X @ rng.standard_normal(P) + sigma * rng.standard_normal(N)
    H = X.T @ X / sigma**2 + l2 * np.eye(P)
    theta = np.linalg.solve(H, X.T @ y / sigma**2)
    r = y - X @ theta
    cost = (
        r @ r / (2 * sigma**2) + 0.5 * N * np.log(2 * np.pi * sigma**2) + 0.5 * l2 * theta @ theta
    )
    res = evidence.laplace_from_hessian(cost, H, l2, n=N, n_classes=2)
    cov = sigma**2 * np.eye(N) + X @ X.T / l2
    want = scipy.stats.multivariate_normal(np.zeros(N), cov).logpdf(y)
    assert np.isclose(res.log_evidence, want, rtol=1e-12)
    assert np.isclose(res.log_ratio, -want - N * np.log(2), rtol=1e-12)
    assert res.n_excluded == 0 and res.eigenvalues.shape == (P,)


def _quadrature(model, fit, X, y, l2, quadratic=False, half=8.0, points=161):
    """ln of (l2 / 2 pi)^{P/2} int exp(-C) for P = 2, on a grid in whitened coordinates."""
    H = sgdcore.hessian(model, fit.theta, X, y, l2=l2)
    L = np.linalg.cholesky(H)
    u = np.linspace(-half, half, points)
    U = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    if quadratic:
        dC = 0.5 * np.sum(U**2, axis=1)
    else:
        T = fit.theta + np.linalg.solve(L.T, U.T).T
        Z = X[:, 0][None, :] * T[:, :1] + T[:, 1:]
        C = np.sum(np.logaddexp(0, Z) - y[None, :] * Z, axis=1) + 0.5 * l2 * np.sum(T**2, 1)
        dC = C - fit.cost
    integral = np.log(np.sum(np.exp(-dC)) * (u[1] - u[0]) ** 2) - np.sum(np.log(np.diag(L)))
    return np.log(l2 / (2 * np.pi)) + integral - fit.cost


def test_two_parameter_logistic_against_quadrature():
    model, l2, errors = LogisticRegression(1), 1.0, []
    for n in (50, 800):
        X, y = _logistic_data(n)
        fit = evidence.fit_map(model, X, y, l2)
        r = evidence.laplace(model, fit, X, y, l2)
        # The Gaussian integral of the second-order expansion is exactly the formula ...
        assert np.isclose(r.log_evidence, _quadrature(model, fit, X, y, l2, True), atol=1e-10)
        # ... and the true evidence differs from it by O(1/N).
        errors.append(abs(_quadrature(model, fit, X, y, l2) - r.log_evidence))
    assert errors[1] < 5e-3 and errors[1] < errors[0] / 4


@pytest.mark.parametrize("kind", ["logistic_binary", "logistic_softmax"])
def test_logistic_laplace_against_the_oracle(kind):
    model = LogisticRegression(5) if kind == "logistic_binary" else LogisticRegression(5, 3)
    X, y = _logistic_data(70, d=5, n_classes=model.n_classes, seed=3)
    fit = evidence.fit_map(model, X, y, 0.4)
    want_occam, _ = _ref_occam(model, fit.theta, X, y, 0.4)
    cost = reference.loss(model, fit.theta, X, y, l2=0.4)
    for method in ("auto", "cholesky", "eigh"):
        for theta in (fit, fit.theta):
            r = evidence.laplace(model, theta, X, y, 0.4, method=method)
            assert np.isclose(r.occam, want_occam, rtol=1e-10)
            assert np.isclose(r.cost, cost, rtol=1e-12)
            assert np.isclose(r.log_ratio, cost + want_occam - 70 * np.log(model.n_classes))
            assert np.isclose(r.log_ratio_per_example * 70, r.log_ratio)
            assert np.isclose(r.log_evidence - r.null_log_evidence, -r.log_ratio)
            assert r.std_error == 0 and r.n_excluded == 0
    assert r.fit is None and r.method == "eigh" and r.eigenvalues.min() >= 0.4 * (1 - 1e-12)


def test_mlp_laplace_applies_the_rule_and_slq_agrees():
    model = MLP(6, 5, 3)
    theta, X, y = make_problem(model, n=40)
    l2 = 0.05
    # Away from a minimum the Hessian has negative-curvature directions: the rule drops them.
    want, dropped = _ref_occam(model, theta, X, y, l2)
    assert dropped > 0
    r = evidence.laplace(model, theta, X, y, l2)
    assert r.method == "eigh" and r.n_excluded == dropped and np.isclose(r.occam, want, rtol=1e-10)
    with pytest.raises(ValueError, match="not positive definite"):
        evidence.laplace(model, theta, X, y, l2, method="cholesky")
    s = evidence.laplace(model, theta, X, y, l2, method="slq", n_probes=40, steps=model.n_params)
    assert s.std_error > 0 and abs(s.occam - want) <= 4 * s.std_error
    assert abs(s.n_excluded - dropped) <= 0.5 * dropped
    fit = evidence.fit_map(model, X, y, 0.5, theta0=theta)
    r = evidence.laplace(model, fit, X, y, 0.5)
    assert np.isclose(r.occam, _ref_occam(model, fit.theta, X, y, 0.5)[0], rtol=1e-10)


def test_laplace_errors():
    X, y = _logistic_data(30, d=2)
    model = LogisticRegression(2)
    fit = evidence.fit_map(model, X, y, 1.0)
    with pytest.raises(ValueError, match="l2 > 0"):
        evidence.laplace(model, fit.theta, X, y, 0.0)
    with pytest.raises(ValueError, match="MapFit was made with l2=1.0"):
        evidence.laplace(model, fit, X, y, 2.0)
    with pytest.raises(ValueError, match="method must be"):
        evidence.laplace(model, fit, X, y, 1.0, method="exact")
    with pytest.raises(ValueError, match="theta_map must have shape"):
        evidence.laplace(model, np.zeros(5), X, y, 1.0)
    with pytest.raises(ValueError, match="H must be a square"):
        evidence.laplace_from_hessian(1.0, np.zeros((2, 3)), 1.0, n=3, n_classes=2)


# ------------------------------------------------------------------------ laplace-torch


def _import_laplace_torch():
    """laplace-torch as the peer benchmarks import it, or a skip where it is missing."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.peers_curvature import import_laplace_torch
    finally:
        sys.path.remove(str(ROOT))
    try:
        return import_laplace_torch()
    except ImportError as exc:
        pytest.skip(f"laplace-torch cannot be imported: {exc}")


class _ZeroFirstLogit:
    """torch module mapping a binary logit z to the two logits [0, z]."""

    @staticmethod
    def build(D):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(D, 1)

            def forward(self, x):
                z = self.linear(x)
                return torch.cat([torch.zeros_like(z), z], dim=1)

        return Net()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["logistic_binary", "logistic_softmax", "mlp"])
def test_against_laplace_torch(kind):
    laplace = _import_laplace_torch()
    import torch
    from laplace.curvature import CurvlinopsHessian

    torch.manual_seed(0)
    if kind == "mlp":
        model = MLP(4, 6, 3)
        theta0, X, y = make_problem(model, n=60)
        l2 = 10.0  # the Hessian of C is positive definite here, so laplace-torch's log det is
        fit = evidence.fit_map(model, X, y, l2, theta0=theta0)
        p = model.unflatten(fit.theta)
        net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
        weights = [p["W1"], p["b1"], p["W2"], p["b2"]]
    else:
        model = LogisticRegression(4, 2 if kind == "logistic_binary" else 3)
        X, y = _logistic_data(60, d=4, n_classes=model.n_classes, seed=5)
        l2 = 0.6
        fit = evidence.fit_map(model, X, y, l2)
        p = model.unflatten(fit.theta)
        if kind == "logistic_binary":
            net = _ZeroFirstLogit.build(4)
            weights = [p["w"][None, :], p["b"]]
        else:
            net = torch.nn.Linear(4, 3)
            weights = [p["W"], p["b"]]
    net = net.double()
    with torch.no_grad():
        for param, value in zip(net.parameters(), weights, strict=True):
            param.copy_(torch.as_tensor(value))
    data = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    la = laplace.Laplace(
        net,
        "classification",
        subset_of_weights="all",
        hessian_structure="full",
        prior_precision=torch.tensor(l2, dtype=torch.float64),
        backend=CurvlinopsHessian,
    )
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # curvlinops builds the dense matrix in it
    try:
        la.fit(torch.utils.data.DataLoader(data, batch_size=25))
        lml = float(la.log_marginal_likelihood())
    finally:
        torch.set_default_dtype(default)
    # laplace-torch sums ln(lambda_i / l2) over every eigenvalue: our "cholesky" method.
    ours = evidence.laplace(model, fit, X, y, l2, method="cholesky")
    assert np.isclose(lml, ours.log_evidence, rtol=1e-9)
    assert np.isclose(float(la.loss) + 0.5 * float(la.scatter), ours.cost, rtol=1e-9)
    assert np.isclose(0.5 * float(la.log_det_ratio), ours.occam, rtol=1e-9)
    # The paper's rule drops eigenvalues below l2 (an MLP's negative cross-entropy
    # curvature): the difference is exactly their contribution.
    ruled = evidence.laplace(model, fit, X, y, l2, method="eigh")
    below = ruled.eigenvalues[ruled.eigenvalues < l2 * (1 - 1e-12)]
    assert ruled.n_excluded == below.size and (kind == "mlp") == (below.size > 0)
    assert np.isclose(ours.occam - ruled.occam, 0.5 * np.sum(np.log(below / l2)), rtol=1e-9)


# ------------------------------------------------------------------------------ path


def test_evidence_path_matches_independent_fits():
    X, y = _logistic_data(90, d=6, seed=4)
    model = LogisticRegression(6)
    lams = np.array([3.0, 1e-3, 10.0, 0.1, 0.01])
    path = evidence.evidence_path(model, X, y, lams)
    assert [r.l2 for r in path] == lams.tolist()
    for r, lam in zip(path, lams, strict=True):
        cold = evidence.laplace(model, evidence.fit_map(model, X, y, lam), X, y, lam)
        assert np.isclose(r.log_ratio, cold.log_ratio, rtol=1e-9)
        np.testing.assert_allclose(r.theta, cold.theta, rtol=1e-7, atol=1e-9)
        assert r.fit.grad_norm <= 1e-10 * r.fit.grad_scale
    with pytest.raises(ValueError, match="l2_values"):
        evidence.evidence_path(model, X, y, [1.0, 0.0])
    with pytest.raises(ValueError, match="for logistic regression"):
        evidence.evidence_path(MLP(6, 2, 2), X, y, [1.0])


def test_docstring_examples():
    failed, tried = doctest.testmod(evidence)
    assert tried > 0 and failed == 0


def test_evidence_path_chains_agree_with_one_chain():
    # Cut into side-by-side chains the path starts some fits elsewhere; every fit still
    # meets its tolerance, so the evidences agree.
    model = LogisticRegression(6)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 6))
    y = (X[:, 0] + 0.5 * rng.standard_normal(60) > 0).astype(np.int64)
    lams = np.logspace(-2, 2, 7)
    one = evidence.evidence_path(model, X, y, lams, workers=1)
    three = evidence.evidence_path(model, X, y, lams, workers=3)
    for a, b in zip(one, three, strict=True):
        assert a.log_ratio == pytest.approx(b.log_ratio, rel=1e-9, abs=1e-9)
    with pytest.raises(ValueError, match="workers"):
        evidence.evidence_path(model, X, y, lams, workers=0)
