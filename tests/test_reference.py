"""The NumPy float64 oracle itself, against torch autograd and finite differences.

Every backend is tested against ``sgdcore.reference``; this file is what makes the
oracle trustworthy: an independent torch implementation of the same models (float64,
autograd for gradients, double backward for Hessians), central finite differences
(eps 1e-6, rtol 5e-6, as scikit-learn's loss tests), and identities that must hold
whatever the implementation.
"""

import itertools

import numpy as np
import pytest

from sgdcore import reference as ref
from sgdcore.models import MLP, LogisticRegression

KINDS = ["logistic_binary", "logistic_softmax", "mlp"]
N = 7
L2 = 0.3
MARGIN = 0.05  # smallest |ReLU pre-activation| allowed in the MLP problem

# float64 oracle vs float64 torch: the same formulas up to rounding.
TIGHT = {"rtol": 1e-10, "atol": 1e-12}
# central finite differences, eps 1e-6 (scikit-learn's loss tests)
FD_EPS = 1e-6
FD_TOL = {"rtol": 5e-6, "atol": 1e-8}


# ---------------------------------------------------------------------- problems


def _problem(kind, seed=0):
    """A small float64 problem: model, theta (non-zero biases), X, y."""
    if kind == "logistic_binary":
        model = LogisticRegression(5)
    elif kind == "logistic_softmax":
        model = LogisticRegression(4, 3)
    else:
        model = MLP(6, 5, 3)
    for s in range(seed, seed + 1000):
        rng = np.random.default_rng(s)
        X = rng.standard_normal((N, model.n_features))
        y = rng.integers(0, model.n_classes, size=N)
        theta = model.init(s) + 0.3 * rng.standard_normal(model.n_params)
        if kind != "mlp":
            return model, theta, X, y
        p = model.unflatten(theta)
        a = X @ p["W1"].T + p["b1"]
        # Pre-activations well away from the ReLU kink (finite differences stay on
        # one linear piece), with both active and inactive units present.
        if np.abs(a).min() > MARGIN and (a > 0).any() and (a < 0).any():
            return model, theta, X, y
    raise AssertionError("no MLP problem with pre-activations away from zero")


@pytest.fixture(params=KINDS)
def problem(request):
    return _problem(request.param)


@pytest.fixture
def mlp_problem():
    return _problem("mlp")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- torch models


def _t_logits(torch, model, theta, X):
    offs = model.offsets()
    p = {name: theta[offs[name]].reshape(shape) for name, shape in model.shapes}
    if model.kind == "logistic_binary":
        return X @ p["w"] + p["b"]
    if model.kind == "logistic_softmax":
        return X @ p["W"].T + p["b"]
    h = torch.relu(X @ p["W1"].T + p["b1"])
    return h @ p["W2"].T + p["b2"]


def _t_ce(torch, model, theta, X, y):
    z = _t_logits(torch, model, theta, X)
    if model.kind == "logistic_binary":
        return torch.nn.functional.binary_cross_entropy_with_logits(
            z, y.to(torch.float64), reduction="none"
        )
    return torch.nn.functional.cross_entropy(z, y, reduction="none")


def _t_cost_fn(torch, model, X, y, reduction, l2):
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)

    def cost(theta):
        c = _t_ce(torch, model, theta, Xt, yt).sum() + 0.5 * l2 * (theta * theta).sum()
        return c / Xt.shape[0] if reduction == "mean" else c

    return cost


def _t_grad(torch, cost, theta):
    theta = torch.tensor(theta, requires_grad=True)
    (g,) = torch.autograd.grad(cost(theta), theta)
    return g.numpy()


