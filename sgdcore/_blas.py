"""The process's BLAS thread pools, and a context that keeps BLAS on one thread.

sgdcore's compiled kernels share their work among their own OpenMP threads where BLAS
calls are small, and OpenBLAS's workers keep spinning for a while after each threaded
call: on a machine with few cores the two pools then take turns on the same cores and
both run at half speed. Code that interleaves such kernels with BLAS calls of its own
(the training engine, sparse-input curvature, Lanczos bookkeeping, small dense fits)
keeps BLAS on one thread around them.
"""

from __future__ import annotations

import contextlib
import functools
import os


@functools.cache
def blas_pools():
    """The BLAS thread pools of this process, found once (``threadpool_limits`` scans the
    loaded libraries on every call, about 2 ms).
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread(when: bool = True):
    """Context limiting BLAS to one thread (``when``), else doing nothing."""
    return blas_pools().limit(limits=1, user_api="blas") if when else contextlib.nullcontext()


def cores() -> int:
    """Cores this process may run on (its CPU affinity): what every engine sizes its
    threads by.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
