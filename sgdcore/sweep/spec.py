"""What a sweep runs: :class:`SweepSpec`, from a grid, an explicit list or a TOML file.

A sweep is a set of SGD runs of one model on one data set. Each run is a point in
the space of hyper-parameters (:data:`RUN_KEYS`):

``batch_size`` (B), ``lr`` (ε), ``momentum`` (m), ``l2`` (λ, the summed-cost
coefficient), ``n_train`` (N, the model trains on the first N rows of the drawn
training set), ``seed`` (initialisation and mini-batch stream), ``label_seed``
(-1: true labels; s >= 0: labels randomised with
:func:`sgdcore.data.randomize_labels` and seed s) and ``steps``.

Runs are given as

* a **grid**, a dict of lists whose Cartesian product is taken (scalars are
  one-element lists), or a list of such grids whose union is taken (to pair, say,
  batch sizes with the training-set sizes they fit);
* an explicit list of **runs**, each a dict;

and every key a run leaves out takes its value from ``fixed`` and then from
:data:`DEFAULTS`. The number of steps is either given per run (a ``steps`` key), or
by the spec's ``steps`` rule: an int (every run takes that many steps) or
``{"rule": "constant_time", "time": T}``, which gives a run ``round(T / lr)`` steps
so that the SDE time ε·steps is the same for every learning rate (the paper's
"10000/ε steps" is ``time = 10000``). With ``per = "effective_lr"`` the time is
counted in the effective learning rate ε/(1-m) of heavy-ball momentum instead:
``round(T (1 - m) / lr)`` steps.

Evaluation (``eval``): ``"final"`` (only the last step; the default), ``{"every":
k}`` (step 0, every k steps and the last), ``{"log": n}`` (step 0 and n
log-spaced steps up to the last) or ``{"steps": [...]}`` (those steps that a run
reaches, and its last).

A TOML file holds the same keys::

    name = "batch-size"
    steps = 500                       # or: steps = {rule = "constant_time", time = 50}
    eval = "final"                    # or: eval = {every = 50}
    dtype = "float32"
    backend = "auto"

    [model]                           # kind = "mlp" (with hidden) or "logistic"
    kind = "mlp"
    hidden = 800

    [data]                            # or: data = "fashion-mnist" (a name or a path)
    name = "mnist"                    # "mnist", "fashion-mnist", "synthetic" or a path
    split = "auto"                    # "auto", "train", "test" or "all"
    n_train = 1000
    n_test = 4000
    seed = 0

    [fixed]
    lr = 0.1
    momentum = 0.9

    [grid]                            # or [[grid]] several times, or [[runs]]
    batch_size = [1, 4, 16, 64, 256, 1000]
    seed = [0, 1, 2]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _backend
from .._validate import is_int
from .inputs import build_model

__all__ = ["DEFAULTS", "RUN_KEYS", "SpecError", "SweepSpec"]

#: The hyper-parameters of one run, in the order tables list them.
RUN_KEYS = ("batch_size", "lr", "momentum", "l2", "n_train", "seed", "label_seed", "steps")
#: Values a run takes for keys that neither the run nor ``fixed`` gives
#: (``n_train=None``: the whole drawn training set; ``steps``: the spec's rule).
DEFAULTS = {"momentum": 0.0, "l2": 0.0, "n_train": None, "seed": 0, "label_seed": -1}
_SPEC_KEYS = (
    "name",
    "grid",
    "runs",
    "fixed",
    "steps",
    "eval",
    "model",
    "data",
    "dtype",
    "backend",
    "max_group",
)
_MODEL_KEYS = {"mlp": ("kind", "hidden"), "logistic": ("kind",)}
_DATA_KEYS = (
    "name",
    "path",
    "split",
    "n_train",
    "n_test",
    "seed",
    "download",
    "offline_ok",
    "digits",
)
#: Data keys that say how to get the data, not which data: left out of the spec's hash.
_DATA_ACCESS = ("download", "offline_ok")
#: Memory a group may use for its parameters, velocities, gradients and activations.
GROUP_MEMORY_BYTES = 1 << 30
#: Most models trained together in one group.
MAX_GROUP = 256


class SpecError(ValueError):
    """A sweep specification is malformed; the message names the key and the problem."""


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: the runs, the model, the data and how long and how often to evaluate.

    Parameters
    ----------
    grid : dict or list of dict, optional
        Hyper-parameter grid(s): each maps keys of :data:`RUN_KEYS` to a list of
        values (or one value); the Cartesian product of each grid is taken and the
        union over grids.
    runs : list of dict, optional
        Explicit runs, each a dict over :data:`RUN_KEYS`. ``grid`` and ``runs``
        may be combined; the sweep holds both.
    fixed : dict, optional
        Values for keys a run does not give (e.g. ``{"lr": 0.1, "momentum": 0.9}``).
        ``lr`` has no default and must be given somewhere.
    steps : int or dict, optional
        The step rule for runs without a ``steps`` key: an int, or
        ``{"rule": "constant_time", "time": T}`` (``round(T / lr)`` steps, at least 1;
        add ``"per": "effective_lr"`` for ``round(T (1 - m) / lr)``).
    eval : str or dict
        ``"final"``, ``{"every": k}``, ``{"log": n}`` or ``{"steps": [...]}``.
    model : dict
        ``{"kind": "mlp", "hidden": H}`` (784-H-10 on MNIST) or ``{"kind": "logistic"}``.
    data : dict or str
        ``{"name": "mnist" | "fashion-mnist" | "synthetic" | PATH, "split": "auto" |
        "train" | "test" | "all", "n_train": int, "n_test": int or None, "seed": int,
        "download": bool, "offline_ok": bool, "digits": [a, b] or None}``; see
        :func:`sgdcore.sweep.load_data` and :func:`sgdcore.data.load_pools`. A string
        is the name alone; ``"path"`` may stand for ``"name"`` when it is a path
        (relative to the working directory).
    dtype : {"float32", "float64"}
    backend : str
        Training backend passed to :func:`sgdcore.train`.
    max_group : int, optional
        Most models per group; by default as many as fit in
        :data:`GROUP_MEMORY_BYTES` (at most :data:`MAX_GROUP`).
    name : str
        A label for reports.

    Raises
    ------
    SpecError
        On an unknown key, a value of the wrong type or range, a duplicate run, a
        run whose batch size exceeds its training-set size, or an empty sweep.
    """

    grid: tuple = ()
    runs: tuple = ()
    fixed: dict = field(default_factory=dict)
    steps: int | dict | None = None
    eval: str | dict = "final"
    model: dict = field(default_factory=lambda: {"kind": "mlp", "hidden": 800})
    data: dict = field(default_factory=lambda: {"name": "mnist", "n_train": 1000})
    dtype: str = "float32"
    backend: str = "auto"
    max_group: int | None = None
    name: str = "sweep"

    def __post_init__(self):
        grid = self.grid
        if isinstance(grid, dict):
            grid = [grid]
        if grid is None:
            grid = []
        if not isinstance(grid, (list, tuple)):
            raise SpecError(f"grid must be a dict of lists or a list of them, got {grid!r}")
        grids = tuple(_check_grid(g, i) for i, g in enumerate(grid))
        runs = self.runs if self.runs is not None else ()
        if not isinstance(runs, (list, tuple)):
            raise SpecError(f"runs must be a list of dicts, got {type(runs).__name__}")
        runs = tuple(_check_run_keys(r, f"runs[{i}]") for i, r in enumerate(runs))
        fixed = _check_run_keys(self.fixed or {}, "fixed")
        object.__setattr__(self, "grid", grids)
        object.__setattr__(self, "runs", runs)
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "steps", _check_steps_rule(self.steps))
        object.__setattr__(self, "eval", _check_eval(self.eval))
        object.__setattr__(self, "model", _check_model(self.model))
        object.__setattr__(self, "data", _check_data(self.data))
        if self.dtype not in ("float32", "float64"):
            raise SpecError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        backends = ("auto", *_backend.BACKENDS)
        if self.backend not in backends:
            raise SpecError(f"backend must be one of {backends}, got {self.backend!r}")
        _check_backend_usable(self.backend)
        if self.max_group is not None:
            object.__setattr__(self, "max_group", _int("max_group", self.max_group, 1))
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"name must be a non-empty string, got {self.name!r}")
        self.expand()  # validates every run now, not when the sweep is half done

    def __hash__(self) -> int:
        return hash(self.sha256)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        """Build a spec from a plain dict (the form TOML files and manifests hold)."""
        if not isinstance(d, dict):
            raise SpecError(f"a sweep spec must be a table/dict, got {type(d).__name__}")
        _refuse_unknown(d, _SPEC_KEYS, "unknown spec key(s)")
        return cls(**d)

    @classmethod
    def from_toml(cls, path) -> SweepSpec:
        """Read a spec from a TOML file (see the module docstring for the keys)."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        path = Path(path)
        try:
            with path.open("rb") as f:
                d = tomllib.load(f)
        except FileNotFoundError:
            raise SpecError(f"sweep spec file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"sweep spec file {path} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(d)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable form; ``from_dict(to_dict())`` gives an equal spec."""
        return {
            "name": self.name,
            "grid": [dict(g) for g in self.grid],
            "runs": [dict(r) for r in self.runs],
            "fixed": dict(self.fixed),
            "steps": self.steps,
            "eval": self.eval,
            "model": dict(self.model),
            "data": dict(self.data),
            "dtype": self.dtype,
            "backend": self.backend,
            "max_group": self.max_group,
        }

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of what determines the results: every key except ``name``,
        ``data.download`` and ``data.offline_ok`` (the data actually drawn are checked
        by their own checksum), and ``data.split`` when it is ``"auto"`` (so a store
        made before the key existed still resumes).
        """
        d = self.to_dict()
        d.pop("name")
        for key in _DATA_ACCESS:
            d["data"].pop(key)
        if d["data"]["split"] == "auto":
            d["data"].pop("split")
        return hashlib.sha256(_canonical(d).encode()).hexdigest()

    # -- expansion ----------------------------------------------------------------------

    def expand(self) -> list[dict]:
        """Every run as a dict over :data:`RUN_KEYS`, in a fixed order.

        ``n_train`` is ``None`` where the run uses the whole training set, and
        ``steps`` is resolved by the step rule.

        Raises
        ------
        SpecError
            On a missing ``lr``/``steps``, a bad value, a duplicate, or
            ``batch_size > n_train``.
        """
        raw = []
        for i, g in enumerate(self.grid):
            keys = list(g)
            for values in itertools.product(*(g[k] for k in keys)):
                raw.append((f"grid[{i}]", dict(zip(keys, values, strict=True))))
        for i, r in enumerate(self.runs):
            raw.append((f"runs[{i}]", dict(r)))
        if not raw:
            raise SpecError("the sweep has no runs: give a grid or a list of runs")
        pool = self.data["n_train"]
        runs, seen = [], {}
        for where, r in raw:
            run = {**DEFAULTS, **self.fixed, **r}
            if "lr" not in run:
                raise SpecError(f"{where}: no learning rate; give lr in the grid, runs or fixed")
            run = _check_run_values(run, where)
            if "steps" not in run:
                if self.steps is None:
                    raise SpecError(f"{where}: no steps; give steps per run or a spec-level rule")
                run["steps"] = _resolve_steps(self.steps, run["lr"], run["momentum"])
            n = pool if run["n_train"] is None else run["n_train"]
            if n > pool:
                raise SpecError(
                    f"{where}: n_train={n} exceeds the drawn training set (data.n_train={pool})"
                )
            if run["batch_size"] > n:
                raise SpecError(
                    f"{where}: batch_size={run['batch_size']} exceeds the training-set size "
                    f"{n}; pair batch sizes with the n_train they fit by giving several "
                    "grids ([[grid]] in TOML)"
                )
            run = {k: run[k] for k in RUN_KEYS}
            key = _canonical(run)
            if key in seen:
                raise SpecError(f"{where}: duplicate run {run} (also {seen[key]})")
            seen[key] = where
            runs.append(run)
        return runs

    def eval_steps(self, steps: int) -> list[int]:
        """The evaluation steps of a run of ``steps`` steps (sorted, always the last)."""
        kind, value = _eval_kind(self.eval)
        if kind == "final":
            out = {steps}
        elif kind == "every":
            out = set(range(0, steps + 1, value)) | {steps}
        elif kind == "log":
            pts = np.unique(np.round(np.geomspace(1, steps, value)).astype(np.int64))
            out = {0, steps, *(int(p) for p in pts)}
        else:
            out = {s for s in value if s <= steps} | {steps}
        return sorted(out)

    def group_size_limit(self, batch_size: int, n_features: int, n_classes: int) -> int:
        """Most models a group of batch size ``batch_size`` holds (see ``max_group``)."""
        if self.max_group is not None:
            return self.max_group
        item = 4 if self.dtype == "float32" else 8
        width = self.model.get("hidden", n_classes) + n_classes
        n_params = build_model(self.model, n_features, n_classes).n_params
        per_model = item * (4 * n_params + 3 * batch_size * width + 2048 * width)
        return int(max(1, min(MAX_GROUP, GROUP_MEMORY_BYTES // per_model)))


# -- validation helpers ------------------------------------------------------------------


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"not JSON-serialisable: {o!r}")


def _int(name: str, value, minimum: int | None = None) -> int:
    if not is_int(value):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(f"{name} must be finite, got {value}")
    return value


def _check_run_keys(d, where: str) -> dict:
    if not isinstance(d, dict):
        raise SpecError(f"{where} must be a dict over {', '.join(RUN_KEYS)}, got {d!r}")
    _refuse_unknown(d, RUN_KEYS, f"{where}: unknown hyper-parameter(s)")
    return {k: _plain(v) for k, v in d.items()}


def _refuse_unknown(d: dict, allowed, what: str) -> None:
    """Raise :class:`SpecError` naming the keys of ``d`` outside ``allowed``, if any."""
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise SpecError(f"{what} {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    return v


def _check_grid(g, i: int) -> dict:
    g = _check_run_keys(g, f"grid[{i}]")
    out = {}
    for k in RUN_KEYS:  # a fixed key order, whatever order the user wrote
        if k not in g:
            continue
        v = g[k]
        v = v if isinstance(v, list) else [v]
        if not v:
            raise SpecError(f"grid[{i}].{k} is an empty list")
        out[k] = v
    if not out:
        raise SpecError(f"grid[{i}] is empty")
    return out


def _check_run_values(run: dict, where: str) -> dict:
    out = dict(run)
    out["batch_size"] = _int(f"{where}.batch_size", run.get("batch_size"), 1)
    out["lr"] = _float(f"{where}.lr", run["lr"])
    if out["lr"] <= 0:
        raise SpecError(f"{where}.lr must be > 0, got {out['lr']}")
    out["momentum"] = _float(f"{where}.momentum", run["momentum"])
    if not 0.0 <= out["momentum"] < 1.0:
        raise SpecError(f"{where}.momentum must be in [0, 1), got {out['momentum']}")
    out["l2"] = _float(f"{where}.l2", run["l2"])
    if out["l2"] < 0:
        raise SpecError(f"{where}.l2 must be >= 0, got {out['l2']}")
    if run["n_train"] is not None:
        out["n_train"] = _int(f"{where}.n_train", run["n_train"], 1)
    out["seed"] = _int(f"{where}.seed", run["seed"], 0)
    ls = run["label_seed"]
    out["label_seed"] = -1 if ls is None else _int(f"{where}.label_seed", ls, -1)
    if "steps" in run:
        out["steps"] = _int(f"{where}.steps", run["steps"], 1)
    return out


def _check_backend_usable(backend: str) -> None:
    """A named backend must be usable here, so that a sweep fails before its store
    is made rather than in its first group.
    """
    if backend == "auto":
        return
    from .._backend import available_backends, backend_status

    ok, why = backend_status(backend)
    if not ok:
        raise SpecError(
            f"backend = {backend!r} is not usable here ({why}); use backend = 'auto' or one "
            f"of {', '.join(map(repr, available_backends()))}"
        )


def _check_steps_rule(steps):
    if steps is None:
        return None
    if isinstance(steps, dict):
        unknown = sorted(set(steps) - {"rule", "time", "steps", "per"})
        if unknown:
            raise SpecError(f"steps: unknown key(s) {unknown}; allowed: rule, time, per, steps")
        rule = steps.get("rule")
        if rule == "fixed":
            return _int("steps.steps", steps.get("steps"), 1)
        if rule != "constant_time":
            raise SpecError(f"steps.rule must be 'fixed' or 'constant_time', got {rule!r}")
        time = _float("steps.time", steps.get("time"))
        if time <= 0:
            raise SpecError(f"steps.time must be > 0, got {time}")
        per = steps.get("per", "lr")
        if per not in ("lr", "effective_lr"):
            raise SpecError(f"steps.per must be 'lr' or 'effective_lr', got {per!r}")
        return {"rule": "constant_time", "time": time, "per": per}
    return _int("steps", steps, 1)


def _resolve_steps(rule, lr: float, momentum: float) -> int:
    if isinstance(rule, int):
        return rule
    scale = (1.0 - momentum) if rule["per"] == "effective_lr" else 1.0
    return max(1, int(round(rule["time"] * scale / lr)))


def _eval_kind(ev):
    if ev == "final":
        return "final", None
    ((kind, value),) = ev.items()
    return kind, value


def _check_eval(ev):
    if isinstance(ev, bool):
        raise SpecError(f"eval must be 'final' or a dict, got {ev!r}")
    if isinstance(ev, (int, np.integer)):
        ev = {"every": int(ev)}
    if ev == "final":
        return "final"
    if not isinstance(ev, dict) or len(ev) != 1:
        raise SpecError(
            f"eval must be 'final', {{'every': k}}, {{'log': n}} or {{'steps': [...]}}, got {ev!r}"
        )
    ((kind, value),) = ev.items()
    if kind in ("every", "log"):
        return {kind: _int(f"eval.{kind}", value, 1 if kind == "every" else 2)}
    if kind == "steps":
        if not isinstance(value, (list, tuple)) or not value:
            raise SpecError(f"eval.steps must be a non-empty list of steps, got {value!r}")
        return {"steps": sorted({_int("eval.steps[]", s, 0) for s in value})}
    raise SpecError(f"eval: unknown schedule {kind!r}; use every, log or steps")


def _check_model(m) -> dict:
    if not isinstance(m, dict) or m.get("kind") not in _MODEL_KEYS:
        raise SpecError(
            f"model must be {{'kind': 'mlp', 'hidden': H}} or {{'kind': 'logistic'}}, got {m!r}"
        )
    unknown = sorted(set(m) - set(_MODEL_KEYS[m["kind"]]))
    if unknown:
        raise SpecError(f"model: unknown key(s) {unknown} for kind {m['kind']!r}")
    out = {"kind": m["kind"]}
    if m["kind"] == "mlp":
        out["hidden"] = _int("model.hidden", m.get("hidden"), 1)
    return out


def _check_data(d) -> dict:
    from ..data import NAMES, SPLITS

    if isinstance(d, str):
        d = {"name": d}
    if not isinstance(d, dict):
        raise SpecError(f"data must be a table (dict) or a data set name or path, got {d!r}")
    unknown = sorted(set(d) - set(_DATA_KEYS))
    if unknown:
        raise SpecError(f"data: unknown key(s) {unknown}; allowed: {', '.join(_DATA_KEYS)}")
    if "path" in d and "name" in d:
        raise SpecError("data: give name or path, not both")
    name = d.get("path", d.get("name", "mnist"))
    if not isinstance(name, str) or not name:
        raise SpecError(
            f"data.name must be 'mnist', 'fashion-mnist', 'synthetic' or a path, got {name!r}"
        )
    if name not in (*NAMES, "synthetic") and os.sep not in name and not Path(name).exists():
        raise SpecError(
            f"data.name {name!r} is neither a data set name ({', '.join(NAMES)}, synthetic) "
            "nor an existing file or folder"
        )
    split = d.get("split", "auto")
    if split not in SPLITS:
        raise SpecError(f"data.split must be one of {', '.join(SPLITS)}, got {split!r}")
    out = {
        "name": name,
        "split": split,
        "n_train": _int("data.n_train", d.get("n_train", 1000), 1),
        "n_test": None if d.get("n_test") is None else _int("data.n_test", d["n_test"], 1),
        "seed": _int("data.seed", d.get("seed", 0), 0),
        "download": d.get("download", False),
        "offline_ok": d.get("offline_ok", False),
        "digits": d.get("digits"),
    }
    for key in _DATA_ACCESS:
        if not isinstance(out[key], bool):
            raise SpecError(f"data.{key} must be true or false, got {out[key]!r}")
    if out["digits"] is not None:
        dg = out["digits"]
        if not isinstance(dg, (list, tuple)) or len(dg) != 2:
            raise SpecError(f"data.digits must be two classes [a, b], got {dg!r}")
        out["digits"] = [_int("data.digits[]", x, 0) for x in dg]
    return out