# ------------------------------------------------------------ versus torch


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("l2", [0.0, L2])
def test_loss_and_grad_match_torch(torch, problem, reduction, l2):
    model, theta, X, y = problem
    cost = _t_cost_fn(torch, model, X, y, reduction, l2)
    expected = cost(torch.as_tensor(theta)).item()
    assert ref.loss(model, theta, X, y, reduction=reduction, l2=l2) == pytest.approx(
        expected, rel=1e-12
    )
    np.testing.assert_allclose(
        ref.grad(model, theta, X, y, reduction=reduction, l2=l2),
        _t_grad(torch, cost, theta),
        **TIGHT,
    )


def test_per_example_losses_and_grads_match_torch(torch, problem):
    model, theta, X, y = problem
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)

    def ce_one(th, x, t):
        return _t_ce(torch, model, th, x[None], t[None]).sum()

    expected = torch.func.vmap(torch.func.grad(ce_one), in_dims=(None, 0, 0))(
        torch.as_tensor(theta), Xt, yt
    )
    np.testing.assert_allclose(ref.per_example_grads(model, theta, X, y), expected.numpy(), **TIGHT)
    np.testing.assert_allclose(
        ref.per_example_losses(model, theta, X, y),
        _t_ce(torch, model, torch.as_tensor(theta), Xt, yt).numpy(),
        **TIGHT,
    )


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_hvp_matches_torch(torch, problem, reduction):
    model, theta, X, y = problem
    cost = _t_cost_fn(torch, model, X, y, reduction, L2)
    V = np.random.default_rng(1).standard_normal((model.n_params, 3))
    for j in range(V.shape[1]):
        _, expected = torch.autograd.functional.hvp(
            cost, torch.as_tensor(theta), torch.as_tensor(V[:, j])
        )
        got = ref.hvp(model, theta, X, y, V[:, j], reduction=reduction, l2=L2)
        np.testing.assert_allclose(got, expected.numpy(), **TIGHT)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_hessian_matches_torch(torch, problem, reduction):
    model, theta, X, y = problem
    cost = _t_cost_fn(torch, model, X, y, reduction, L2)
    expected = torch.autograd.functional.hessian(cost, torch.as_tensor(theta)).numpy()
    np.testing.assert_allclose(
        ref.hessian(model, theta, X, y, reduction=reduction, l2=L2), expected, **TIGHT
    )


def test_ggn_matches_torch_jacobians(torch, problem):
    model, theta, X, y = problem
    Xt = torch.as_tensor(X)
    expected = np.zeros((model.n_params, model.n_params))
    for i in range(N):
        J = torch.autograd.functional.jacobian(
            lambda th, i=i: _t_logits(torch, model, th, Xt[i : i + 1]).reshape(-1),
            torch.as_tensor(theta),
        ).numpy()
        z = _t_logits(torch, model, torch.as_tensor(theta), Xt[i : i + 1]).reshape(-1)
        if model.kind == "logistic_binary":
            p = torch.sigmoid(z).numpy()
            H_out = np.diag(p * (1 - p))
        else:
            p = torch.softmax(z, dim=0).numpy()
            H_out = np.diag(p) - np.outer(p, p)
        expected += J.T @ H_out @ J
    expected += L2 * np.eye(model.n_params)
    np.testing.assert_allclose(ref.ggn(model, theta, X, y, l2=L2), expected, **TIGHT)


def test_predict_proba_and_accuracy_match_torch(torch, problem):
    model, theta, X, y = problem
    z = _t_logits(torch, model, torch.as_tensor(theta), torch.as_tensor(X))
    if model.kind == "logistic_binary":
        p1 = torch.sigmoid(z).numpy()
        expected = np.stack([1 - p1, p1], axis=1)
    else:
        expected = torch.softmax(z, dim=1).numpy()
    proba = ref.predict_proba(model, theta, X)
    assert proba.shape == (N, model.n_classes)
    np.testing.assert_allclose(proba, expected, **TIGHT)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
    assert ref.accuracy(model, theta, X, y) == np.mean(np.argmax(expected, axis=1) == y)


