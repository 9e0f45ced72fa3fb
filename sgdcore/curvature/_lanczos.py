"""Lanczos: extreme eigenvalues (thick restart, full reorthogonalisation) and the
tridiagonal matrices that stochastic Lanczos quadrature integrates with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sl
from scipy.linalg import blas as sblas
from scipy.sparse.linalg import aslinearoperator

from .._blas import caller_threads, serial_vector_work
from .._validate import is_int

__all__ = [
    "ConvergenceError",
    "DeviceOperator",
    "EigenResult",
    "as_operator",
    "lanczos_tridiagonal",
    "top_eigenvalues",
]

_WHICH = ("LA", "SA", "LM")


class ConvergenceError(RuntimeError):
    """An iterative method stopped before meeting its tolerance.

    ``result`` holds what it had reached (for :func:`top_eigenvalues`, an
    :class:`EigenResult` whose ``residuals`` say how far each value is from converged).
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, eq=False)
class EigenResult:
    """Eigenvalues from :func:`top_eigenvalues`.

    Attributes
    ----------
    eigenvalues : ndarray, shape (k,)
        Ordered as asked: ``"LA"`` and ``"LM"`` largest first, ``"SA"`` smallest first.
    residuals : ndarray, shape (k,)
        Ritz residual norms ``|A y_i - theta_i y_i|`` (unit ``y_i``); the error of
        ``theta_i`` is at most this and, away from other eigenvalues, about its square
        over the gap.
    n_iter : int
        Operator-vector products used.
    n_restarts : int
        Thick restarts done.
    converged : bool
        Every residual is at most ``tol`` times the largest ``|theta|``.
    eigenvectors : ndarray, shape (P, k), or None
        Unit Ritz vectors, when asked for.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    n_iter: int
    n_restarts: int
    converged: bool
    eigenvectors: np.ndarray | None = None


class DeviceOperator:
    """A square operator whose products take and give float64 CuPy arrays.

    The Lanczos routines (:func:`top_eigenvalues`, :func:`lanczos_tridiagonal` and the
    estimates of :mod:`sgdcore.curvature`) keep their vectors on the GPU for such an
    operator and bring back only scalars (the tridiagonal matrix, the eigenvalues).
    Curvature operators built on CuPy data expose the same ``device_matmat``.

    Parameters
    ----------
    n : int
        The operator is ``n x n``.
    matmat : callable
        ``matmat(V)``: ``A V`` for a float64 CuPy array ``V`` of shape ``(n, k)``.
    """

    def __init__(self, n: int, matmat):
        self.shape = (int(n), int(n))
        self.device_matmat = matmat


def as_operator(op):
    """``op`` (LinearOperator, ndarray or sparse matrix) as a square LinearOperator; an
    operator with ``device_matmat`` (GPU vectors) is returned as it is.
    """
    A = op if hasattr(op, "device_matmat") else aslinearoperator(op)
    if len(A.shape) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"the operator must be square, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError("the operator is empty (shape (0, 0))")
    return A


def _apply(A, v):
    """``A v`` in float64, whatever the operator's dtype, with the caller's BLAS threads
    (a registered kernel inside then applies its own thread policy).
    """
    with caller_threads():
        return np.ascontiguousarray(A.matvec(v), dtype=np.float64).reshape(-1)


# Vector work between operator products goes through SciPy's BLAS, the library the
# compiled kernels call: NumPy ships a second OpenBLAS whose idle threads keep spinning
# for a while after each call and would slow the next product down.


def coefficients(Q, w):
    """``Q @ w`` for a C-contiguous basis ``Q [m, n]`` (float64)."""
    return sblas.dgemv(1.0, Q.T, w, trans=1)


def subtract_span(Q, h, w):
    """``w - Q^T h``, written into ``w`` (C-contiguous float64)."""
    out = sblas.dgemv(-1.0, Q.T, h, beta=1.0, y=w, overwrite_y=1)
    if out is not w:  # SciPy had to copy: write back
        w[...] = out
    return w


def norm(w):
    return float(sblas.dnrm2(w))


class _HostVectors:
    """The vector work of the Lanczos routines on NumPy float64 vectors (SciPy's BLAS)."""

    xp = np

    def __init__(self, A):
        self.A = A

    def apply(self, v):
        return _apply(self.A, v)

    @staticmethod
    def upload(v):
        return v

    @staticmethod
    def download(v):
        return v

    coefficients = staticmethod(coefficients)
    subtract_span = staticmethod(subtract_span)
    norm = staticmethod(norm)

    @staticmethod
    def dot(a, b) -> float:
        return float(sblas.ddot(a, b))

    @staticmethod
    def axpy(x, y, a):
        """``y + a x`` (``y`` may be overwritten)."""
        return sblas.daxpy(x, y, a=a)

    @staticmethod
    def combine(V, Y):
        return _combine(V, Y)

    def matmat(self, V):
        """``A V`` in float64 for ``V [n, k]``."""
        return np.asarray(self.A.matmat(V), dtype=np.float64).reshape(V.shape)

    @staticmethod
    def column_dots(Z, W):
        """``sum_i Z[i, j] W[i, j]`` for each column ``j`` (NumPy)."""
        return np.einsum("ij,ij->j", Z, W)

    @staticmethod
    def total_dot(Z, W) -> float:
        """``sum_ij Z[i, j] W[i, j]``."""
        return float(np.einsum("ij,ij->", Z, W))

    @staticmethod
    def orthonormal_basis(M):
        """An orthonormal basis of the columns of ``M`` (thin QR)."""
        return sl.qr(M, mode="economic")[0]

    @staticmethod
    def deflate(Q, G):
        """``G - Q (Q^T G)`` for orthonormal columns ``Q`` (``G`` may be overwritten)."""
        G = np.asfortranarray(G)
        return sblas.dgemm(-1.0, Q, sblas.dgemm(1.0, Q, G, trans_a=1), beta=1.0, c=G, overwrite_c=1)

    @staticmethod
    def result(v):
        return v


class _DeviceVectors:
    """The same work on CuPy float64 vectors of an operator with ``device_matmat``: the
    basis stays on the GPU; only projection coefficients and norms (scalars) come back.
    """

    def __init__(self, A):
        import cupy

        self.A, self.xp = A, cupy

    def apply(self, v):
        w = self.A.device_matmat(v.reshape(-1, 1))
        return self.xp.ascontiguousarray(w, dtype=self.xp.float64).reshape(-1)

    def upload(self, v):
        return self.xp.asarray(v, dtype=self.xp.float64)

    def download(self, v):
        return self.xp.asnumpy(v)

    def coefficients(self, Q, w):
        return self.xp.asnumpy(Q @ w)

    def subtract_span(self, Q, h, w):
        w -= Q.T @ self.xp.asarray(h)
        return w

    def norm(self, w) -> float:
        return float(self.xp.sqrt(w @ w))

    def dot(self, a, b) -> float:
        return float(a @ b)

    @staticmethod
    def axpy(x, y, a):
        y += a * x
        return y

    def combine(self, V, Y):
        return V.T @ self.xp.asarray(Y)

    def matmat(self, V):
        W = self.A.device_matmat(self.upload(V))
        return self.xp.ascontiguousarray(W, dtype=self.xp.float64).reshape(V.shape)

    def column_dots(self, Z, W):
        return self.download((self.upload(Z) * W).sum(axis=0))

    def total_dot(self, Z, W) -> float:
        return float((self.upload(Z) * W).sum())

    def orthonormal_basis(self, M):
        return self.xp.linalg.qr(M, mode="reduced")[0]

    def deflate(self, Q, G):
        G = self.upload(G)
        G -= Q @ (Q.T @ G)
        return G

    def result(self, v):
        """A vector for the caller: on the GPU unless the operator answers on the host."""
        return v if getattr(self.A, "returns_device", True) else self.download(v)


def _vectors(A):
    """The vector space the Lanczos routines work in for operator ``A``."""
    return _DeviceVectors(A) if hasattr(A, "device_matmat") else _HostVectors(A)


def _project_out(vs, Q, w):
    """``w`` minus its components along the rows of ``Q``, in place; the coefficients."""
    h = vs.coefficients(Q, w)
    vs.subtract_span(Q, h, w)
    return h


def _order(theta, which):
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "SA":
        return np.argsort(theta, kind="stable")
    return np.argsort(-np.abs(theta), kind="stable")


def top_eigenvalues(
    op,
    k=1,
    *,
    which="LA",
    tol=1e-8,
    ncv=None,
    max_products=None,
    seed=0,
    v0=None,
    return_eigenvectors=False,
):
    """Extreme eigenvalues of a symmetric operator by Lanczos with full
    reorthogonalisation and thick restarts.

    Each step applies the operator once, takes the three-term recurrence and then
    orthogonalises the new vector against the whole basis (classical Gram-Schmidt, a
    second pass when cancellation shows), so the projected matrix ``T = V^T A V`` is
    exact to rounding and no spurious copies appear. When the
    basis holds ``ncv`` vectors the method restarts from the best ``k + (ncv - k) // 2``
    Ritz vectors (Wu & Simon's thick restart, equivalent to implicitly restarted
    Lanczos). It stops when the Ritz residual of each wanted value is at most ``tol``
    times the largest ``|theta|`` among all Ritz values (an estimate of ``|A|``). This
    computes what ``scipy.sparse.linalg.eigsh`` computes; operators with ``P <= ncv``
    are diagonalised densely.

    Parameters
    ----------
    op : LinearOperator, ndarray or sparse matrix, shape (P, P)
        Symmetric, e.g. :class:`HessianOperator`.
    k : int
        How many eigenvalues.
    which : {"LA", "SA", "LM"}
        Largest algebraic (default), smallest algebraic, or largest magnitude.
    tol : float
        Relative residual tolerance (``> 0``).
    ncv : int, optional
        Basis size, ``k < ncv <= P``; default ``min(P, max(4 k, 20))`` (a larger basis
        restarts less often; memory ``(ncv + 1) P`` float64).
    max_products : int, optional
        Give up after this many products (default ``100 * ncv``).
    seed : int
        Seed of the random starting vector.
    v0 : ndarray, shape (P,), optional
        Starting vector instead of a random one.
    return_eigenvectors : bool
        Also return the Ritz vectors.

    Returns
    -------
    EigenResult

    Raises
    ------
    ConvergenceError
        If the tolerance is not met within ``max_products``; its ``result`` holds the
        values and residuals reached.
    """
    A = as_operator(op)
    n = A.shape[0]
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    if not is_int(k) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer with 1 <= k <= P = {n}, got {k!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    ncv = min(n, max(4 * k, 20)) if ncv is None else int(ncv)
    if not (k < ncv <= n or (k == ncv == n)):
        raise ValueError(f"ncv must satisfy k < ncv <= P (k={k}, P={n}), got {ncv}")
    max_products = 100 * ncv if max_products is None else int(max_products)
    if n <= ncv:
        return _dense(A, k, which, return_eigenvectors)
    with serial_vector_work():
        return _thick_restart(A, k, which, tol, ncv, max_products, seed, v0, return_eigenvectors)


def _thick_restart(A, k, which, tol, ncv, max_products, seed, v0, return_eigenvectors):
    n = A.shape[0]
    vs = _vectors(A)
    V = vs.xp.empty((ncv + 1, n))
    T = np.zeros((ncv, ncv))
    rng = np.random.default_rng(seed)
    if v0 is None:
        start = rng.standard_normal(n)
    else:
        start = np.asarray(vs.download(v0), dtype=np.float64).copy()
    if start.shape != (n,) or not np.all(np.isfinite(start)) or not np.any(start):
        raise ValueError(f"v0 must be a finite, non-zero vector of shape ({n},)")
    V[0] = vs.upload(start / norm(start))
    n_prod = restarts = 0
    first = 0
    keep = min(ncv - 1, k + (ncv - k) // 2)
    while True:
        beta = 0.0
        for j in range(first, ncv):
            w = vs.apply(V[j])
            n_prod += 1
            Q = V[: j + 1]
            if j == first:
                # After a (re)start the new vector couples to every kept Ritz vector.
                h = _project_out(vs, Q, w)
            else:
                # Three-term recurrence, then one full Gram-Schmidt pass against the
                # basis for what rounding left.
                h = np.zeros(j + 1)
                h[j] = vs.dot(V[j], w)
                h[j - 1] = T[j - 1, j]
                w = vs.axpy(V[j], w, -h[j])
                w = vs.axpy(V[j - 1], w, -h[j - 1])
            before = vs.norm(w)
            h += _project_out(vs, Q, w)
            beta = vs.norm(w)
            if beta < 0.5 * before:  # cancellation: orthogonalise once more
                h += _project_out(vs, Q, w)
                beta = vs.norm(w)
            T[: j + 1, j] = h
            T[j, : j + 1] = h
            scale = max(float(np.max(np.abs(h))), 1e-300)
            if beta <= 1e-12 * scale:
                # Invariant subspace: continue from a fresh direction orthogonal to it.
                beta = 0.0
                w = vs.upload(rng.standard_normal(n))
                for _ in range(2):
                    _project_out(vs, Q, w)
            V[j + 1] = w / vs.norm(w)
            if j + 1 < ncv:
                T[j + 1, j] = T[j, j + 1] = beta
            if j + 1 >= k:
                theta, Y = sl.eigh(T[: j + 1, : j + 1])
                sel = _order(theta, which)[:k]
                res = beta * np.abs(Y[j, sel])
                top = float(np.max(np.abs(theta))) or 1.0
                done = bool(np.all(res <= tol * top))
                if done or n_prod >= max_products:
                    result = EigenResult(
                        eigenvalues=theta[sel].copy(),
                        residuals=res,
                        n_iter=n_prod,
                        n_restarts=restarts,
                        converged=done,
                        eigenvectors=vs.result(vs.combine(V[: j + 1], Y[:, sel]))
                        if return_eigenvectors
                        else None,
                    )
                    if not done:
                        raise ConvergenceError(
                            f"top_eigenvalues: {int(np.sum(res > tol * top))} of {k} Ritz "
                            f"values still have residual > tol * max|theta| = {tol * top:.3g} "
                            f"after {n_prod} products (largest residual {res.max():.3g}); "
                            "raise max_products or ncv, or loosen tol",
                            result,
                        )
                    return result
        # Thick restart: keep the best `keep` Ritz pairs and the residual direction.
        theta, Y = sl.eigh(T)
        sel = _order(theta, which)[:keep]
        V[:keep] = vs.combine(V[:ncv], Y[:, sel]).T
        V[keep] = V[ncv]
        T[:] = 0.0
        T[np.arange(keep), np.arange(keep)] = theta[sel]
        b = beta * Y[ncv - 1, sel]
        T[keep, :keep] = b
        T[:keep, keep] = b
        first = keep
        restarts += 1


def _combine(V, Y):
    """``V^T Y`` (``[n, r]``) for a C-contiguous basis ``V [m, n]``, by SciPy's GEMM."""
    return sblas.dgemm(1.0, V.T, np.asfortranarray(Y))


def _dense(A, k, which, return_eigenvectors):
    n = A.shape[0]
    if hasattr(A, "device_matmat"):  # small: the dense matrix comes to the host
        vs = _DeviceVectors(A)
        M = vs.download(A.device_matmat(vs.xp.eye(n))).astype(np.float64)
    else:
        M = np.asarray(A.matmat(np.eye(n)), dtype=np.float64)
    M = 0.5 * (M + M.T)
    theta, Y = np.linalg.eigh(M)
    sel = _order(theta, which)[:k]
    return EigenResult(
        eigenvalues=theta[sel],
        residuals=np.zeros(k),
        n_iter=n,
        n_restarts=0,
        converged=True,
        eigenvectors=Y[:, sel] if return_eigenvectors else None,
    )


def lanczos_tridiagonal(A, q, steps, *, reorth=True):
    """``(alpha, beta)`` of the Lanczos tridiagonal matrix of ``A`` from unit ``q``.

    ``steps`` products at most; fewer when the Krylov space becomes invariant (then the
    Gauss quadrature is exact). ``reorth`` orthogonalises against the whole basis (twice),
    which costs ``steps x P`` memory.
    """
    with serial_vector_work():
        return _tridiagonal(A, q, steps, reorth)


def _tridiagonal(A, q, steps, reorth):
    n = A.shape[0]
    vs = _vectors(A)
    steps = min(int(steps), n)
    alpha = np.empty(steps)
    beta = np.empty(max(steps - 1, 0))
    Q = vs.xp.empty((steps, n)) if reorth else None
    q = vs.upload(q)
    q_prev = vs.xp.zeros(n)
    b_prev = 0.0
    for j in range(steps):
        if reorth:
            Q[j] = q
        w = vs.apply(q)
        a = vs.dot(q, w)
        alpha[j] = a
        w = vs.axpy(q, w, -a)
        if b_prev:
            w = vs.axpy(q_prev, w, -b_prev)
        if reorth:
            B = Q[: j + 1]
            for _ in range(2):
                _project_out(vs, B, w)
        if j == steps - 1:
            break
        b = vs.norm(w)
        if b <= 1e-12 * max(abs(a), b_prev, 1e-300):
            return alpha[: j + 1], beta[:j]
        beta[j] = b
        q_prev, q, b_prev = q, w / b, b
    return alpha, beta


def gauss_quadrature(alpha, beta):
    """Nodes and weights of the Gauss rule of a Lanczos tridiagonal matrix."""
    if alpha.size == 1:
        return alpha.copy(), np.ones(1)
    nodes, vecs = sl.eigh_tridiagonal(alpha, beta)
    return nodes, vecs[0] ** 2
