"""The one place that resolves a backend and finds a kernel.

Backends: ``numpy`` (vectorised NumPy, always there), ``numba`` (JIT), ``cpp`` (the
pybind11 extension ``sgdcore._cpu``) and ``cuda`` (CuPy arrays on an NVIDIA GPU and the
extension ``sgdcore._cuda``). Kernels live in
``sgdcore/kernels/_<backend>/<operation>.py`` and register themselves with
:func:`register` under ``(model kind, quantity, backend)``, checked against the
quantity's contract (:mod:`sgdcore.kernels.contracts`); the public API, the tests and the
asv suite (:func:`backends_with`) all iterate the same registry. Adding a backend is a
folder of kernels and one line in ``_PROBES``.

``backend="auto"`` picks, among the backends that are usable and provide the quantity for
the model, the first in :data:`BACKENDS` (``cpp``, else ``numba``, else ``numpy``; a GPU
backend when the data lives on the GPU). The environment variable ``SGDCORE_BACKEND``
replaces ``auto`` by a named backend. A backend that is asked for and missing raises
:class:`BackendUnavailable` with the way to get it; nothing falls back silently.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from . import _blas
from ._arrays import on_device
from .kernels import contracts

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "available_backends",
    "backend_status",
    "backends_with",
    "flags",
    "get_kernel",
    "is_gpu",
    "register",
    "registry",
    "resolve",
]

MODEL_KINDS = contracts.MODEL_KINDS


@dataclass(frozen=True)
class _Probe:
    """What a backend needs importing before its kernels load, and how to get it."""

    modules: tuple[str, ...]
    how_to_get: str
    gpu: bool = False  # its kernels take arrays that live on a GPU


#: One line per backend, in the order ``auto`` prefers them. A backend is this line and a
#: folder ``sgdcore/kernels/_<name>/`` of kernel modules that register themselves.
_PROBES = {
    # runtime checks that CuPy sees a device before it imports sgdcore._cuda.
    "cuda": _Probe(
        ("cupy", "sgdcore.kernels._cuda.runtime"),
        "it needs an NVIDIA GPU, CuPy (`pip install -e .[cuda]` installs cupy-cuda13x) and "
        "sgdcore built where nvcc is found (`SGDCORE_CUDA=1 pip install -e .` says so if it "
        "is not)",
        gpu=True,
    ),
    "cpp": _Probe(
        ("sgdcore._cpu",),
        "rebuild sgdcore with `pip install -e .` (needs a C++17 compiler and pybind11)",
    ),
    "numba": _Probe(("numba",), "install it with `pip install numba`"),
    "numpy": _Probe(("numpy",), "install numpy"),
}

#: Every backend name, in the order ``auto`` prefers them.
BACKENDS = tuple(_PROBES)


@dataclass(frozen=True)
class _Entry:
    """One registered kernel: the function, its thread policy and flags, and the function
    as :func:`get_kernel` hands it out (inside its BLAS limits).
    """

    fn: Callable
    threads: str | contracts.OwnWhen
    flags: frozenset
    call: Callable


_KERNELS: dict[tuple[str, str, str], _Entry] = {}
_LOADED: dict[str, str | None] = {}  # backend -> None if usable, else the reason


class BackendUnavailable(RuntimeError):
    """A backend that was asked for is not usable here."""


def _check_signature(fn, contract, threads) -> str | None:
    """Why ``fn``'s parameters do not match ``contract`` (None when they do)."""
    P = inspect.Parameter
    params = inspect.signature(fn).parameters.values()
    positional = [p.name for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    variadic = [p.name for p in params if p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD)]
    keyword = {p.name for p in params if p.kind is P.KEYWORD_ONLY}
    passed = {getattr(threads, "keyword", None)} - {None}
    if tuple(positional) != contract.params or variadic:
        have = ", ".join(positional + [f"*{v}" for v in variadic])
        return f"takes ({have}), the contract says ({', '.join(contract.params)})"
    if keyword != passed | set(contract.keywords):
        return (
            f"takes keyword-only ({', '.join(sorted(keyword))}), its contract and thread "
            f"policy pass ({', '.join(sorted(passed | set(contract.keywords)))})"
        )
    return None


def _check_entry(fn, contract, backend, threads, kinds, flags) -> str | None:
    """Why a registration disagrees with the registry's rules (None when it does not)."""
    if contract is None:
        return f"unknown quantity; known: {', '.join(contracts.CONTRACTS)}"
    if backend not in BACKENDS:
        return f"unknown backend; known: {', '.join(BACKENDS)}"
    if not (isinstance(threads, contracts.OwnWhen) or threads in contracts.THREADS):
        known = ", ".join(map(repr, contracts.THREADS))
        return f"threads={threads!r} is none of {known} or an OwnWhen"
    if set(flags) - set(contracts.FLAGS):
        return f"unknown flags {sorted(set(flags) - set(contracts.FLAGS))}"
    if kinds is not None and set(kinds) - set(contract.kinds):
        return f"kinds {sorted(set(kinds) - set(contract.kinds))} lie outside {contract.kinds}"
    return _check_signature(fn, contract, threads)


