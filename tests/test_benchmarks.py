"""Every registered kernel has an asv benchmark (numpy's ufunc guard, for kernels)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

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
