"""Per-example gradients, their norms, and gradient-noise statistics.

Conventions (``DESIGN.md``): ``g_i = dCE_i/dtheta`` is the gradient of example ``i``'s
cross-entropy alone (no L2 term), in the flat layout of :mod:`sgdcore.models`. Over ``N``
examples the noise statistics are the mean ``G = (1/N) sum_i g_i``, the centred
covariance ``F = (1/N) sum_i g_i g_i^T - G G^T``, its trace ``tr F``, ``|G|^2`` and the
simple noise scale ``B_simple = tr F / |G|^2`` (McCandlish et al. 2018).

Every dense layer ``z = W a + b`` has per-example gradient ``(delta_i a_i^T, delta_i)``
with ``delta_i = dCE_i/dz``: the logistic models have one such layer, the MLP two
(``delta = relu'(a) * (W2^T delta_out)`` for the hidden one, whose input is ``x``). Hence,
without forming any ``g_i``:

* ``|g_i|^2 = sum_layers |delta_i|^2 (|a_i|^2 + 1)``;
* ``g_i . v = sum_layers delta_i . (V_W a_i + v_b)``, so ``F v`` is one forward pass
  plus a backward pass whose residuals are scaled by ``g_i . v`` (per block of
  directions);
* ``g_i . g_j = sum_layers (delta_i . delta_j)(a_i . a_j + 1)``, the Gram matrix behind
  the exact spectrum of ``F``.

Kernel contracts (registered per backend in ``sgdcore/kernels/_<backend>/grads.py``;
inputs are checked and C-contiguous, outputs are written, not accumulated):

* ``per_example_grads``: ``fn(model, theta, X, y, out[n, P])``.
* ``per_example_grad_norms``: ``fn(model, theta, X, y, out[n])``, squared norms.
* ``gradient_noise``: ``fn(model, theta, X, y, grad[P], sqnorms[n]) -> float``:
  ``sum_i g_i`` and ``|g_i|^2`` from one forward and one fused backward pass; returns
  ``|sum_i g_i|^2`` accumulated in float64.
* ``cov_matvec``: ``fn(model, theta, X, y, Vt[k, P], shift[k], out[k, P], ssum[k])``:
  with ``s_ij = g_i . Vt[j] - shift[j]``, ``out[j] = sum_i s_ij g_i`` and
  ``ssum[j] = sum_i s_ij`` (float64).
* ``grad_gram``: ``fn(model, theta, X, y, out[n, n])``, ``out[i, j] = g_i . g_j``.
"""

from __future__ import annotations

import os

import numpy as np

from . import _validate as chk
from ._arrays import accepts_device, check_side, namespace, sqnorm, to_device, to_host
from ._backend import flags, get_kernel

__all__ = [
    "GRAM_MAX_N",
    "GradientNoise",
    "GradientNoiseResult",
    "MemoryBudgetError",
    "gradient_noise",
    "memory_budget",
    "per_example_grad_norms",
    "per_example_grads",
    "per_example_projections",
    "set_memory_budget",
]

#: ``top_eigenvalues(method="auto")`` diagonalises the N x N Gram matrix up to this N.
GRAM_MAX_N = 2048
#: Default relative tolerance of ``top_eigenvalues(method="lanczos")`` on float64 data.
LANCZOS_TOL = 1e-12

#: Bytes of one block of per-example gradients in :func:`per_example_projections`.
PROJECTION_BLOCK_BYTES = 32 << 20

_BUDGET: int | None = None  # bytes; None: half of the memory available at call time


class MemoryBudgetError(MemoryError):
    """An allocation would exceed sgdcore's memory budget (see :func:`set_memory_budget`)."""


# ------------------------------------------------------------------- memory budget


def _available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; else free pages; else 4 GiB)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def memory_budget() -> int:
    """The most bytes one per-example allocation may take.

    Set by :func:`set_memory_budget`; by default half of the memory available at the
    time of the call (``MemAvailable`` in ``/proc/meminfo``).
    """
    return _BUDGET if _BUDGET is not None else _available_memory() // 2


def set_memory_budget(nbytes: int | None) -> int | None:
    """Set the budget of :func:`memory_budget` (``None``: back to the default).

    Returns the previous setting, so ``old = set_memory_budget(n); ...;
    set_memory_budget(old)`` restores it.
    """
    global _BUDGET
    if nbytes is not None:
        nbytes = _check_bytes("nbytes", nbytes)
    old, _BUDGET = _BUDGET, nbytes
    return old


