"""Shared fixtures: the three model kinds at test sizes, seeded problems, tolerances."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from unittest import mock

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


@contextmanager
def cpp_plan(**fields):
    """Run the C++ training engine with these :class:`~sgdcore.kernels._cpp.train.Plan`
    fields in place of its own choice (thread count, chunk, sparse path)."""
    from sgdcore.kernels._cpp import train as cpp

    chosen = cpp.plan
    with mock.patch.object(
        cpp, "plan", lambda *a, **kw: dataclasses.replace(chosen(*a, **kw), **fields)
    ):
        yield


def make_problem(model, n=23, dtype=np.float64, seed=0):
    """Seeded ``(theta, X, y)``: inputs in [0, 1] like pixels, labels over all classes."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, model.n_features))
    y = rng.integers(0, model.n_classes, n)
    theta = model.init(seed) + 0.1 * rng.standard_normal(model.n_params)
    return theta.astype(dtype), X.astype(dtype), y


#: Bad ``(theta, X, y)`` and what refuses them: id -> (mutate, error, match), ``mutate``
#: taking and returning ``(theta, X, y)``.
BAD_INPUTS = {
    "theta-shape": (lambda t, X, y: (t[:-1], X, y), ValueError, r"theta must have shape"),
    "theta-dtype": (
        lambda t, X, y: (t.astype(np.int64), X, y),
        TypeError,
        r"theta must be float32 or float64",
    ),
    "dtype-mix": (lambda t, X, y: (t, X.astype(np.float32), y), TypeError, r"X has dtype float32"),
    "X-shape": (lambda t, X, y: (t, X[:, :-1], y), ValueError, r"X must have shape"),
    "empty": (lambda t, X, y: (t, X[:0], y[:0]), ValueError, r"X is empty"),
    "non-contiguous": (
        lambda t, X, y: (t, np.asfortranarray(X), y),
        ValueError,
        r"X must be C-contiguous",
    ),
    "y-length": (lambda t, X, y: (t, X, y[:-1]), ValueError, r"y must have shape"),
    "label-high": (lambda t, X, y: (t, X, y + 10), ValueError, r"outside \[0"),
    "label-negative": (lambda t, X, y: (t, X, y - 10), ValueError, r"outside \[0"),
    "float-labels": (lambda t, X, y: (t, X, y.astype(float)), TypeError, r"integer class labels"),
    "nan-X": (lambda t, X, y: (t, np.where(X > 0.5, np.nan, X), y), ValueError, r"X contains NaN"),
    "inf-X": (
        lambda t, X, y: (t, np.where(X > 0.5, np.inf, X), y),
        ValueError,
        r"X contains NaN or inf",
    ),
    "nan-theta": (
        lambda t, X, y: (np.full_like(t, np.nan), X, y),
        ValueError,
        r"theta contains NaN",
    ),
    "inf-theta": (
        lambda t, X, y: (np.full_like(t, np.inf), X, y),
        ValueError,
        r"theta contains NaN or inf",
    ),
    "list": (lambda t, X, y: (t, X.tolist(), y), TypeError, r"X must be a NumPy array"),
}
#: The cases every kernel entry point refuses alike.
BAD_SHAPES_AND_TYPES = [
    "theta-shape",
    "theta-dtype",
    "dtype-mix",
    "X-shape",
    "empty",
    "non-contiguous",
    "y-length",
    "label-high",
    "label-negative",
]


def bad_inputs(*more):
    """``pytest.param`` s of :data:`BAD_SHAPES_AND_TYPES` and the cases ``more`` named,
    for ``@pytest.mark.parametrize("mutate, error, match", ...)``."""
    return [pytest.param(*BAD_INPUTS[k], id=k) for k in (*BAD_SHAPES_AND_TYPES, *more)]


PNG = b"\x89PNG\r\n\x1a\n"
#: The keys of every verdict an experiment writes into ``summary.json``.
VERDICT_KEYS = {"claim", "measured", "interval", "verdict", "note"}


def run_quick(tmp_path_factory, name, *changes):
    """Run experiment ``name`` through the command line with ``--quick`` into a fresh
    folder, each ``(table, {key: value})`` of ``changes`` set in the experiment's
    settings for the run only; return the folder."""
    from sgdcore import cli

    mp = pytest.MonkeyPatch()
    for table, values in changes:
        for k, v in values.items():
            mp.setitem(table, k, v)
    out = tmp_path_factory.mktemp(name) / name
    try:
        assert cli.main(["run", name, "--quick", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out


def read_summary(out, figures):
    """``summary.json`` and ``summary.md`` of an experiment's folder, once each figure is
    checked to be a PNG linked from the Markdown and each verdict to have the usual keys
    and one of the three answers."""
    import json

    for f in figures:
        assert (out / f"{f}.png").read_bytes().startswith(PNG), f
    summary = json.loads((out / "summary.json").read_text())
    md = (out / "summary.md").read_text()
    assert all(f"({f}.png)" in md for f in figures)
    for v in summary["verdicts"]:
        assert set(v) == VERDICT_KEYS
        assert v["verdict"] in ("agrees", "disagrees", "inconclusive")
    return summary, md


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


#: The summary line of the Numba CUDA simulator run (tests/test_numba_cuda.py starts it in
#: a subprocess), repeated at the end of this run so that CI's log counts those tests.
SIMULATOR_SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = config.stash.get(SIMULATOR_SUMMARY, None)
    if line:
        terminalreporter.write_line(f"Numba CUDA simulator run (tests/test_numba_cuda.py): {line}")
