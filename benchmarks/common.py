"""Workloads shared by the asv suite and ``benchmarks/peers.py``: MNIST-shaped synthetic
data (seeded, the same in every environment) and a helper that skips combinations a
machine cannot run (asv's rule: NotImplementedError in setup)."""

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


def mnist_like(n: int, n_classes: int = 10, dtype=np.float32, seed: int = 0):
    """Seeded ``(X, y)`` of MNIST shape: sparse pixels in [0, 1] and uniform labels."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784))
    X = np.where(X < 0.8, 0.0, (X - 0.8) / 0.2)  # 80% zeros, like MNIST's background
    y = rng.integers(0, n_classes, n)
    return np.ascontiguousarray(X, dtype=dtype), y


def require(backend: str, quantity: str | tuple[str, ...] = ()) -> None:
    """Raise NotImplementedError (asv: skip) when ``backend`` is not usable here, or
    registers no kernel for ``quantity`` (one name or several)."""
    ok, why = _backend.backend_status(backend)
    if not ok:
        raise NotImplementedError(why)
    for q in (quantity,) if isinstance(quantity, str) else quantity:
        if backend not in _backend.backends_with(q):
            raise NotImplementedError(f"backend {backend!r} has no {q!r} kernel")


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