def test_relu_derivative_at_zero_is_zero(torch, mlp_problem):
    model, theta, X, y = mlp_problem
    theta = theta.copy()
    p = model.unflatten(theta)  # views: edits land in theta
    p["b1"][1] = 0.0
    X = X.copy()
    X[0] = 0.0  # example 0 has pre-activation exactly 0 in hidden unit 1
    g = model.unflatten(ref.per_example_grads(model, theta, X, y)[0])
    assert g["b1"][1] == 0.0
    assert np.all(g["W1"][1] == 0.0)

    def ce_one(th):
        return _t_ce(torch, model, th, torch.as_tensor(X[:1]), torch.as_tensor(y[:1])).sum()

    np.testing.assert_allclose(
        ref.per_example_grads(model, theta, X, y)[0], _t_grad(torch, ce_one, theta), **TIGHT
    )


# ------------------------------------------------------- finite differences


def _central(f, theta, direction):
    return (f(theta + FD_EPS * direction) - f(theta - FD_EPS * direction)) / (2 * FD_EPS)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_grad_matches_finite_differences_of_loss(problem, reduction):
    model, theta, X, y = problem

    def f(th):
        return ref.loss(model, th, X, y, reduction=reduction, l2=L2)

    eye = np.eye(model.n_params)
    fd = np.array([_central(f, theta, eye[j]) for j in range(model.n_params)])
    np.testing.assert_allclose(
        ref.grad(model, theta, X, y, reduction=reduction, l2=L2), fd, **FD_TOL
    )


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_hvp_matches_finite_differences_of_grad(problem, reduction):
    model, theta, X, y = problem

    def g(th):
        return ref.grad(model, th, X, y, reduction=reduction, l2=L2)

    rng = np.random.default_rng(2)
    for _ in range(3):
        v = rng.standard_normal(model.n_params)
        np.testing.assert_allclose(
            ref.hvp(model, theta, X, y, v, reduction=reduction, l2=L2),
            _central(g, theta, v),
            **FD_TOL,
        )


def test_per_example_grads_match_finite_differences(problem):
    model, theta, X, y = problem
    eye = np.eye(model.n_params)
    fd = np.stack(
        [
            _central(lambda th: ref.per_example_losses(model, th, X, y), theta, eye[j])
            for j in range(model.n_params)
        ],
        axis=1,
    )
    np.testing.assert_allclose(ref.per_example_grads(model, theta, X, y), fd, **FD_TOL)


# ---------------------------------------------------------------- identities


def test_mean_of_per_example_grads_is_mean_grad(problem):
    model, theta, X, y = problem
    g = ref.per_example_grads(model, theta, X, y)
    assert g.shape == (N, model.n_params)
    assert g.dtype == np.float64
    np.testing.assert_allclose(
        g.mean(axis=0), ref.grad(model, theta, X, y, reduction="mean", l2=0.0), **TIGHT
    )
    np.testing.assert_allclose(
        ref.per_example_losses(model, theta, X, y).sum(), ref.loss(model, theta, X, y), **TIGHT
    )


def test_mean_reduction_divides_everything_by_n(problem):
    model, theta, X, y = problem
    v = np.random.default_rng(3).standard_normal(model.n_params)
    for fn, args in [
        (ref.loss, ()),
        (ref.grad, ()),
        (ref.hvp, (v,)),
        (ref.hessian, ()),
        (ref.ggn_vp, (v,)),
        (ref.ggn, ()),
    ]:
        total = fn(model, theta, X, y, *args, reduction="sum", l2=L2)
        mean = fn(model, theta, X, y, *args, reduction="mean", l2=L2)
        np.testing.assert_allclose(mean, np.asarray(total) / N, **TIGHT, err_msg=fn.__name__)


