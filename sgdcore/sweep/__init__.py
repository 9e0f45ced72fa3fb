"""Sweeps: many SGD runs, grouped, trained, stored and resumable.

>>> from sgdcore import sweep
>>> spec = sweep.SweepSpec(grid={"batch_size": [16, 64], "seed": [0, 1]},
...                        fixed={"lr": 0.1, "momentum": 0.9}, steps=200,
...                        model={"kind": "mlp", "hidden": 128})
>>> len(spec.expand())
4

``sweep.run(spec, store="results/bs")`` expands the spec into groups (runs sharing a
batch size and a number of steps, trained together by :func:`sgdcore.train`), trains
those the store does not hold yet — in this process or on a Dask cluster
(``executor="dask"``) — and writes each group to the store the moment it finishes, so a
killed sweep, rerun, resumes where it stopped. ``sweep.load(store)`` reads the results.

Modules: :mod:`~sgdcore.sweep.spec` (SweepSpec, TOML), :mod:`~sgdcore.sweep.groups`,
:mod:`~sgdcore.sweep.store` (the result store), :mod:`~sgdcore.sweep.executors`,
:mod:`~sgdcore.sweep.runner`, :mod:`~sgdcore.sweep.progress`.
"""

from .executors import EXECUTORS, SweepError, run_group
from .groups import Group, make_groups
from .inputs import build_model, load_data
from .progress import Progress
from .runner import plan, run
from .spec import DEFAULTS, RUN_KEYS, SpecError, SweepSpec
from .store import ResultStore, StoreError, load, read_manifest

__all__ = [
    "DEFAULTS",
    "EXECUTORS",
    "RUN_KEYS",
    "Group",
    "Progress",
    "ResultStore",
    "SpecError",
    "StoreError",
    "SweepError",
    "SweepSpec",
    "build_model",
    "load",
    "load_data",
    "make_groups",
    "plan",
    "read_manifest",
    "run",
    "run_group",
]
