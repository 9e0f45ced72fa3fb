"""The one place that resolves a backend and finds a kernel.

Backends: ``numpy`` (vectorised NumPy, always there), ``numba`` (JIT), ``cpp`` (the
pybind11 extension ``sgdcore._cpu``) and ``cuda`` (``sgdcore._cuda``, built only where a
CUDA compiler exists). Kernels live in ``sgdcore/kernels/_<backend>/<operation>.py`` and
register themselves with :func:`register` under ``(model kind, quantity, backend)``;
the public API, the tests and the asv suite all iterate the same registry.

``backend="auto"`` picks, among the backends that are usable and provide the quantity for
the model: ``cuda`` when the data lives on the GPU, else ``cpp``, else ``numba``, else
``numpy``. The environment variable ``SGDCORE_BACKEND`` replaces ``auto`` by a named
backend. A backend that is asked for and missing raises :class:`BackendUnavailable`
with the way to get it; nothing falls back silently.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "available_backends",
    "backend_status",
    "get_kernel",
    "register",
    "registry",
    "resolve",
]

#: Every backend name, in the order ``auto`` prefers them.
BACKENDS = ("cuda", "cpp", "numba", "numpy")
MODEL_KINDS = ("logistic_binary", "logistic_softmax", "mlp")

_HOW_TO_GET = {
    "numba": "install it with `pip install numba`",
    "cpp": "rebuild sgdcore with `pip install -e .` (needs a C++17 compiler and pybind11)",
    "cuda": (
        "it needs an NVIDIA GPU, CuPy (`pip install -e .[cuda]` installs cupy-cuda13x) "
        "and sgdcore built where nvcc is found (`SGDCORE_CUDA=1 pip install -e .` says so "
        "if it is not)"
    ),
    "numpy": "install numpy",
}

_KERNELS: dict[tuple[str, str, str], Callable] = {}
_LOADED: dict[str, str | None] = {}  # backend -> None if usable, else the reason


class BackendUnavailable(RuntimeError):
    """A backend that was asked for is not usable here."""


def register(quantity: str, backend: str, kinds: tuple[str, ...] = MODEL_KINDS):
    """Decorator: register ``fn`` as ``backend``'s kernel for ``quantity`` on ``kinds``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")

    def deco(fn):
        for kind in kinds:
            _KERNELS[(kind, quantity, backend)] = fn
        return fn

    return deco


def _probe(backend: str) -> None:
    """Import what ``backend`` needs; raises ImportError when it is missing."""
    if backend == "numba":
        importlib.import_module("numba")
    elif backend == "cpp":
        importlib.import_module("sgdcore._cpu")
    elif backend == "cuda":
        # CuPy and a device first: where either is missing, sgdcore._cuda is never loaded.
        cupy = importlib.import_module("cupy")
        try:
            n_devices = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError as exc:
            raise ImportError(f"CuPy finds no usable GPU ({exc})") from None
        if n_devices == 0:
            raise ImportError("CuPy finds no GPU")
        importlib.import_module("sgdcore._cuda")


def _load(backend: str) -> str | None:
    """Import ``backend``'s kernel modules once; return None or why it is unusable."""
    if backend in _LOADED:
        return _LOADED[backend]
    try:
        _probe(backend)
    except ImportError as exc:
        _LOADED[backend] = f"{exc}; {_HOW_TO_GET[backend]}"
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
    return dict(_KERNELS)


def _on_gpu(arrays) -> bool:
    return any(type(a).__module__.split(".")[0] == "cupy" for a in arrays)


def resolve(
    backend: str = "auto", *, quantity: str | None = None, kind: str | None = None, arrays=()
) -> str:
    """Name of the backend to run: ``backend`` itself, checked, or ``auto``'s choice."""
    where = ""
    if backend == "auto":
        backend = os.environ.get("SGDCORE_BACKEND", "auto") or "auto"
        where = " (set by the environment variable SGDCORE_BACKEND)"
    if backend == "auto":
        candidates = ["cuda"] if _on_gpu(arrays) else [b for b in BACKENDS if b != "cuda"]
        for b in candidates:
            if _load(b) is None and (quantity is None or (kind, quantity, b) in _KERNELS):
                return b
        raise BackendUnavailable(f"no usable backend provides {quantity!r} for {kind!r} models")
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
    """``(backend name, kernel)`` for ``quantity`` on ``model``."""
    name = resolve(backend, quantity=quantity, kind=model.kind, arrays=arrays)
    try:
        return name, _KERNELS[(model.kind, quantity, name)]
    except KeyError:
        have = sorted(b for (k, q, b) in _KERNELS if k == model.kind and q == quantity)
        raise BackendUnavailable(
            f"backend {name!r} has no {quantity!r} kernel for {type(model).__name__} "
            f"({model.kind}); backends that have one: {', '.join(have) or 'none'}"
        ) from None
