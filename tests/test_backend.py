"""The backend resolver and registry."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from conftest import make_problem

import sgdcore
from sgdcore import _backend, _blas
from sgdcore.kernels import contracts


def test_every_cpu_backend_usable_here():
    # The CI machine builds the extension and installs numba: all three must be usable.
    assert {"numpy", "numba", "cpp"} <= set(sgdcore.available_backends())


def test_auto_prefers_compiled(model):
    assert _backend.resolve("auto", quantity="loss_and_grad", kind=model.kind) == "cpp"


def test_env_overrides_auto(monkeypatch, model):
    monkeypatch.setenv("SGDCORE_BACKEND", "numba")
    assert _backend.get_kernel(model, "loss_and_grad")[0] == "numba"


def test_missing_backend_says_how_to_get_it(model, missing_backend):
    theta, X, y = make_problem(model)
    with pytest.raises(
        sgdcore.BackendUnavailable,
        match=r"backend 'absent' is not available: No module named 'sgdcore._not_built'; "
        r"build it with `make not-built`",
    ):
        sgdcore.loss(model, theta, X, y, backend="absent")
    assert missing_backend not in sgdcore.available_backends()


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
        for b in _backend.available_backends():
            assert (kind, "loss_and_grad", b) in reg


def test_backends_with_lists_who_provides_a_quantity():
    assert _backend.backends_with("predict_proba") == ["numpy"]
    assert _backend.backends_with("hessian", "mlp") == []
    assert _backend.backends_with("loss_and_grad") == _backend.available_backends()
    with pytest.raises(ValueError, match="unknown quantity 'hessain'"):
        _backend.backends_with("hessain")


# -- the contracts: register refuses a kernel that does not match its quantity ------------


def _register(quantity="loss_and_grad", backend="numpy", **kw):
    kw.setdefault("threads", "blas")
    return _backend.register(quantity, backend, **kw)


def test_every_registered_kernel_follows_its_contract():
    # register checked each at import; here the registry's own view of the same facts.
    for (kind, quantity, backend), fn in _backend.registry().items():
        contract = contracts.CONTRACTS[quantity]
        assert kind in contract.kinds
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind is not p.KEYWORD_ONLY
        ]
        assert tuple(params) == contract.params, (kind, quantity, backend)


@pytest.mark.parametrize(
    ("quantity", "kw", "signature", "message"),
    [
        ("hvp2", {}, "model, theta, X, y, Vt, out, state", r"unknown quantity; known: "),
        (
            "loss_and_grad",
            {},
            "model, theta, X, y, g",
            r"takes \(model, theta, X, y, g\), the contract says \(model, theta, X, y, grad\)",
        ),
        ("loss_and_grad", {}, "model, theta, X, y, grad, *a", r"takes \(.*\*a\)"),
        ("loss_and_grad", {"threads": "all"}, "model, theta, X, y, grad", r"threads='all' is"),
        ("loss_and_grad", {"flags": ("fast",)}, "model, theta, X, y, grad", "unknown flags"),
        ("hessian", {"kinds": ("mlp",)}, "model, theta, X, out", r"kinds \['mlp'\] lie outside"),
        (
            "loss_and_grad",
            {"threads": contracts.OwnWhen(lambda *a: True, keyword="sparse")},
            "model, theta, X, y, grad",
            r"keyword-only \(\), its contract and thread policy pass \(sparse\)",
        ),
        (
            "hvp",
            {},
            "model, theta, X, y, Vt, out, state=None",
            r"takes \(model, theta, X, y, Vt, out, state\), the contract says \(model, theta, "
            r"X, y, Vt, out\)",
        ),
        ("hvp", {}, "model, theta, X, y, Vt, out", r"keyword-only \(\), its contract .* \(state\)"),
    ],
    ids=[
        "quantity",
        "names",
        "variadic",
        "threads",
        "flags",
        "kinds",
        "policy-keyword",
        "state-by-position",
        "state-missing",
    ],
)
def test_register_refuses_a_kernel_off_contract(quantity, kw, signature, message):
    namespace = {}
    exec(f"def kernel({signature}): pass", namespace)
    with pytest.raises(TypeError, match=r"^kernel .*kernel for '" + quantity + "' on 'numpy': "):
        _register(quantity, **kw)(namespace["kernel"])
    with pytest.raises(TypeError, match=message):
        _register(quantity, **kw)(namespace["kernel"])


def test_register_refuses_an_unknown_backend():
    with pytest.raises(TypeError, match="unknown backend; known: cuda, cpp, numba, numpy"):
        _register(backend="fortran")(lambda model, theta, X, y, grad: 0.0)


# -- the thread policy: get_kernel hands kernels back inside their BLAS limits ------------


def _blas_threads():
    return max(p["num_threads"] for p in _blas.blas_pools().info() if p["user_api"] == "blas")


@pytest.fixture()
def scratch_kernels(monkeypatch):
    """Registers test kernels under a quantity's key and removes them afterwards."""
    monkeypatch.setattr(_backend, "_KERNELS", dict(_backend._KERNELS))
    return _backend._KERNELS


@pytest.mark.parametrize(
    ("threads", "big", "want"),
    [
        ("own", False, 1),
        ("blas", False, None),
        (contracts.OwnWhen(lambda m, t, X, *rest: X.shape[0] > 5), True, 1),
        (contracts.OwnWhen(lambda m, t, X, *rest: X.shape[0] > 5), False, None),
    ],
    ids=["own", "blas", "rule-own", "rule-blas"],
)
def test_get_kernel_applies_the_declared_thread_policy(scratch_kernels, threads, big, want):
    from threadpoolctl import threadpool_limits

    seen = []

    @_backend.register("predict_proba", "numba", threads=threads)
    def kernel(model, theta, X):
        seen.append(_blas_threads())
        return X

    model = sgdcore.models.LogisticRegression(3)
    X = np.zeros((8 if big else 2, 3))
    with threadpool_limits(2, user_api="blas"):
        _backend.get_kernel(model, "predict_proba", "numba")[1](model, None, X)
        after = _blas_threads()
    assert seen == [want or 2] and after == 2


def test_a_policy_keyword_reaches_the_kernel(scratch_kernels):
    got = {}

    @_backend.register(
        "curvature_state",
        "numba",
        threads=contracts.OwnWhen(lambda m, t, X: X.sum() > 0, keyword="dense_enough"),
    )
    def kernel(model, theta, X, *, dense_enough):
        got["flag"] = dense_enough

    model = sgdcore.models.LogisticRegression(3)
    _backend.get_kernel(model, "curvature_state", "numba")[1](model, None, np.ones((2, 3)))
    assert got == {"flag": True}


def test_the_checks_finite_flag_is_a_registry_fact():
    assert "checks_finite" in _backend.flags("mlp", "per_example_grads", "cpp")
    assert _backend.flags("mlp", "per_example_grads", "numpy") == frozenset()


# -- no module shadowed by a function of its package ---------------------------------------


def test_no_module_is_shadowed_by_a_name_of_its_package():
    clashes = []
    for info in pkgutil.walk_packages(sgdcore.__path__, "sgdcore."):
        if info.name.endswith(("._cpu", "._cuda", "__main__")) or ".kernels._" in info.name:
            continue
        module = importlib.import_module(info.name)
        parent, _, leaf = info.name.rpartition(".")
        attr = getattr(importlib.import_module(parent), leaf, None)
        if attr is not module:
            clashes.append(f"{info.name} is shadowed by {type(attr).__name__} {parent}.{leaf}")
    assert not clashes, clashes
