"""The benchmark suite: every registered kernel has an asv benchmark (numpy's ufunc guard,
for kernels), and the two input kinds every workload runs on."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest

from sgdcore import _backend

ROOT = Path(__file__).resolve().parents[1]


def _benchmarked_quantities() -> set[str]:
    sys.path.insert(0, str(ROOT))
    try:
        import benchmarks

        found = set()
        for info in pkgutil.iter_modules(benchmarks.__path__):
            mod = importlib.import_module(f"benchmarks.{info.name}")
            for _, cls in inspect.getmembers(mod, inspect.isclass):
                q = getattr(cls, "QUANTITY", None)
                found.update([q] if isinstance(q, str) else (q or ()))
        return found
    finally:
        sys.path.remove(str(ROOT))


def test_every_registered_quantity_is_benchmarked():
    registered = {q for (_, q, _) in _backend.registry()}
    missing = registered - _benchmarked_quantities()
    assert not missing, f"kernels without an asv benchmark: {sorted(missing)}"


def test_backend_parameters_come_from_the_registry():
    # A new backend is benchmarked by registering kernels: no list in benchmarks/ to edit.
    sys.path.insert(0, str(ROOT))
    try:
        import benchmarks

        for info in pkgutil.iter_modules(benchmarks.__path__):
            mod = importlib.import_module(f"benchmarks.{info.name}")
            for name, cls in inspect.getmembers(mod, inspect.isclass):
                names = getattr(cls, "param_names", [])
                if getattr(cls, "QUANTITY", None) and "backend" in names:
                    backends = cls.params[names.index("backend")]
                    assert list(backends) == list(_backend.BACKENDS), f"{info.name}.{name}"
    finally:
        sys.path.remove(str(ROOT))


def test_benchmark_inputs_are_dense_or_digits():
    # Dense X is uniform in [0, 1) with no zeros; digits are the same draws with every
    # value below 0.8 zeroed and the rest stretched to [0, 1); both share the labels.
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.common import inputs

        Xd, yd = inputs("dense", 500, 10, np.float64, seed=3)
        Xs, ys = inputs("digits", 500, 10, np.float64, seed=3)
        with pytest.raises(ValueError, match="'sparse'"):
            inputs("sparse", 5)
    finally:
        sys.path.remove(str(ROOT))
    assert Xd.shape == Xs.shape == (500, 784)
    np.testing.assert_array_equal(yd, ys)
    assert yd.min() >= 0 and yd.max() < 10
    assert Xd.min() > 0.0 and Xd.max() < 1.0
    np.testing.assert_allclose(Xs, np.where(Xd < 0.8, 0.0, (Xd - 0.8) / 0.2), rtol=0, atol=1e-12)
    # zero fraction 0.8, binomial sd sqrt(0.16 / 392,000) = 6.4e-4: 5 sd
    assert abs(float(np.mean(Xs == 0.0)) - 0.8) < 5 * 6.4e-4


def test_peers_rejects_an_unknown_input_kind(capsys):
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import peers

        with pytest.raises(SystemExit) as exc:
            peers.main(["--inputs", "dense,sparse"])
    finally:
        sys.path.remove(str(ROOT))
    assert exc.value.code == 2
    assert "--inputs: unknown input kind 'sparse'" in capsys.readouterr().err
