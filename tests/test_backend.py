"""The backend resolver and registry."""

from __future__ import annotations

import pytest
from conftest import make_problem

import sgdcore
from sgdcore import _backend


def test_every_cpu_backend_usable_here():
    # The CI machine builds the extension and installs numba: all three must be usable.
    assert {"numpy", "numba", "cpp"} <= set(sgdcore.available_backends())


def test_auto_prefers_compiled(model):
    assert _backend.resolve("auto", quantity="loss_and_grad", kind=model.kind) == "cpp"


def test_env_overrides_auto(monkeypatch, model):
    monkeypatch.setenv("SGDCORE_BACKEND", "numba")
    assert _backend.get_kernel(model, "loss_and_grad")[0] == "numba"


def test_missing_backend_says_how_to_get_it(model):
    theta, X, y = make_problem(model)
    with pytest.raises(sgdcore.BackendUnavailable, match="backend 'cuda' is not available.*nvcc"):
        sgdcore.loss(model, theta, X, y, backend="cuda")


def test_unknown_backend(model):
    theta, X, y = make_problem(model)
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        sgdcore.loss(model, theta, X, y, backend="fortran")


def test_missing_quantity_names_who_has_it(model):
    with pytest.raises(sgdcore.BackendUnavailable, match="has no 'predict_proba' kernel.*numpy"):
        _backend.get_kernel(model, "predict_proba", "cpp")


def test_registry_covers_every_model_for_loss_and_grad():
    reg = _backend.registry()
    for kind in _backend.MODEL_KINDS:
        for b in ("numpy", "numba", "cpp"):
            assert (kind, "loss_and_grad", b) in reg