def test_l2_term(problem):
    model, theta, X, y = problem
    assert ref.loss(model, theta, X, y, l2=L2) == pytest.approx(
        ref.loss(model, theta, X, y) + 0.5 * L2 * theta @ theta, rel=1e-14
    )
    np.testing.assert_allclose(
        ref.grad(model, theta, X, y, reduction="mean", l2=L2),
        ref.grad(model, theta, X, y, reduction="mean") + (L2 / N) * theta,
        **TIGHT,
    )
    np.testing.assert_allclose(
        ref.hessian(model, theta, X, y, l2=L2),
        ref.hessian(model, theta, X, y) + L2 * np.eye(model.n_params),
        **TIGHT,
    )


def test_hvp_and_ggn_vp_take_blocks_of_vectors(problem):
    model, theta, X, y = problem
    V = np.random.default_rng(4).standard_normal((model.n_params, 3))
    for fn in (ref.hvp, ref.ggn_vp):
        block = fn(model, theta, X, y, V, l2=L2)
        assert block.shape == V.shape
        for j in range(3):
            np.testing.assert_allclose(block[:, j], fn(model, theta, X, y, V[:, j], l2=L2), **TIGHT)
    np.testing.assert_allclose(
        ref.ggn_vp(model, theta, X, y, V, l2=L2), ref.ggn(model, theta, X, y, l2=L2) @ V, **TIGHT
    )
    np.testing.assert_allclose(
        ref.hvp(model, theta, X, y, V, l2=L2), ref.hessian(model, theta, X, y, l2=L2) @ V, **TIGHT
    )


def test_hessian_is_symmetric(problem):
    model, theta, X, y = problem
    H = ref.hessian(model, theta, X, y, l2=L2)
    np.testing.assert_allclose(H, H.T, **TIGHT)


@pytest.mark.parametrize("kind", ["logistic_binary", "logistic_softmax"])
def test_logistic_hessian_equals_ggn(kind):
    model, theta, X, y = _problem(kind)
    H = ref.hessian(model, theta, X, y, l2=L2)
    G = ref.ggn(model, theta, X, y, l2=L2)
    np.testing.assert_allclose(H, G, **TIGHT)
    assert np.linalg.eigvalsh(G - L2 * np.eye(model.n_params)).min() > -1e-12


def _mlp_hessian_minus_ggn(model, theta, X, y):
    """``sum_i sum_k delta_ik d2z_ik/dtheta2`` for the ReLU MLP, written out.

    ``z_k = sum_j W2[k, j] relu(W1[j] . x + b1[j]) + b2[k]``; with ``relu'' = 0`` the only
    non-zero second derivatives are ``d2z_k / dW2[k, j] dW1[j, d] = relu'(a_j) x_d`` and
    ``d2z_k / dW2[k, j] db1[j] = relu'(a_j)``.
    """
    offs = model.offsets()
    p = model.unflatten(theta)
    H, D = p["W1"].shape
    C = p["W2"].shape[0]
    R = np.zeros((model.n_params, model.n_params))
    for x, t in zip(X, y, strict=True):
        a = p["W1"] @ x + p["b1"]
        h = np.maximum(a, 0)
        z = p["W2"] @ h + p["b2"]
        delta = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        delta[t] -= 1
        for k in range(C):
            for j in range(H):
                if a[j] <= 0:
                    continue
                w2 = offs["W2"].start + k * H + j
                for d in range(D):
                    w1 = offs["W1"].start + j * D + d
                    R[w2, w1] += delta[k] * x[d]
                    R[w1, w2] += delta[k] * x[d]
                b1 = offs["b1"].start + j
                R[w2, b1] += delta[k]
                R[b1, w2] += delta[k]
    return R


