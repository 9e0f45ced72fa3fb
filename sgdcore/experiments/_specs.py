"""The sweep experiments' ``make_spec``, declared once.

Every sweep experiment trains the paper's MLP on the experiment data with a grid of
runs. What tells them apart is their settings (a full and a quick table of defaults,
each key a keyword of ``make_spec``) and how the settings become the sweep's grid,
fixed values, steps and evaluations. :func:`spec_maker` builds the ``make_spec`` of an
experiment from exactly that; the model, the data table, the backend and the
experiment's name are filled in here, the same for all.
"""

from __future__ import annotations

import inspect

from .. import sweep
from . import _common as C

#: Marks a keyword of ``make_spec`` that has no default (it must be given).
REQUIRED = inspect.Parameter.empty


def spec_maker(
    name: str, full: dict, quick: dict, build, doc: str, extra: dict | None = None, keys=None
):
    """An experiment's ``make_spec(quick=False, *, <settings>, backend="auto", data=None)``.

    Parameters
    ----------
    name : str
        The experiment's name (the sweep's ``name``).
    full, quick : dict
        The paper's settings and the quick ones, each with ``hidden`` and ``seeds``;
        every key is a keyword of ``make_spec`` (None: the table's value).
    build : callable
        ``build(p, **extra) -> dict`` of :class:`~sgdcore.sweep.SweepSpec` fields
        (``grid``, ``fixed``, ``steps``, ``eval``) from the settings ``p``; it may add
        ``pool``, the training examples the data table draws (default the
        experiment data's).
    doc : str
        ``make_spec``'s docstring.
    extra : dict, optional
        Further keywords of ``make_spec`` that ``build`` takes, with their defaults
        (:data:`REQUIRED` for none).
    keys : sequence of str, optional
        The settings that are keywords (default every key of ``full``); the others
        always take the table's value.

    Returns
    -------
    callable
        ``make_spec``; a keyword it does not know raises TypeError, as for any function.

    Examples
    --------
    >>> make = spec_maker(
    ...     "demo",
    ...     {"hidden": 800, "seeds": 3, "lr": 0.1},
    ...     {"hidden": 16, "seeds": 1, "lr": 0.1},
    ...     lambda p: {"grid": {"batch_size": [8], "seed": list(range(p["seeds"]))},
    ...                "fixed": {"lr": p["lr"]}, "steps": 10},
    ...     "A demonstration.",
    ... )
    >>> spec = make(quick=True, lr=0.5)
    >>> spec.model, spec.fixed["lr"], len(spec.expand())
    ({'kind': 'mlp', 'hidden': 16}, 0.5, 1)
    >>> make(batch=3)
    Traceback (most recent call last):
    ...
    TypeError: got an unexpected keyword argument 'batch'
    """
    extra = dict(extra or {})
    keys = tuple(full if keys is None else keys)
    kw = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [inspect.Parameter("quick", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False)]
        + [inspect.Parameter(k, kw, default=None) for k in keys]
        + [inspect.Parameter(k, kw, default=v) for k, v in extra.items()]
        + [
            inspect.Parameter("backend", kw, default="auto"),
            inspect.Parameter("data", kw, default=None),
        ],
        return_annotation="sweep.SweepSpec",
    )

    def make_spec(*args, **kwargs) -> sweep.SweepSpec:
        a = signature.bind(*args, **kwargs)
        a.apply_defaults()
        given = a.arguments
        defaults = quick if given["quick"] else full
        p = {k: (given[k] if given.get(k) is not None else v) for k, v in defaults.items()}
        parts = build(p, **{k: given[k] for k in extra})
        sizes = {"n_train": parts.pop("pool")} if "pool" in parts else {}
        return sweep.SweepSpec(
            name=name,
            model={"kind": "mlp", "hidden": p["hidden"]},
            data=C.data_table(given["data"], **sizes),
            backend=given["backend"],
            **parts,
        )

    make_spec.__signature__ = signature
    make_spec.__doc__ = doc
    make_spec.__name__ = make_spec.__qualname__ = "make_spec"
    make_spec.__module__ = build.__module__
    return make_spec


def schedule(p: dict, grid: dict) -> dict:
    """The sweep fields of ``grid`` × ``seeds`` seeds at one ε and m, trained for
    ``steps`` with ``evals`` log-spaced evaluations, from the settings ``p``.
    """
    return {
        "grid": {**grid, "seed": list(range(p["seeds"]))},
        "fixed": {"lr": p["lr"], "momentum": p["momentum"]},
        "steps": p["steps"],
        "eval": {"log": p["evals"]},
    }


#: Command-line options of the settings several experiments share:
#: ``name -> (type, nargs, help)``; ``{default}`` in a help is the full setting's value.
OPTIONS = {
    "lr": (C.positive_float, None, "learning rate ε (default {default})"),
    "lrs": (C.positive_float, "+", "learning rates ε to sweep"),
    "momentum": (C.momentum_value, None, "momentum m (default {default})"),
    "momenta": (C.momentum_value, "+", "values of m"),
    "ns": (C.positive_int, "+", "training-set sizes"),
    "steps": (C.positive_int, None, "SGD steps per run"),
    "small": (C.positive_int, None, "the small batch size ({default})"),
}


def add_setting_arguments(parser, full: dict, names) -> None:
    """``--NAME`` for each setting in ``names`` (:data:`OPTIONS`), default None (the
    experiment's table).
    """
    for name in names:
        kind, nargs, text = OPTIONS[name]
        parser.add_argument(
            f"--{name}",
            type=kind,
            nargs=nargs,
            default=None,
            help=text.format(default=full.get(name)),
        )


def setting_values(args, names) -> dict:
    """The ``run`` keywords of the settings ``names`` from parsed ``args``."""
    return {name: getattr(args, name) for name in names}
