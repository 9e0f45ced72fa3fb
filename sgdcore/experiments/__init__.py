"""The paper's experiments, one module each: ``run(...) -> DataFrame``, ``plot(df)`` and
the command-line hooks ``NAME``, ``add_arguments(parser)`` and ``main(args)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def available() -> dict[str, ModuleType]:
    """The experiment modules by command name (their ``NAME``), in module-name order.

    >>> "batch-size" in available()
    True
    """
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "main"):
            found[mod.NAME] = mod
    return found