def test_mlp_hessian_minus_ggn_is_the_cross_layer_term(mlp_problem):
    model, theta, X, y = mlp_problem
    H = ref.hessian(model, theta, X, y, l2=L2)
    G = ref.ggn(model, theta, X, y, l2=L2)
    R = _mlp_hessian_minus_ggn(model, theta, X, y)
    np.testing.assert_allclose(H - G, R, rtol=1e-10, atol=1e-12)
    # The residual is genuinely there (so the Hessian is not the GGN) ...
    assert np.abs(H - G).max() > 1e-2
    # ... but only in the W2 x (W1, b1) blocks: every diagonal block, hence the
    # diagonal, of the ReLU-net Hessian equals that of its GGN.
    offs = model.offsets()
    first = slice(offs["W1"].start, offs["b1"].stop)
    second = slice(offs["W2"].start, offs["b2"].stop)
    np.testing.assert_allclose(H[first, first], G[first, first], **TIGHT)
    np.testing.assert_allclose(H[second, second], G[second, second], **TIGHT)
    np.testing.assert_allclose(np.diag(H), np.diag(G), **TIGHT)
    b2 = offs["b2"]
    np.testing.assert_allclose(H[b2, :], G[b2, :], **TIGHT)


def test_ggn_is_psd(problem):
    model, theta, X, y = problem
    G = ref.ggn(model, theta, X, y)
    np.testing.assert_allclose(G, G.T, **TIGHT)
    assert np.linalg.eigvalsh(G).min() > -1e-12 * np.abs(G).max()


# ------------------------------------------------------ gradient-noise statistics


def test_gradient_noise(problem):
    model, theta, X, y = problem
    stats = ref.gradient_noise(model, theta, X, y)
    g = ref.per_example_grads(model, theta, X, y)
    G = g.mean(axis=0)
    F = g.T @ g / N - np.outer(G, G)
    assert stats["n"] == N
    np.testing.assert_allclose(stats["mean_grad"], G, **TIGHT)
    np.testing.assert_allclose(stats["cov"], F, rtol=1e-10, atol=1e-12)
    cov = stats["cov"]
    assert cov.shape == (model.n_params, model.n_params)
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > -1e-12 * np.abs(cov).max()
    assert stats["trace_cov"] == pytest.approx(np.trace(cov), rel=1e-12)
    assert stats["trace_cov"] == pytest.approx(np.mean(np.sum((g - G) ** 2, axis=1)), rel=1e-12)
    assert stats["grad_norm_sq"] == pytest.approx(G @ G, rel=1e-12)
    assert stats["b_simple"] == pytest.approx(stats["trace_cov"] / stats["grad_norm_sq"], rel=1e-14)
    for key in ("trace_cov", "grad_norm_sq", "b_simple"):
        assert isinstance(stats[key], float)


def test_gradient_noise_of_one_example_is_zero():
    model, theta, X, y = _problem("logistic_softmax")
    stats = ref.gradient_noise(model, theta, X[:1], y[:1])
    assert stats["n"] == 1
    assert np.all(stats["cov"] == 0.0)
    assert stats["trace_cov"] == 0.0
    assert stats["b_simple"] == 0.0


def test_per_example_grad_norms(problem):
    model, theta, X, y = problem
    g = ref.per_example_grads(model, theta, X, y)
    norms = ref.per_example_grad_norms(model, theta, X, y)
    np.testing.assert_allclose(norms, np.linalg.norm(g, axis=1), rtol=1e-14)
    np.testing.assert_allclose(
        ref.per_example_grad_norms(model, theta, X, y, squared=True), norms**2, rtol=1e-14
    )


@pytest.mark.parametrize("kind", KINDS)
def test_minibatch_cov_trace_matches_enumeration_of_all_batches(kind):
    model, theta, X, y = _problem(kind)
    n = 5
    g = ref.per_example_grads(model, theta, X[:n], y[:n])
    trace_cov = ref.gradient_noise(model, theta, X[:n], y[:n])["trace_cov"]
    for B in range(1, n + 1):
        means = np.array([g[list(c)].mean(axis=0) for c in itertools.combinations(range(n), B)])
        centred = means - means.mean(axis=0)
        exact = np.trace(centred.T @ centred / len(means))
        assert ref.minibatch_cov_trace(trace_cov, n, B) == pytest.approx(
            exact, rel=1e-12, abs=1e-15
        )
    assert ref.minibatch_cov_trace(trace_cov, n, 1) == pytest.approx(trace_cov, rel=1e-15)
    assert ref.minibatch_cov_trace(trace_cov, n, n) == 0.0