def register(
    quantity: str,
    backend: str,
    *,
    threads: str | contracts.OwnWhen,
    kinds: tuple[str, ...] | None = None,
    flags: tuple[str, ...] = (),
):
    """Decorator: register ``fn`` as ``backend``'s kernel for ``quantity`` on ``kinds``.

    Parameters
    ----------
    quantity : str
        A key of :data:`sgdcore.kernels.contracts.CONTRACTS`; the kernel's parameters must
        be that contract's, by name and in order.
    backend : str
        One of :data:`BACKENDS`.
    threads : {"own", "blas"} or OwnWhen
        How the kernel uses the cores (:mod:`sgdcore.kernels.contracts`);
        :func:`get_kernel` hands it back inside the matching BLAS limits.
    kinds : tuple of str, optional
        Model kinds it serves (default: every kind the quantity is defined for).
    flags : tuple of str
        Capabilities from :data:`sgdcore.kernels.contracts.FLAGS`.

    Raises
    ------
    TypeError
        At import of the kernel's module, in one line naming the kernel, when anything
        disagrees with the contract.
    """
    contract = contracts.CONTRACTS.get(quantity)

    def deco(fn):
        problem = _check_entry(fn, contract, backend, threads, kinds, flags)
        if problem:
            raise TypeError(
                f"kernel {fn.__module__}.{fn.__qualname__} for {quantity!r} on {backend!r}: "
                f"{problem}"
            )
        entry = _Entry(fn, threads, frozenset(flags), _blas.within_policy(fn, threads))
        for kind in contract.kinds if kinds is None else kinds:
            _KERNELS[(kind, quantity, backend)] = entry
        return fn

    return deco


def _load(backend: str) -> str | None:
    """Import ``backend``'s kernel modules once; return None or why it is unusable."""
    if backend in _LOADED:
        return _LOADED[backend]
    probe = _PROBES[backend]
    try:
        for module in probe.modules:
            importlib.import_module(module)
    except ImportError as exc:
        _LOADED[backend] = f"{exc}; {probe.how_to_get}"
        return _LOADED[backend]
    package = f"sgdcore.kernels._{backend}"
    try:
        pkg = importlib.import_module(package)
    except ImportError:  # no kernels written for this backend yet
        _LOADED[backend] = None
        return None
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        importlib.import_module(f"{package}.{info.name}")
    _LOADED[backend] = None
    return None


def backend_status(backend: str) -> tuple[bool, str]:
    """``(usable, reason)`` for one backend; reason is empty when usable."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    reason = _load(backend)
    return reason is None, reason or ""


def available_backends() -> list[str]:
    """Usable backends, in ``auto``'s order of preference."""
    return [b for b in BACKENDS if backend_status(b)[0]]


def registry() -> dict[tuple[str, str, str], Callable]:
    """Every registered kernel of every usable backend: (kind, quantity, backend) -> fn."""
    for b in BACKENDS:
        _load(b)
    return {key: entry.fn for key, entry in _KERNELS.items()}


def backends_with(quantity: str, kind: str | None = None) -> list[str]:
    """Usable backends that provide ``quantity`` (for ``kind``, or for any model kind), in
    ``auto``'s order: what the tests and the asv suite parametrize over.
    """
    if quantity not in contracts.CONTRACTS:
        raise ValueError(f"unknown quantity {quantity!r}; known: {', '.join(contracts.CONTRACTS)}")
    registry()
    have = {b for (k, q, b) in _KERNELS if q == quantity and kind in (None, k)}
    return [b for b in BACKENDS if b in have]


def flags(kind: str, quantity: str, backend: str) -> frozenset:
    """The capability flags (:data:`sgdcore.kernels.contracts.FLAGS`) of a registered kernel."""
    _load(backend)
    return _KERNELS[(kind, quantity, backend)].flags


def is_gpu(backend: str) -> bool:
    """Whether ``backend`` (``"auto"`` read through ``SGDCORE_BACKEND``) names a backend
    whose kernels take arrays that live on a GPU.
    """
    if backend == "auto":
        backend = os.environ.get("SGDCORE_BACKEND", "auto") or "auto"
    probe = _PROBES.get(backend) if isinstance(backend, str) else None
    return probe is not None and probe.gpu


def resolve(
    backend: str = "auto", *, quantity: str | None = None, kind: str | None = None, arrays=()
) -> str:
    """Name of the backend to run: ``backend`` itself, checked, or ``auto``'s choice."""
    where = ""
    if backend == "auto":
        backend = os.environ.get("SGDCORE_BACKEND", "auto") or "auto"
        where = " (set by the environment variable SGDCORE_BACKEND)"
    if backend == "auto":
        gpu = any(on_device(a) for a in arrays)
        for b in BACKENDS:
            if _PROBES[b].gpu != gpu:
                continue
            if _load(b) is None and (quantity is None or (kind, quantity, b) in _KERNELS):
                return b
        place = " on the GPU" if gpu else ""
        raise BackendUnavailable(
            f"no usable backend{place} provides {quantity!r} for {kind!r} models"
        )
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}{where}; choose from 'auto', "
            f"{', '.join(map(repr, BACKENDS))}"
        )
    reason = _load(backend)
    if reason is not None:
        raise BackendUnavailable(f"backend {backend!r}{where} is not available: {reason}")
    return backend


def get_kernel(model, quantity: str, backend: str = "auto", arrays=()) -> tuple[str, Callable]:
    """``(backend name, kernel)`` for ``quantity`` on ``model``.

    The kernel comes inside its thread policy: each call runs within the BLAS limits its
    registration declared (:mod:`sgdcore.kernels.contracts`), so callers never set them.
    """
    name = resolve(backend, quantity=quantity, kind=model.kind, arrays=arrays)
    try:
        return name, _KERNELS[(model.kind, quantity, name)].call
    except KeyError:
        have = sorted(b for (k, q, b) in _KERNELS if k == model.kind and q == quantity)
        raise BackendUnavailable(
            f"backend {name!r} has no {quantity!r} kernel for {type(model).__name__} "
            f"({model.kind}); backends that have one: {', '.join(have) or 'none'}"
        ) from None
