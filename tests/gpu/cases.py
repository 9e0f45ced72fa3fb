"""Models, data and tolerances shared by the GPU backend's tests (on a device, and on the
host over stand-ins)."""

from __future__ import annotations

import numpy as np
import pytest

from sgdcore.models import MLP, LogisticRegression

MODELS = [LogisticRegression(7), LogisticRegression(6, n_classes=4), MLP(8, 9, 3)]
#: float64 to 1e-10; float32 to 1e-5 relative (TF32 off).
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-5, atol=1e-5)}
params = pytest.mark.parametrize("net", MODELS, ids=lambda m: m.kind)
dtypes = pytest.mark.parametrize("fp", [np.float64, np.float32])


def data(model, n=53, dtype=np.float64, seed=0):
    """Seeded ``(theta, X, y)`` away from the initialisation's symmetries."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, model.n_features)).astype(dtype)
    y = rng.integers(0, model.n_classes, n)
    theta = (model.init(seed) + 0.2 * rng.standard_normal(model.n_params)).astype(dtype)
    return theta, X, y


def close(got, want, dtype, to_host=np.asarray):
    """``got`` (moved to the host by ``to_host``) matches ``want`` to the dtype's tolerance."""
    np.testing.assert_allclose(to_host(got), want, **TOL[dtype])


def check_public_api(net, dtype, on_kernel=lambda name: None):
    """Every public function with ``backend="cuda"`` on NumPy inputs against the oracle;
    NumPy results. ``on_kernel(quantity)`` is called after each call (the host tests
    check there which kernels ran)."""
    import sgdcore
    from sgdcore import reference

    theta, X, y = data(net, dtype=dtype)
    c, g = sgdcore.loss_and_grad(net, theta, X, y, l2=0.3, backend="cuda")
    on_kernel("loss_and_grad")
    assert type(g) is np.ndarray
    close(c, reference.loss(net, theta, X, y, l2=0.3), dtype)
    close(g, reference.grad(net, theta, X, y, l2=0.3), dtype)
    close(sgdcore.loss(net, theta, X, y, backend="cuda"), reference.loss(net, theta, X, y), dtype)
    proba = sgdcore.predict_proba(net, theta, X, backend="cuda")
    assert type(proba) is np.ndarray
    close(proba, reference.predict_proba(net, theta, X), dtype)
    acc = sgdcore.accuracy(net, theta, X, y, backend="cuda")
    assert acc == reference.accuracy(net, theta.astype(float), X.astype(float), y)
    norms = sgdcore.per_example_grad_norms(net, theta, X, y, backend="cuda")
    on_kernel("per_example_grad_norms")
    close(norms**2, reference.per_example_grad_norms(net, theta, X, y, squared=True), dtype)
    G = sgdcore.per_example_grads(net, theta, X, y, backend="cuda")
    close(G, reference.per_example_grads(net, theta, X, y), dtype)
    v = np.random.default_rng(4).standard_normal(net.n_params).astype(dtype)
    close(
        sgdcore.hvp(net, theta, X, y, v, backend="cuda"), reference.hvp(net, theta, X, y, v), dtype
    )
    on_kernel("hvp")
    close(
        sgdcore.ggn_vp(net, theta, X, y, v, backend="cuda"),
        reference.ggn_vp(net, theta, X, y, v),
        dtype,
    )
    close(
        sgdcore.hessian(net, theta, X, y, backend="cuda"),
        reference.hessian(net, theta, X, y),
        dtype,
    )


def check_gradient_noise(net):
    """Every field of the gradient-noise result, ``cov_matvec`` and ``top_eigenvalues``."""
    import sgdcore
    from sgdcore import reference

    theta, X, y = data(net, seed=2)
    got = sgdcore.gradient_noise(net, theta, X, y, backend="cuda")
    want = reference.gradient_noise(net, theta, X, y)
    for field in ("trace_cov", "grad_norm_sq", "b_simple"):
        close(getattr(got, field), want[field], np.float64)
    close(got.mean_grad, want["mean_grad"], np.float64)
    v = np.random.default_rng(3).standard_normal(net.n_params)
    close(got.cov_matvec(v), want["cov"] @ v, np.float64)
    close(got.top_eigenvalues(3), np.linalg.eigvalsh(want["cov"])[::-1][:3], np.float64)


def check_device_kernels(net, dtype, to_device, to_host, device_type):
    """The kernels of ``sgdcore.kernels._cuda`` on device arrays give device arrays."""
    from sgdcore import reference
    from sgdcore.kernels._cuda import curvature, grads, loss_and_grad

    theta, X, y = data(net, dtype=dtype, seed=5)
    td, Xd, yd = to_device(theta), to_device(X), to_device(y)
    g = to_device(np.empty_like(theta))
    ce = loss_and_grad.loss_and_grad(net, td, Xd, yd, g)
    close(ce, reference.loss(net, theta, X, y), dtype)
    close(g, reference.grad(net, theta, X, y), dtype, to_host)
    p = loss_and_grad.predict_proba(net, td, Xd)
    assert isinstance(p, device_type)
    close(p, reference.predict_proba(net, theta, X), dtype, to_host)
    sq = to_device(np.empty(X.shape[0], dtype=dtype))
    grads.per_example_grad_sqnorms(net, td, Xd, yd, sq)
    want = reference.per_example_grad_norms(net, theta, X, y, squared=True)
    close(sq, want, dtype, to_host)
    A, Pm = curvature.curvature_state(net, td, Xd)
    assert isinstance(Pm, device_type)
    v = np.random.default_rng(6).standard_normal((2, net.n_params)).astype(dtype)
    out = to_device(np.empty((2, net.n_params), dtype=dtype))
    curvature.hvp(net, td, Xd, yd, to_device(v), out, (A, Pm))
    for j in range(2):
        close(out[j], reference.hvp(net, theta, X, y, v[j]), dtype, to_host)


def check_operators_and_evidence(net):
    """HessianOperator, Lanczos, and (logistic) the MAP fit, Laplace evidence and path."""
    from sgdcore import curvature, evidence, reference

    theta, X, y = data(net, n=40, seed=7)
    H = reference.hessian(net, theta, X, y, l2=0.5)
    op = curvature.HessianOperator(net, theta, X, y, l2=0.5, backend="cuda")
    v = np.random.default_rng(8).standard_normal(net.n_params)
    close(op @ v, H @ v, np.float64)
    got = curvature.top_eigenvalues(op, 3, seed=0)
    close(np.asarray(got.eigenvalues), np.linalg.eigvalsh(H)[::-1][:3], np.float64)
    if net.kind == "mlp":
        return
    fit = evidence.fit_map(net, X, y, 0.5, backend="cuda")
    want = evidence.fit_map(net, X, y, 0.5, backend="numpy")
    np.testing.assert_allclose(fit.theta, want.theta, rtol=1e-8, atol=1e-10)
    ev = evidence.laplace(net, fit, X, y, 0.5, backend="cuda")
    ev_np = evidence.laplace(net, want, X, y, 0.5, backend="numpy")
    assert ev.log_evidence == pytest.approx(ev_np.log_evidence, rel=1e-9)
    path = evidence.evidence_path(net, X, y, [0.5, 2.0], backend="cuda")
    path_np = evidence.evidence_path(net, X, y, [0.5, 2.0], backend="numpy")
    np.testing.assert_allclose(
        [r.log_evidence for r in path], [r.log_evidence for r in path_np], rtol=1e-9
    )