def test_minibatch_cov_trace_rejects_bad_batch_sizes():
    assert ref.minibatch_cov_trace(2.0, 1, 1) == 0.0
    with pytest.raises(ValueError, match="batch_size"):
        ref.minibatch_cov_trace(1.0, 5, 6)
    with pytest.raises(ValueError, match="batch_size"):
        ref.minibatch_cov_trace(1.0, 5, 0)
    with pytest.raises(ValueError, match="n must be"):
        ref.minibatch_cov_trace(1.0, 0, 1)
    with pytest.raises(TypeError):
        ref.minibatch_cov_trace(1.0, 5, 2.0)


# ------------------------------------------------------ dtypes, stability, errors


def test_float32_inputs_are_computed_in_float64(problem):
    model, theta, X, y = problem
    th32, X32 = theta.astype(np.float32), X.astype(np.float32)
    got = ref.grad(model, th32, X32, y.astype(np.int32))
    assert got.dtype == np.float64
    np.testing.assert_allclose(
        got, ref.grad(model, th32.astype(np.float64), X32.astype(np.float64), y), **TIGHT
    )


@pytest.mark.parametrize("kind", ["logistic_binary", "logistic_softmax"])
def test_large_logits_are_stable(kind):
    model, _, X, y = _problem(kind)
    theta = 1e3 * model.init(0)
    ce = ref.per_example_losses(model, theta, X, y)
    assert np.all(np.isfinite(ce))
    assert np.all(ce >= 0)
    assert np.all(np.isfinite(ref.per_example_grads(model, theta, X, y)))
    assert np.all(np.isfinite(ref.hessian(model, theta, X, y)))
    if kind == "logistic_binary":
        z = X @ theta[:-1] + theta[-1]
        expected = np.where(y == 1, np.logaddexp(0, -z), np.logaddexp(0, z))
        np.testing.assert_allclose(ce, expected, rtol=1e-12)


def test_input_errors():
    model, theta, X, y = _problem("logistic_softmax")
    with pytest.raises(ValueError, match="theta"):
        ref.loss(model, theta[:-1], X, y)
    with pytest.raises(ValueError, match="X"):
        ref.loss(model, theta, X[:, :-1], y)
    with pytest.raises(ValueError, match="y"):
        ref.loss(model, theta, X, y[:-1])
    with pytest.raises(TypeError, match="integer"):
        ref.loss(model, theta, X, y.astype(np.float64))
    with pytest.raises(ValueError, match="labels"):
        ref.loss(model, theta, X, np.full(N, 3))
    with pytest.raises(ValueError, match="reduction"):
        ref.grad(model, theta, X, y, reduction="avg")
    with pytest.raises(ValueError, match="at least one"):
        ref.loss(model, theta, X[:0], y[:0], reduction="mean")
    with pytest.raises(ValueError, match="at least one"):
        ref.gradient_noise(model, theta, X[:0], y[:0])
    with pytest.raises(ValueError, match="v must"):
        ref.hvp(model, theta, X, y, np.ones(model.n_params + 1))
    with pytest.raises(TypeError, match="model"):
        ref.loss(object(), theta, X, y)


def test_empty_batch_with_sum_reduction():
    model, theta, X, y = _problem("mlp")
    assert ref.loss(model, theta, X[:0], y[:0], l2=L2) == pytest.approx(0.5 * L2 * theta @ theta)
    np.testing.assert_array_equal(ref.grad(model, theta, X[:0], y[:0], l2=L2), L2 * theta)
    assert ref.per_example_grads(model, theta, X[:0], y[:0]).shape == (0, model.n_params)
