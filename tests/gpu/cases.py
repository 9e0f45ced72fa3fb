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
    curvature.hvp(net, td, Xd, yd, to_device(v), out, state=(A, Pm))
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


def check_device_public_api(net, dtype, to_device, to_host, device_type):
    """Every public function on device arrays (``to_device``) gives device arrays of type
    ``device_type``, equal (after ``to_host``) to the oracle; ``backend="auto"`` picks the
    GPU for them."""
    import sgdcore
    from sgdcore import curvature, reference

    theta, X, y = data(net, dtype=dtype, seed=9)
    td, Xd, yd = to_device(theta), to_device(X), to_device(y)
    v = np.random.default_rng(4).standard_normal((net.n_params, 2)).astype(dtype)
    vd = to_device(v)

    def same(got, want, kind=device_type):
        assert isinstance(got, kind), f"{type(got).__name__} is not {kind.__name__}"
        close(got, want, dtype, to_host)

    c, g = sgdcore.loss_and_grad(net, td, Xd, yd, l2=0.3, reduction="mean")
    close(c, reference.loss(net, theta, X, y, l2=0.3) / X.shape[0], dtype)
    same(g, reference.grad(net, theta, X, y, l2=0.3) / X.shape[0])
    close(sgdcore.loss(net, td, Xd, yd), reference.loss(net, theta, X, y), dtype)
    same(sgdcore.predict_proba(net, td, Xd), reference.predict_proba(net, theta, X))
    want_acc = reference.accuracy(net, theta.astype(float), X.astype(float), y)
    assert sgdcore.accuracy(net, td, Xd, yd) == want_acc
    sq = reference.per_example_grad_norms(net, theta, X, y, squared=True)
    same(sgdcore.per_example_grad_norms(net, td, Xd, yd), np.sqrt(sq))
    G = reference.per_example_grads(net, theta, X, y)
    same(sgdcore.per_example_grads(net, td, Xd, yd), G)
    blocks = list(sgdcore.per_example_grads(net, td, Xd, yd, chunk_size=20))
    assert [s for s, _ in blocks] == [0, 20, 40]
    for s, b in blocks:
        same(b, G[s : s + b.shape[0]])
    same(sgdcore.hvp(net, td, Xd, yd, vd, l2=0.2), reference.hvp(net, theta, X, y, v, l2=0.2))
    v0 = to_device(np.ascontiguousarray(v[:, 0]))
    same(sgdcore.ggn_vp(net, td, Xd, yd, v0), reference.ggn_vp(net, theta, X, y, v[:, 0]))
    if net.kind != "mlp":
        same(sgdcore.hessian(net, td, Xd, yd, l2=0.1), reference.hessian(net, theta, X, y, l2=0.1))
    op = curvature.HessianOperator(net, td, Xd, yd, l2=0.5)
    assert op.backend == "cuda"
    H = reference.hessian(net, theta, X, y, l2=0.5)
    same(op @ vd, H @ v)
    same(op.matvec(v0), H @ v[:, 0])
    close(op @ v, H @ v, dtype)  # NumPy vectors: NumPy answers, data kept on the device


def check_device_noise(net, to_device, to_host, device_type):
    """``gradient_noise`` on device arrays: every field, ``cov_matvec`` and both
    ``top_eigenvalues`` methods against the oracle (float64)."""
    import sgdcore
    from sgdcore import reference

    theta, X, y = data(net, seed=2)
    got = sgdcore.gradient_noise(net, to_device(theta), to_device(X), to_device(y))
    want = reference.gradient_noise(net, theta, X, y)
    assert got.backend == "auto" and isinstance(got.mean_grad, device_type)
    for field in ("trace_cov", "grad_norm_sq", "b_simple"):
        close(getattr(got, field), want[field], np.float64)
    close(got.mean_grad, want["mean_grad"], np.float64, to_host)
    V = np.random.default_rng(3).standard_normal((net.n_params, 2))
    Fv = got.cov_matvec(to_device(V))
    assert isinstance(Fv, device_type)
    close(Fv, want["cov"] @ V, np.float64, to_host)
    ev = np.linalg.eigvalsh(want["cov"])[::-1][:3]
    close(got.top_eigenvalues(3), ev, np.float64)
    close(got.top_eigenvalues(3, method="lanczos"), ev, np.float64)
    vals, U = got.top_eigenvalues(2, return_vectors=True)
    assert isinstance(U, device_type)
    close(vals, ev[:2], np.float64)
    Uh = to_host(U)
    np.testing.assert_allclose(want["cov"] @ Uh, Uh * vals, rtol=1e-8, atol=1e-10)


def check_device_estimates(net, to_device):
    """Lanczos, Hutchinson / Hutch++ and SLQ over a HessianOperator built on device arrays
    give the numbers of the same routines over the NumPy operator (same seeds)."""
    from sgdcore import curvature

    theta, X, y = data(net, n=40, seed=7)
    host = curvature.HessianOperator(net, theta, X, y, l2=0.5, backend="numpy")
    dev = curvature.HessianOperator(net, to_device(theta), to_device(X), to_device(y), l2=0.5)
    H = np.asarray(host @ np.eye(net.n_params))
    want = np.linalg.eigvalsh(H)[::-1][:3]
    close(curvature.top_eigenvalues(dev, 3, tol=1e-12).eigenvalues, want, np.float64)
    for method in ("hutchinson", "hutch++"):
        a = curvature.trace(dev, n_products=30, method=method, seed=1)
        b = curvature.trace(host, n_products=30, method=method, seed=1)
        assert a.estimate == pytest.approx(b.estimate, rel=1e-10)
        assert a.std_error == pytest.approx(b.std_error, rel=1e-8)
    a = curvature.slq(dev, np.square, n_probes=3, steps=12, seed=2)  # tr H^2
    b = curvature.slq(host, np.square, n_probes=3, steps=12, seed=2)
    assert a.estimate == pytest.approx(b.estimate, rel=1e-9)
    return dev


def check_device_evidence(net, to_device):
    """Logistic ``fit_map``, ``laplace`` (Cholesky and eigh) and ``evidence_path`` on
    device data against the NumPy backend on the same data."""
    from sgdcore import evidence

    _, X, y = data(net, n=40, seed=7)
    Xd, yd = to_device(X), to_device(y)
    fit = evidence.fit_map(net, Xd, yd, 0.5)
    want = evidence.fit_map(net, X, y, 0.5, backend="numpy")
    np.testing.assert_allclose(fit.theta, want.theta, rtol=1e-8, atol=1e-10)
    for method in ("cholesky", "eigh"):
        got = evidence.laplace(net, fit, Xd, yd, 0.5, method=method)
        ref = evidence.laplace(net, want, X, y, 0.5, method=method, backend="numpy")
        assert got.log_evidence == pytest.approx(ref.log_evidence, rel=1e-9)
    lams = [0.25, 1.0, 4.0]
    path = evidence.evidence_path(net, Xd, yd, lams)
    path_np = evidence.evidence_path(net, X, y, lams, backend="numpy")
    np.testing.assert_allclose(
        [r.log_evidence for r in path], [r.log_evidence for r in path_np], rtol=1e-9
    )