def _check_bytes(name: str, value) -> int:
    if not chk.is_int(value) or value < 0:
        raise ValueError(f"{name} must be a whole number of bytes >= 0, got {value!r}")
    return int(value)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f} MB ({nbytes:,} bytes)"


def _within_budget(what: str, nbytes: int, max_bytes, advice: str) -> None:
    budget = memory_budget() if max_bytes is None else _check_bytes("max_bytes", max_bytes)
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} needs {_mb(nbytes)}, over the memory budget of {_mb(budget)} "
            f"(raise it with max_bytes= or sgdcore.set_memory_budget). {advice}"
        )


# ------------------------------------------------------------------------ helpers


def _chunk_rows(model) -> int:
    """Rows per kernel call so the residual scratch stays near 4 Mi elements."""
    width = max(getattr(model, "n_hidden", 0), model.n_outputs, 1)
    return max(256, (1 << 22) // width)


def _slices(n: int, rows: int):
    for s in range(0, n, rows):
        yield slice(s, min(n, s + rows))


def _sqnorm(a: np.ndarray) -> float:
    """``|a|^2`` accumulated in float64 (no float64 copy of ``a``; NumPy or CuPy)."""
    return sqnorm(a)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    value = chk.check_int(name, value)
    if value < low or (high is not None and value > high):
        bound = f"{low} <= {name}" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{name} must satisfy {bound}, got {value}")
    return value


# ------------------------------------------------------------- per-example gradients


@accepts_device("theta", "X", "y", "out")
def per_example_grads(
    model,
    theta,
    X,
    y,
    *,
    out=None,
    chunk_size=None,
    max_bytes=None,
    backend="auto",
    check_finite=True,
):
    """Gradient of each example's cross-entropy, ``g_i = dCE_i/dtheta`` (no L2 term).

    Row ``i`` holds, in the flat layout, the outer products of each dense layer:
    logistic ``(delta_i x_i^T, delta_i)`` with ``delta_i = dCE_i/dz_i``; MLP
    ``(da_i x_i^T, da_i, delta_i h_i^T, delta_i)`` with ``da_i = relu'(a_i) *
    (W2^T delta_i)``. ``sum_i g_i`` is the gradient of the summed cost
    (``loss_and_grad(..., reduction="sum", l2=0)``).

    The result takes ``N * P`` numbers (325 MB for the 784-800-10 MLP at N = 128 in
    float32). Before allocating, that size is compared with the memory budget
    (``max_bytes``, else :func:`memory_budget`) and refused with
    :class:`MemoryBudgetError` when it is over. Norms and noise statistics never need
    the ``[N, P]`` array: see :func:`per_example_grad_norms` and
    :func:`gradient_noise`.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
    X : ndarray, shape (N, D), theta's dtype, C-contiguous
    y : ndarray of int, shape (N,)
    out : ndarray, optional
        Written in place: shape (N, P) (no budget check: the memory exists), or with
        ``chunk_size``, shape (min(chunk_size, N), P), reused for every block.
    chunk_size : int, optional
        Stream instead: return an iterator of ``(start, block)`` where ``block`` is
        ``[g_start, ..., g_{start + len(block) - 1}]``, shape (<= chunk_size, P). Blocks
        are fresh arrays, or views of ``out`` when it is given (then valid only until
        the next block is produced). Only one block's size is checked against the
        budget. Inputs are validated when this function is called.
    max_bytes : int, optional
        Budget for this call, in bytes, instead of :func:`memory_budget`.
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    check_finite : bool
        Refuse NaN or inf in ``theta`` and ``X``. The C++ backend checks ``X`` inside
        its one pass over it (every ``x_ij`` is multiplied into a written value), so
        without ``chunk_size`` the error comes after ``out`` has been written.

    Returns
    -------
    ndarray, shape (N, P), theta's dtype
        ``out`` if given. With ``chunk_size``: an iterator of ``(int, ndarray)``.

    Raises
    ------
    MemoryBudgetError
        When the allocation would exceed the budget.
    FloatingPointError
        When finite inputs give non-finite gradients (overflow; C++ backend).

    Examples
    --------
    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.ones((4, 3)); y = np.array([0, 1, 1, 0])
    >>> g = sgdcore.per_example_grads(m, np.zeros(4), X, y, backend="numpy")
    >>> g[:2].tolist()  # theta = 0: delta_i = 1/2 - y_i
    [[0.5, 0.5, 0.5, 0.5], [-0.5, -0.5, -0.5, -0.5]]
    >>> for start, block in sgdcore.per_example_grads(m, np.zeros(4), X, y, chunk_size=3):
    ...     print(start, block.shape)
    0 (3, 4)
    3 (1, 4)
    """
    theta, X, y = chk.check_data(model, theta, X, y, finite=False)
    name, kernel = get_kernel(model, "per_example_grads", backend, (theta, X))
    # A kernel flagged `checks_finite` returns False when it wrote NaN or inf, which for
    # finite theta means X holds one: it saves the separate pass over X.
    fused = chunk_size is None and "checks_finite" in flags(model.kind, "per_example_grads", name)
    if check_finite:
        chk.check_finite("theta", theta)
        if not fused:
            chk.check_finite("X", X)
    N, P, dtype = X.shape[0], model.n_params, theta.dtype
    advice = (
        "For norms use sgdcore.per_example_grad_norms and for noise statistics "
        "sgdcore.gradient_noise (neither forms the N x P array); or stream blocks with "
        "chunk_size=."
    )
    if chunk_size is None:
        if out is None:
            what = f"per_example_grads for N={N} x P={P} {dtype}"
            _within_budget(what, N * P * dtype.itemsize, max_bytes, advice)
        out = chk.check_out(out, (N, P), dtype, like=theta)
        finite = True
        for sl in _slices(N, _chunk_rows(model)):
            finite &= kernel(model, theta, X[sl], y[sl], out[sl]) is not False
        if check_finite and not finite:
            chk.check_finite("X", X)  # raises, naming the first bad entry
            raise FloatingPointError(
                "per-example gradients hold NaN or inf although X and theta are finite "
                "(overflow: check the scale of theta and X)"
            )
        return out
    chunk = _check_int("chunk_size", chunk_size, 1)
    rows = min(chunk, N)
    if out is None:
        what = f"one block of per_example_grads ({rows} x P={P} {dtype})"
        _within_budget(what, rows * P * dtype.itemsize, max_bytes, "Use a smaller chunk_size.")
    else:
        out = chk.check_out(out, (rows, P), dtype, like=theta)
    return _blocks(kernel, model, theta, X, y, rows, out)


def _blocks(kernel, model, theta, X, y, rows, out):
    N, P = X.shape[0], model.n_params
    for s in range(0, N, rows):
        n = min(rows, N - s)
        block = namespace(theta).empty((n, P), dtype=theta.dtype) if out is None else out[:n]
        kernel(model, theta, X[s : s + n], y[s : s + n], block)
        yield s, block


@accepts_device("theta", "X", "y", "out")
def per_example_grad_norms(
    model, theta, X, y, *, squared=False, out=None, backend="auto", check_finite=True
):
    """Euclidean norm of each per-example gradient, without forming the gradients.

    ``|g_i|^2 = sum over dense layers of |delta_i|^2 (|a_i|^2 + 1)`` (weight plus bias
    gradient): logistic ``|delta_i|^2 (|x_i|^2 + 1)``; MLP
    ``|da_i|^2 (|x_i|^2 + 1) + |delta_i|^2 (|h_i|^2 + 1)``. One forward pass and the
    backpropagated residuals, in chunks: memory O(chunk * (H + C)) besides the result,
    never O(N * P).

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
    X : ndarray, shape (N, D), theta's dtype, C-contiguous
    y : ndarray of int, shape (N,)
    squared : bool
        Return ``|g_i|^2`` instead of ``|g_i|``.
    out : ndarray, shape (N,), theta's dtype, optional
        Written in place and returned.
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    check_finite : bool
        Refuse NaN or inf in ``theta`` and ``X``.

    Returns
    -------
    ndarray, shape (N,), theta's dtype

    Examples
    --------
    At ``theta = 0`` a binary logistic model has ``delta_i = 1/2 - y_i = +-1/2``, so
    ``|g_i|^2 = (|x_i|^2 + 1) / 4``:

    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.ones((4, 3)); y = np.array([0, 1, 1, 0])
    >>> sgdcore.per_example_grad_norms(m, np.zeros(4), X, y, backend="numpy").tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    theta, X, y = chk.check_data(model, theta, X, y, finite=check_finite)
    _, kernel = get_kernel(model, "per_example_grad_norms", backend, (theta, X))
    out = chk.check_out(out, (X.shape[0],), theta.dtype, like=theta)
    for sl in _slices(X.shape[0], _chunk_rows(model)):
        kernel(model, theta, X[sl], y[sl], out[sl])
    if not squared:
        namespace(out).sqrt(out, out=out)
    return out


def per_example_projections(
    model, theta, X, y, V, *, block_bytes=None, backend="auto", check_finite=True
):
    """Projections ``g_i . v_j`` of every per-example gradient on a few directions.

    The gradients are formed a block of examples at a time
    (:func:`per_example_grads` with ``chunk_size``) and each block is multiplied by
    ``V``: memory O(block * P + N k), never N x P, so N = 60,000 MNIST digits go
    through with the 784-800-10 network. A coordinate of the gradient is the projection
    on a unit vector ``e_j``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
    X : ndarray, shape (N, D), theta's dtype, C-contiguous
    y : ndarray of int, shape (N,)
    V : ndarray, shape (P,) or (P, k)
        One direction or ``k`` directions as columns (used in float64).
    block_bytes : int, optional
        Bytes of one block of gradients (default :data:`PROJECTION_BLOCK_BYTES`,
        32 MiB; at least one example per block).
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    check_finite : bool
        Refuse NaN or inf in ``theta``, ``X`` and ``V``.

    Returns
    -------
    ndarray, shape (N,) or (N, k), float64
        ``out[i, j] = g_i . V[:, j]`` (accumulated in float64).

    Examples
    --------
    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.ones((4, 3)); y = np.array([0, 1, 1, 0])
    >>> sgdcore.per_example_projections(m, np.zeros(4), X, y, np.ones(4)).tolist()
    [2.0, -2.0, -2.0, 2.0]
    """
    theta, X, y = chk.check_data(model, theta, X, y, finite=False)
    P = model.n_params
    Vm = chk._array("V", V)
    if not (Vm.ndim == 1 and Vm.shape == (P,)) and not (Vm.ndim == 2 and Vm.shape[0] == P):
        raise ValueError(f"V must have shape ({P},) or ({P}, k), got {Vm.shape}")
    if check_finite:
        chk.check_finite("V", Vm)
    Vm = np.ascontiguousarray(Vm.reshape(P, -1), dtype=np.float64)
    nbytes = PROJECTION_BLOCK_BYTES if block_bytes is None else block_bytes
    rows = max(1, _check_bytes("block_bytes", nbytes) // (P * theta.dtype.itemsize))
    out = np.empty((X.shape[0], Vm.shape[1]))
    if X.shape[0]:
        blocks = per_example_grads(
            model,
            theta,
            X,
            y,
            chunk_size=rows,
            max_bytes=max(nbytes, P * theta.dtype.itemsize),
            backend=backend,
            check_finite=check_finite,
        )
        for start, block in blocks:
            np.matmul(block, Vm, out=out[start : start + block.shape[0]], dtype=np.float64)
    return out[:, 0] if np.ndim(V) == 1 else out


# -------------------------------------------------------------- gradient noise


class GradientNoise:
    """Streaming accumulator of gradient-noise statistics over chunks of data.

    Feed the examples in any number of chunks with :meth:`update`; :meth:`result` gives
    the same statistics as one pass over all of them (:func:`gradient_noise`). Each
    chunk costs one forward and one fused backward pass and memory O(chunk * (H + C) +
    P): N = 60,000 MNIST digits go through in bounded memory.

    Per chunk ``c`` the kernel returns ``S_c = sum_i g_i`` and ``Q_c = sum_i |g_i|^2``;
    chunks are merged with the pairwise update of Chan et al. (1979):
    ``M2 = M2_a + M2_b + (n_a n_b / n) |S_a / n_a - S_b / n_b|^2`` with
    ``M2_c = Q_c - |S_c|^2 / n_c``, so ``tr F = M2 / N`` (clamped at 0 against
    rounding).

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
        Copied: later changes to the caller's array do not affect the statistics.
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    keep_data : bool
        Keep references (not copies) to the chunks so that the result's
        :meth:`~GradientNoiseResult.cov_matvec` and
        :meth:`~GradientNoiseResult.top_eigenvalues` can make further passes over them.
        Do not modify the arrays afterwards. With ``False`` the chunks may be freed and
        those two methods raise.
    check_finite : bool
        Refuse NaN or inf in ``theta`` and in every chunk of ``X``.

    Examples
    --------
    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.ones((4, 3)); y = np.array([0, 1, 1, 0])
    >>> acc = sgdcore.GradientNoise(m, np.zeros(4), backend="numpy")
    >>> r = acc.update(X[:1], y[:1]).update(X[1:], y[1:]).result()
    >>> r.n, r.trace_cov, r.grad_norm_sq  # g_i = +-(1/2)(1, 1, 1, 1), G = 0
    (4, 1.0, 0.0)
    """

    def __init__(self, model, theta, *, backend="auto", keep_data=True, check_finite=True):
        model = chk.check_model(model)
        theta = chk.check_theta(model, theta, finite=check_finite)
        self.model = model
        self.theta = theta.copy()
        self.backend = backend
        self.keep_data = bool(keep_data)
        self.check_finite = bool(check_finite)
        self._n = 0
        self._sum = None  # sum_i g_i, theta's dtype
        self._sum_sq = None  # |sum_i g_i|^2 when known (float64)
        self._m2 = 0.0  # sum_i |g_i - mean|^2
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def n(self) -> int:
        """Examples seen so far."""
        return self._n

    def update(self, X, y) -> GradientNoise:
        """Add the examples ``(X [n, D], y [n])``; returns ``self``."""
        model, theta = self.model, self.theta
        check_side(theta=theta, X=X, y=y)
        X = chk.check_X(model, X, theta.dtype, finite=self.check_finite)
        y = chk.check_y(model, y, X.shape[0])
        _, kernel = get_kernel(model, "gradient_noise", self.backend, (theta, X))
        xp = namespace(theta)
        for sl in _slices(X.shape[0], _chunk_rows(model)):
            n = sl.stop - sl.start
            s = xp.empty_like(theta)
            q = xp.empty(n, dtype=theta.dtype)
            ssq = kernel(model, theta, X[sl], y[sl], s, q)
            self._merge(s, ssq, float(xp.sum(q, dtype=np.float64)), n)
        if self.keep_data:
            self._chunks.append((X, y))
        return self

    def _merge(self, s: np.ndarray, ssq: float, q: float, n: int) -> None:
        """Merge one chunk: ``s = sum g_i``, ``ssq = |s|^2``, ``q = sum |g_i|^2``."""
        m2 = 0.0 if n == 1 else q - ssq / n
        if self._n == 0:
            self._sum, self._sum_sq, self._m2, self._n = s, ssq, m2, n
            return
        na = self._n
        diff = self._sum * s.dtype.type(1.0 / na) - s * s.dtype.type(1.0 / n)
        self._m2 += m2 + na * n / (na + n) * _sqnorm(diff)
        self._sum += s
        self._sum_sq = None  # |sum|^2, recomputed when asked for
        self._n = na + n

    def result(self) -> GradientNoiseResult:
        """The statistics of every example seen so far."""
        if self._n == 0:
            raise ValueError("no examples yet: call update(X, y) at least once")
        n = self._n
        mean = self._sum * self._sum.dtype.type(1.0 / n)
        trace = max(self._m2, 0.0) / n
        if self._sum_sq is None:
            self._sum_sq = _sqnorm(self._sum)
        gsq = self._sum_sq / n**2
        if gsq > 0:
            b_simple = trace / gsq
        else:
            b_simple = np.inf if trace > 0 else np.nan
        return GradientNoiseResult(
            mean_grad=mean,
            trace_cov=float(trace),
            grad_norm_sq=float(gsq),
            b_simple=float(b_simple),
            n=n,
            model=self.model,
            theta=self.theta,
            backend=self.backend,
            chunks=list(self._chunks) if self.keep_data else None,
        )


class GradientNoiseResult:
    """Gradient-noise statistics of ``N`` examples at ``theta``.

    Attributes
    ----------
    mean_grad : ndarray, shape (P,), theta's dtype
        ``G = (1/N) sum_i g_i``.
    trace_cov : float
        ``tr F = (1/N) sum_i |g_i - G|^2 = (1/N) sum_i |g_i|^2 - |G|^2``.
    grad_norm_sq : float
        ``|G|^2``.
    b_simple : float
        ``tr F / |G|^2`` (``inf`` when ``G = 0 != tr F``, ``nan`` when both vanish).
    n : int
        ``N``.
    backend : str
        The backend asked for (``cov_matvec`` and ``top_eigenvalues`` use it too).
    """

    __slots__ = (
        "_chunks",
        "_device",
        "_model",
        "_theta",
        "b_simple",
        "backend",
        "grad_norm_sq",
        "mean_grad",
        "n",
        "trace_cov",
    )

    def __init__(
        self, *, mean_grad, trace_cov, grad_norm_sq, b_simple, n, model, theta, backend, chunks
    ):
        self.mean_grad = mean_grad
        self.trace_cov = trace_cov
        self.grad_norm_sq = grad_norm_sq
        self.b_simple = b_simple
        self.n = n
        self.backend = backend
        self._model = model
        self._theta = theta
        self._chunks = chunks
        self._device = None  # the result on the GPU that this host copy stands for

    def to_host(self) -> GradientNoiseResult:
        """The result with NumPy arrays, for a caller who passed NumPy arrays to a GPU
        backend: :meth:`cov_matvec` and :meth:`top_eigenvalues` still run on the GPU, over
        the data kept there, and answer with NumPy arrays.
        """
        host = GradientNoiseResult(
            mean_grad=to_host(self.mean_grad),
            trace_cov=self.trace_cov,
            grad_norm_sq=self.grad_norm_sq,
            b_simple=self.b_simple,
            n=self.n,
            model=self._model,
            theta=self._theta,
            backend=self.backend,
            chunks=self._chunks,
        )
        host._device = self
        return host

    def __repr__(self) -> str:
        return (
            f"GradientNoiseResult(n={self.n}, trace_cov={self.trace_cov:.6g}, "
            f"grad_norm_sq={self.grad_norm_sq:.6g}, b_simple={self.b_simple:.6g}, "
            f"P={self.mean_grad.shape[0]}, dtype={self.mean_grad.dtype})"
        )

    # ------------------------------------------------------------------ closed forms

    def minibatch_cov_trace(self, batch_size) -> float:
        """Trace of the covariance of a size-``B`` mini-batch's mean gradient.

        For ``B`` examples drawn uniformly without replacement from the ``N``,
        ``Cov(mean_batch g) = (N - B) / (B (N - 1)) F``, so the trace is
        ``(N - B) / (B (N - 1)) tr F``: ``tr F`` at ``B = 1`` and zero at ``B = N``
        (the finite-population factor behind the paper's ``N/B - 1``).

        Parameters
        ----------
        batch_size : int
            ``B``, with ``1 <= B <= N``.

        Returns
        -------
        float
        """
        B = _check_int("batch_size", batch_size, 1)
        if B > self.n:
            raise ValueError(
                f"batch_size B={B} exceeds the N={self.n} examples the statistics cover"
            )
        if B == self.n:
            return 0.0
        return self.trace_cov * (self.n - B) / (B * (self.n - 1))

    # ------------------------------------------------------------- further passes

    def _data(self, what: str):
        if self._chunks is None:
            raise RuntimeError(
                f"{what} needs another pass over the data, but the accumulator was built "
                "with keep_data=False; build it with keep_data=True"
            )
        return self._chunks

    def cov_matvec(self, v):
        """``F v``, the noise covariance times one direction or a block of them.

        ``F v = (1/N) sum_i g_i (g_i . v) - G (G . v)``, computed without forming any
        ``g_i``: per chunk one residual pass, then per direction one GEMM for
        ``U = a V^T`` (``g_i . v = sum_layers delta_i . (V_W a_i + v_b)``) and one
        backward pass with the residuals scaled by ``s_i = g_i . v - G . v``.
        Centring the scalars ``s_i`` keeps ``F v`` free of the cancellation of the
        uncentred formula; the result is ``(sum_i s_i g_i - G sum_i s_i) / N``.

        Parameters
        ----------
        v : ndarray, shape (P,) or (P, k), theta's dtype
            One direction, or ``k`` directions as columns.

        Returns
        -------
        ndarray, shape of ``v``, theta's dtype
        """
        if self._device is not None:
            return to_host(self._device.cov_matvec(to_device(v)))
        model, theta = self._model, self._theta
        P, dtype = model.n_params, theta.dtype
        V = chk._array("v", v)
        check_side(theta=theta, v=V)
        xp = namespace(theta)
        if V.dtype != dtype:
            raise TypeError(f"v has dtype {V.dtype} but theta has dtype {dtype}; cast v")
        if not (V.ndim == 1 and V.shape == (P,)) and not (V.ndim == 2 and V.shape[0] == P):
            raise ValueError(f"v must have shape ({P},) or ({P}, k), got {V.shape}")
        if V.ndim == 2 and V.shape[1] == 0:
            return xp.empty((P, 0), dtype=dtype)
        chk.check_finite("v", V)
        chunks = self._data("cov_matvec")
        Vt = xp.ascontiguousarray(V.reshape(P, -1).T)
        k = Vt.shape[0]
        shift = (Vt @ self.mean_grad).astype(dtype)
        total, ssum = None, xp.zeros(k)
        out = xp.empty((k, P), dtype=dtype)
        part = xp.empty(k)
        for X, y in chunks:
            _, kernel = get_kernel(model, "cov_matvec", self.backend, (theta, X))
            for sl in _slices(X.shape[0], _chunk_rows(model)):
                kernel(model, theta, X[sl], y[sl], Vt, shift, out, part)
                ssum += part
                if total is None:
                    total, out = out, xp.empty((k, P), dtype=dtype)
                else:
                    total += out
        # F v = (sum_i s_i g_i - G sum_i s_i) / N
        total -= ssum.astype(dtype)[:, None] * self.mean_grad[None, :]
        total *= dtype.type(1.0 / self.n)
        return total[0] if V.ndim == 1 else xp.ascontiguousarray(total.T)

    def _centred_gram(self) -> np.ndarray:
        """``(1/N) Gc Gc^T`` of the centred per-example gradients, float64 [N, N]."""
        model, theta = self._model, self._theta
        chunks = self._data("top_eigenvalues")
        xp = namespace(theta)
        if len(chunks) == 1:
            X, y = chunks[0]
        else:
            X = xp.concatenate([c[0] for c in chunks])
            y = xp.concatenate([c[1] for c in chunks])
        _, kernel = get_kernel(model, "grad_gram", self.backend, (theta, X))
        K = xp.empty((self.n, self.n), dtype=theta.dtype)
        kernel(model, theta, X, y, K)
        K = K.astype(np.float64, copy=False)
        # Gc Gc^T = (I - 11^T/N) K (I - 11^T/N)
        r = K.mean(axis=1)
        K -= r[:, None]
        K -= r[None, :]
        K += r.mean()
        K /= self.n
        return K

    def top_eigenvalues(
        self, k=1, *, method="auto", tol=None, max_bytes=None, return_vectors=False
    ):
        """The ``k`` largest eigenvalues of ``F``, in decreasing order (and eigenvectors).

        Two methods, both exact up to floating point:

        * ``"gram"``: the non-zero eigenvalues of ``F = (1/N) Gc^T Gc`` (``Gc`` the
          ``[N, P]`` centred per-example gradients) are those of the ``N x N`` matrix
          ``(1/N) Gc Gc^T``, whose entries ``g_i . g_j = sum_layers (delta_i .
          delta_j)(a_i . a_j + 1)`` come from GEMMs on the residuals (no ``N x P``);
          then a dense symmetric eigensolver. Cost O(N^2 (D + H) + N^3), memory
          O(N^2). Eigenvalues beyond the N-th are exactly zero (rank F <= N - 1).
        * ``"lanczos"``: thick-restart Lanczos (:func:`sgdcore.curvature.top_eigenvalues`,
          equivalent to ARPACK's implicitly restarted Lanczos) on :meth:`cov_matvec`;
          memory O(P max(4 k, 20)), needs ``k < P``.

        ``"auto"`` uses ``"gram"`` when ``N <= GRAM_MAX_N`` (2048) or ``k >= P``, else
        ``"lanczos"``.

        Parameters
        ----------
        k : int
            How many, ``1 <= k <= P``.
        method : {"auto", "gram", "lanczos"}
        tol : float, optional
            Lanczos relative tolerance on the Ritz residuals (default and for 0:
            ``LANCZOS_TOL`` = 1e-12 for float64 data, 1e-6 for float32, whose products
            carry float32 rounding).
        max_bytes : int, optional
            Budget for the Gram path's four ``N x N`` float64 arrays (default
            :func:`memory_budget`).
        return_vectors : bool
            Also return unit eigenvectors. Lanczos gives them directly; the Gram path
            maps each eigenvector ``w`` of ``(1/N) Gc Gc^T`` (eigenvalue ``lambda``) to
            ``u = Gc^T w / sqrt(N lambda)``, where ``Gc^T w = sum_i w_i g_i`` (``w``
            sums to 0) is one streamed pass of per-example gradients, a block at a
            time (:func:`per_example_projections`' blocks; never N x P). An
            eigenvalue of 0 has no determined eigenvector: asking for one raises.

        Returns
        -------
        values : ndarray, shape (k,), float64
        vectors : ndarray, shape (P, k), float64
            Only with ``return_vectors``; column ``j`` belongs to ``values[j]``.
        """
        if self._device is not None:
            return to_host(
                self._device.top_eigenvalues(
                    k, method=method, tol=tol, max_bytes=max_bytes, return_vectors=return_vectors
                )
            )
        P = self._model.n_params
        xp = namespace(self._theta)  # a GPU's data: the eigensolvers run there too
        k = _check_int("k", k, 1, P)
        if method not in ("auto", "gram", "lanczos"):
            raise ValueError(f"method must be 'auto', 'gram' or 'lanczos', got {method!r}")
        if method == "auto":
            method = "gram" if self.n <= GRAM_MAX_N or k >= P else "lanczos"
        if method == "gram":
            nbytes = 4 * self.n * self.n * 8
            what = f"the Gram matrix of N={self.n} per-example gradients"
            _within_budget(what, nbytes, max_bytes, "Use method='lanczos'.")
            if not return_vectors:
                ev = to_host(xp.linalg.eigvalsh(self._centred_gram()))[::-1]
                out = np.zeros(k)
                out[: min(k, ev.shape[0])] = ev[:k]
                return out
            ev, W = xp.linalg.eigh(self._centred_gram())
            ev, W = to_host(ev)[::-1][:k], W[:, ::-1][:, :k]
            if ev.shape[0] < k or ev[-1] <= 1e-12 * max(ev[0], 0.0):
                raise ValueError(
                    f"F has fewer than k={k} non-zero eigenvalues (rank F <= N - 1 = "
                    f"{self.n - 1}): their eigenvectors are not determined; ask for fewer"
                )
            U = self._weighted_grad_sums(W)
            U /= xp.asarray(np.sqrt(self.n * ev))[None, :]
            return ev.copy(), U
        if k >= P:
            raise ValueError(f"method='lanczos' needs k < P = {P}, got k={k}; use 'gram'")
        from scipy.sparse.linalg import LinearOperator

        from .curvature._lanczos import DeviceOperator, top_eigenvalues

        dtype = self._theta.dtype
        if not tol:
            tol = LANCZOS_TOL if dtype == np.float64 else 1e-6

        if xp is np:

            def matvec(x):
                x = np.ascontiguousarray(x, dtype=dtype).ravel()
                return self.cov_matvec(x).astype(np.float64)

            op = LinearOperator((P, P), matvec=matvec, dtype=np.float64)
        else:  # Lanczos on device vectors

            def matmat(V):
                return self.cov_matvec(xp.ascontiguousarray(V, dtype=dtype)).astype(np.float64)

            op = DeviceOperator(P, matmat)
        res = top_eigenvalues(
            op, k, which="LA", tol=tol, seed=0, return_eigenvectors=return_vectors
        )
        if not return_vectors:
            return res.eigenvalues.copy()
        return res.eigenvalues.copy(), xp.ascontiguousarray(res.eigenvectors)

    def _weighted_grad_sums(self, W):
        """``sum_i W[i, j] g_i`` for each column of ``W`` [N, k], float64 [P, k], from
        per-example gradients streamed a block at a time.
        """
        model, theta = self._model, self._theta
        P = model.n_params
        rows = max(1, PROJECTION_BLOCK_BYTES // (P * theta.dtype.itemsize))
        out = namespace(theta).zeros((P, W.shape[1]))
        start = 0
        for X, y in self._data("top_eigenvalues"):
            for _, block in per_example_grads(
                model, theta, X, y, chunk_size=rows, backend=self.backend, check_finite=False
            ):
                n = block.shape[0]
                out += block.T.astype(np.float64) @ W[start : start + n]
                start += n
        return out


def gradient_noise(model, theta, X, y, *, backend="auto", check_finite=True):
    """Gradient-noise statistics of the examples ``(X, y)`` at ``theta``.

    One forward and one fused backward pass (in chunks) give ``sum_i g_i`` and every
    ``|g_i|^2``; from them ``G = (1/N) sum_i g_i``, ``tr F = (1/N) sum_i |g_i|^2 -
    |G|^2`` (merged across chunks without cancellation, see :class:`GradientNoise`) and
    ``B_simple = tr F / |G|^2``. Nothing of size ``N x P`` is formed; the result keeps a
    reference to ``(X, y)`` for :meth:`~GradientNoiseResult.cov_matvec` and
    :meth:`~GradientNoiseResult.top_eigenvalues`.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : ndarray, shape (P,), float32 or float64
    X : ndarray, shape (N, D), theta's dtype, C-contiguous
    y : ndarray of int, shape (N,)
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    check_finite : bool
        Refuse NaN or inf in ``theta`` and ``X``.

    Returns
    -------
    GradientNoiseResult
        ``mean_grad``, ``trace_cov``, ``grad_norm_sq``, ``b_simple``, ``n``,
        ``cov_matvec(v)``, ``minibatch_cov_trace(B)`` and ``top_eigenvalues(k)``.

    Examples
    --------
    With ``theta = 0`` a binary logistic model on constant inputs has
    ``g_i = +-(1/2)(1, 1, 1, 1)``: ``G = 0``, ``tr F = 1``, and a batch of 2 out of 4
    has ``(4 - 2) / (2 * 3) tr F = 1/3``:

    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.ones((4, 3)); y = np.array([0, 1, 1, 0])
    >>> r = sgdcore.gradient_noise(m, np.zeros(4), X, y, backend="numpy")
    >>> r.trace_cov, r.b_simple, round(r.minibatch_cov_trace(2), 12)
    (1.0, inf, 0.333333333333)
    """
    acc = GradientNoise(model, theta, backend=backend, check_finite=check_finite)
    return acc.update(X, y).result()
