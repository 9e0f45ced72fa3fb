"""Shared fixtures: the three model kinds at test sizes, seeded problems, tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from sgdcore import _backend
from sgdcore.models import MLP, LogisticRegression

#: Relative tolerances against the float64 oracle, per dtype.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
DTYPES = [np.float64, np.float32]
#: Every backend sgdcore knows (a test whose backend is not built here skips, saying why).
BACKENDS = list(_backend.BACKENDS)

MODELS = {
    "logistic_binary": LogisticRegression(9),
    "logistic_softmax": LogisticRegression(9, 4),
    "mlp": MLP(9, 7, 4),
}


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (scalars and arrays alike)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


def make_problem(model, n=23, dtype=np.float64, seed=0):
    """Seeded ``(theta, X, y)``: inputs in [0, 1] like pixels, labels over all classes."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, model.n_features))
    y = rng.integers(0, model.n_classes, n)
    theta = model.init(seed) + 0.1 * rng.standard_normal(model.n_params)
    return theta.astype(dtype), X.astype(dtype), y


def pytest_generate_tests(metafunc):
    if "model" in metafunc.fixturenames:
        metafunc.parametrize("model", list(MODELS.values()), ids=list(MODELS))
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES, ids=["f64", "f32"])
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS)


@pytest.fixture()
def missing_backend(monkeypatch):
    """A backend whose probe line names a module that is not installed."""
    probe = _backend._Probe(("sgdcore._not_built",), "build it with `make not-built`")
    monkeypatch.setitem(_backend._PROBES, "absent", probe)
    monkeypatch.setattr(_backend, "BACKENDS", (*_backend.BACKENDS, "absent"))
    monkeypatch.delitem(_backend._LOADED, "absent", raising=False)
    yield "absent"
    _backend._LOADED.pop("absent", None)


@pytest.fixture(autouse=True)
def _require_backend(request):
    """Skip (with the reason) a test whose backend is not built here."""
    backend = (
        request.node.callspec.params.get("backend") if hasattr(request.node, "callspec") else None
    )
    if backend is not None:
        ok, why = _backend.backend_status(backend)
        if not ok:
            pytest.skip(f"backend {backend} unavailable: {why}")
