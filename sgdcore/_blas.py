"""The one thread policy: BLAS limits around kernels, and vector helpers that call no BLAS.

sgdcore's compiled kernels share their work among their own thread teams where BLAS
calls are small, and OpenBLAS's workers keep spinning for a while after each threaded
call: on a machine with few cores the two pools then take turns on the same cores and
both run at half speed. Two rules keep them apart:

* Every kernel declares how it uses threads when it registers
  (:mod:`sgdcore.kernels.contracts`); :func:`within_policy` wraps it once, so each call
  runs inside the BLAS limits it declared (one entry per whole kernel call, about 30 us,
  never per tiny call in a loop). No other code sets BLAS limits around kernels.
* Hot Python paths (training, gradients, curvature loops) never call NumPy's own BLAS:
  NumPy ships a second OpenBLAS whose workers would spin beside the kernels' threads.
  Their dot products and norms go through :func:`dot`, :func:`sqnorm` and :func:`norm`
  (``np.einsum`` without ``optimize``, which runs NumPy's own loops, no BLAS), larger
  vector work through SciPy's BLAS (the library the kernels call) inside
  :func:`serial_vector_work`. ``tests/test_blas.py`` fails when a hot path wakes
  NumPy's BLAS threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os

import numpy as np

__all__ = [
    "blas_pools",
    "caller_threads",
    "dot",
    "norm",
    "one_blas_thread",
    "serial_vector_work",
    "sqnorm",
    "within_policy",
]


@functools.cache
def blas_pools():
    """The BLAS thread pools of this process, found once (``threadpool_limits`` scans the
    loaded libraries on every call, about 2 ms).
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread(when: bool = True):
    """Context limiting BLAS to one thread (``when``), else doing nothing.

    For whole algorithms that are not kernels (small dense fits, chains of tiny
    gradient steps); a kernel's own limits come from its registration.
    """
    return blas_pools().limit(limits=1, user_api="blas") if when else contextlib.nullcontext()


#: The BLAS limits as the caller had them, while :func:`serial_vector_work` holds BLAS on
#: one thread.
_CALLER_POOLS: contextvars.ContextVar = contextvars.ContextVar("caller_pools", default=None)


@contextlib.contextmanager
def serial_vector_work():
    """BLAS on one thread for the vector work of an iterative method (Lanczos); its
    operator products go back to the caller's threads with :func:`caller_threads`, and
    their kernels then apply their own policies. Threaded BLAS calls between products
    would leave workers spinning that the next product's own threads then compete with
    (the top-10 eigenvalues of a sparse-input MLP took twice as long).
    """
    token = _CALLER_POOLS.set(blas_pools().info())
    try:
        with one_blas_thread():
            yield
    finally:
        _CALLER_POOLS.reset(token)


def caller_threads():
    """Inside :func:`serial_vector_work`, the BLAS limits its caller had; else nothing."""
    caller = _CALLER_POOLS.get()
    return contextlib.nullcontext() if caller is None else blas_pools().limit(limits=caller)


def within_policy(fn, threads):
    """``fn`` wrapped so each call runs inside the BLAS limits of its thread policy
    (``"own"``, ``"blas"`` or an :class:`~sgdcore.kernels.contracts.OwnWhen`); a
    ``"blas"`` kernel is ``fn`` itself (it runs with the caller's threads).
    """
    if threads == "blas":
        return fn
    if threads == "own":

        @functools.wraps(fn)
        def call(*args, **kwargs):
            with one_blas_thread():
                return fn(*args, **kwargs)

        return call
    rule, keyword = threads.rule, threads.keyword

    @functools.wraps(fn)
    def call(*args, **kwargs):
        own = bool(rule(*args, **kwargs))
        if keyword is not None:
            kwargs[keyword] = own
        with one_blas_thread(own):
            return fn(*args, **kwargs)

    return call


def dot(a, b) -> float:
    """``a . b`` of two vectors, accumulated in float64, without BLAS."""
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


def sqnorm(a) -> float:
    """``|a|^2`` of a vector, accumulated in float64, without BLAS."""
    return float(np.einsum("i,i->", a, a, dtype=np.float64))


def norm(a) -> float:
    """``|a|`` of a vector, accumulated in float64, without BLAS."""
    return float(np.sqrt(sqnorm(a)))
def cores() -> int:
    """Cores this process may run on (its CPU affinity): what every engine sizes its
    threads by.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
