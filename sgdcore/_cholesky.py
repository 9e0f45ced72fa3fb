"""Cholesky factorisation, solves and log-determinants of a dense symmetric matrix, on
the side where the matrix lives: SciPy (LAPACK) for a NumPy matrix, CuPy (cuSOLVER's
``potrf``, cuBLAS's triangular solves) for a CuPy matrix.

The factor is ``(L, lower)`` as :func:`scipy.linalg.cho_factor` gives it; right-hand
sides and solutions are NumPy vectors on either side (the dense fits keep their
``P``-vectors on the host and only the ``P x P`` work on the device).
"""

from __future__ import annotations

import importlib

import numpy as np
import scipy.linalg as sl

from ._arrays import namespace, on_device, to_device, to_host

__all__ = ["factor", "logdet", "lstsq", "solve"]


def factor(H):
    """The lower Cholesky factor of ``H``.

    Raises
    ------
    numpy.linalg.LinAlgError
        When ``H`` is not positive definite (on the GPU: the factor holds NaN, which is
        how cuSOLVER reports it when CuPy does not raise).
    """
    if not on_device(H):
        return sl.cho_factor(H, lower=True, check_finite=False)
    cp = namespace(H)
    L = cp.linalg.cholesky(H)
    if not bool(cp.isfinite(cp.diagonal(L)).all()):
        raise np.linalg.LinAlgError("the matrix is not positive definite")
    return L, True


def solve(fac, b) -> np.ndarray:
    """``H^{-1} b`` from ``fac = factor(H)``, as a NumPy array."""
    L = fac[0]
    if not on_device(L):
        return sl.cho_solve(fac, b, check_finite=False)
    tri = importlib.import_module("cupyx.scipy.linalg").solve_triangular
    z = tri(L, to_device(np.ascontiguousarray(b, dtype=np.float64)), lower=True)
    return to_host(tri(L, z, lower=True, trans="T"))


def logdet(fac) -> float:
    """``ln det H = 2 sum ln diag(L)`` from ``fac = factor(H)``."""
    xp = namespace(fac[0])
    return 2.0 * float(xp.sum(xp.log(xp.diagonal(fac[0]))))


def lstsq(H, b) -> np.ndarray:
    """The minimum-norm least-squares solution of ``H x = b`` (``H`` singular), on the
    host: the rare fall-back of a fit with ``l2 = 0``.
    """
    return sl.lstsq(to_host(H), b, check_finite=False)[0]
