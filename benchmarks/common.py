"""Workloads shared by the asv suite and ``benchmarks/peers.py``: MNIST-shaped synthetic
data of two kinds (seeded, the same in every environment) and a helper that skips
combinations a machine cannot run (asv's rule: NotImplementedError in setup)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sgdcore import _backend

MLP_SHAPE = (784, 800, 10)

#: The asv ``backend`` parameter: every backend sgdcore knows, in ``auto``'s order (the
#: same in every environment; :func:`require` skips the ones a machine cannot run).
BACKENDS = list(_backend.BACKENDS)

#: The backends this machine can run (side-by-side scripts time only these).
USABLE = _backend.available_backends()


#: The input kinds every workload runs on: ``"dense"``, X uniform in [0, 1) (no zeros:
#: the first layer's GEMM path), and ``"digits"``, MNIST-like pixels, 80% zeros (the
#: inputs on which sgdcore's sparse first-layer path engages).
INPUTS = ["dense", "digits"]


def inputs(kind: str, n: int, n_classes: int = 10, dtype=np.float32, seed: int = 0):
    """Seeded ``(X, y)`` of MNIST shape (784 features) and uniform labels in
    ``[0, n_classes)``.

    Parameters
    ----------
    kind : {"dense", "digits"}
        ``"dense"``: X uniform in [0, 1). ``"digits"``: the same draws with every value
        below 0.8 set to zero and the rest stretched to [0, 1), like MNIST's background
        and strokes. Both kinds share ``y`` for the same ``n``, ``n_classes`` and ``seed``.
    n, n_classes, dtype, seed
        Rows, classes, type of ``X`` and the seed of ``numpy.random.default_rng``.
    """
    if kind not in INPUTS:
        raise ValueError(f"input kind must be one of {INPUTS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784))
    if kind == "digits":
        X = np.where(X < 0.8, 0.0, (X - 0.8) / 0.2)
    y = rng.integers(0, n_classes, n)
    return np.ascontiguousarray(X, dtype=dtype), y


def add_inputs_option(parser) -> None:
    """Give an argparse ``parser`` the ``--inputs`` option (comma-separated kinds)."""
    parser.add_argument(
        "--inputs",
        default=",".join(INPUTS),
        help=f"comma-separated input kinds, from {', '.join(INPUTS)} (default: all)",
    )


def chosen_inputs(parser, args) -> list[str]:
    """The kinds ``--inputs`` names, in its order; a parser error naming a bad one."""
    kinds = [k for k in args.inputs.split(",") if k]
    bad = [k for k in kinds if k not in INPUTS] or ([] if kinds else [""])
    if bad:
        parser.error(f"--inputs: unknown input kind {bad[0]!r}; choose from {', '.join(INPUTS)}")
    return kinds


def mnist_like(n: int, n_classes: int = 10, dtype=np.float32, seed: int = 0):
    """Seeded sparse ``(X, y)``: :func:`inputs` of kind ``"digits"``."""
    return inputs("digits", n, n_classes, dtype, seed)


def require(backend: str, quantity: str | tuple[str, ...] = ()) -> None:
    """Raise NotImplementedError (asv: skip) when ``backend`` is not usable here, or
    registers no kernel for ``quantity`` (one name or several)."""
    ok, why = _backend.backend_status(backend)
    if not ok:
        raise NotImplementedError(why)
    for q in (quantity,) if isinstance(quantity, str) else quantity:
        if backend not in _backend.backends_with(q):
            raise NotImplementedError(f"backend {backend!r} has no {q!r} kernel")


#: Name of the headline runner: sgdcore's default call.
HEADLINE = "sgdcore (default call)"
#: In the name of a runner timing sgdcore's faster form (a preallocated ``out=`` and/or
#: ``check_finite=False``), shown beside the headline, never as it.
FAST_FORM = "faster form: "


@dataclass
class Workload:
    """One piece of work and the runners that do it.

    ``runners`` maps a name (``"sgdcore-cpp"``, ``"torch.func"``, ...) to a zero-argument
    factory that prepares inputs and returns the zero-argument callable to time, or raises
    ImportError when the peer is not installed. ``flops`` and ``bytes`` give the floor;
    ``dtype`` picks which measured GEMM rate applies. ``target`` is printed with the
    verdict: "2x" (2x faster than the fastest peer, or within 1.25x of the floor when
    that peer is within 2x of it) or a free-form note.
    """

    name: str
    flops: float
    bytes: float
    dtype: str
    runners: dict[str, Callable[[], Callable[[], object]]]
    target: str = "2x"
    #: The runner every ratio is taken against: sgdcore called as a user calls it (the
    #: default backend, a fresh output, ``check_finite=True``).
    headline: str = HEADLINE


def sgdcore_runners(
    call, quantity: str, kind: str, fast: str | None = "out=, check_finite=False"
) -> dict:
    """sgdcore's runners of one workload, as :class:`Workload` factories.

    Parameters
    ----------
    call : callable
        ``call(backend, fast)`` prepares and returns the zero-argument callable to time:
        with ``fast=False`` the default call on ``backend`` (a fresh output,
        ``check_finite=True``), with ``fast=True`` the faster form (a preallocated
        ``out=`` and ``check_finite=False``, whichever the API has).
    quantity, kind : str
        The kernel's quantity and model kind, to pick the backends that have it.
    fast : str or None
        The faster form's arguments, for its runner's name; None where the API has none.

    Returns
    -------
    dict
        :data:`HEADLINE` (backend ``"auto"``), ``"sgdcore-<b>"`` for every other usable
        backend with the kernel, and ``"sgdcore-<auto's backend> (faster form: <fast>)"``.
    """
    auto = _backend.resolve("auto", quantity=quantity, kind=kind)
    runners = {HEADLINE: lambda: call("auto", False)}
    for b in _backend.backends_with(quantity, kind):
        if b in USABLE and b != auto:
            runners[f"sgdcore-{b}"] = lambda b=b: call(b, False)
    if fast:
        runners[f"sgdcore-{auto} ({FAST_FORM}{fast})"] = lambda: call(auto, True)
    return runners
