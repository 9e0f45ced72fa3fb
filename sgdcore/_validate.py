"""Checks every public function runs before a kernel sees its inputs.

A kernel may assume: ``theta`` is 1-D, C-contiguous, float32 or float64, of length
``model.n_params``; ``X`` is 2-D, C-contiguous, of ``theta``'s dtype with
``model.n_features`` columns and at least one row; ``y`` is int64, C-contiguous, one label
per row, each in ``[0, model.n_classes)``; and (by default) both are finite.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from ._arrays import namespace, on_device

if TYPE_CHECKING:  # models imports this module for check_int
    from .models import Model

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("sum", "mean")


def _array(name: str, a) -> np.ndarray:
    """``a`` if it is a NumPy or CuPy array (:mod:`sgdcore._arrays`), else TypeError."""
    if not (isinstance(a, np.ndarray) or on_device(a)):
        raise TypeError(f"{name} must be a NumPy array (or a CuPy array), got {type(a).__name__}")
    return a


def is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (a bool is not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``: TypeError unless an integer (:func:`is_int`), ValueError
    outside ``[minimum, maximum]`` (either bound may be None).

    >>> check_int("batch_size", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be >= 1, got 0
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = f">= {minimum}" if minimum is not None else ""
        hi = f"<= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be {' and '.join(b for b in (lo, hi) if b)}, got {value}")
    return value


#: Non-zero counts of the arrays :func:`check_finite` scanned lately: ``id(a) -> (weak
#: reference to a, count)``, so that a kernel choosing its path by the density of the
#: inputs (:func:`nonzeros`) does not read them a second time.
_SCANNED: dict[int, tuple[weakref.ref, int]] = {}
_SCANNED_MAX = 8
_SCAN = []  # [sgdcore._cpu.scan_inputs or None], looked up on first use


def _scanner():
    """The C++ one-pass scan ``a -> (all finite, non-zero count)``, or None without the
    C++ extension.
    """
    if not _SCAN:
        try:
            from ._cpu import scan_inputs
        except ImportError:
            scan_inputs = None
        _SCAN.append(scan_inputs)
    return _SCAN[0]


def _scannable(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype in FLOATS and a.flags.c_contiguous


def _remember(a: np.ndarray, count: int) -> None:
    _SCANNED.pop(id(a), None)
    while len(_SCANNED) >= _SCANNED_MAX:
        _SCANNED.pop(next(iter(_SCANNED)), None)
    _SCANNED[id(a)] = (weakref.ref(a), count)


def forget_scan(a) -> None:
    """Drop what :func:`check_finite` remembered of ``a`` (its entries may have changed
    since, unchecked).
    """
    _SCANNED.pop(id(a), None)


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise if ``a`` holds NaN or inf, naming ``name`` and the first bad index.

    A C-contiguous float array is read once by the C++ extension, which also counts its
    non-zero entries for :func:`nonzeros`; otherwise one NumPy reduction (a second pass
    only on failure).
    """
    if not a.size:
        return
    scan = _scanner() if _scannable(a) else None
    if scan is not None:
        finite, count = scan(a)
        _remember(a, count)
    else:
        finite = np.isfinite(a.sum()) or np.isfinite(a).all()
    if not finite:
        bad = np.argwhere(~np.isfinite(a))[0]
        where = ", ".join(map(str, bad))
        raise ValueError(f"{name} contains NaN or inf (first at index [{where}])")


def nonzeros(a: np.ndarray) -> int:
    """The number of non-zero entries of ``a``: remembered from the pass of
    :func:`check_finite` over it when the caller checked it, else counted now (one pass).
    """
    seen = _SCANNED.get(id(a))
    if seen is not None and seen[0]() is a:
        return seen[1]
    scan = _scanner() if _scannable(a) else None
    return int(scan(a)[1]) if scan is not None else int(np.count_nonzero(a))


def check_model(model) -> Model:
    from .models import Model

    if not isinstance(model, Model):
        raise TypeError(
            "model must be an sgdcore model (LogisticRegression or MLP), "
            f"got {type(model).__name__}"
        )
    return model


def check_theta(model: Model, theta, *, finite: bool = True) -> np.ndarray:
    theta = _array("theta", theta)
    if theta.dtype not in FLOATS:
        raise TypeError(f"theta must be float32 or float64, got {theta.dtype}")
    if theta.shape != (model.n_params,):
        raise ValueError(
            f"theta must have shape ({model.n_params},) for {model!r}, got {theta.shape}"
        )
    if not theta.flags.c_contiguous:
        raise ValueError("theta must be C-contiguous; pass np.ascontiguousarray(theta)")
    if finite:
        check_finite("theta", theta)
    return theta


def check_X(model: Model, X, dtype: np.dtype, *, finite: bool = True) -> np.ndarray:
    X = _array("X", X)
    if X.dtype != dtype:
        raise TypeError(
            f"X has dtype {X.dtype} but theta has dtype {dtype}; cast one to match "
            f"(X.astype(np.{dtype}))"
        )
    if X.ndim != 2 or X.shape[1] != model.n_features:
        raise ValueError(f"X must have shape (N, {model.n_features}), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is empty: at least one example is needed")
    if not X.flags.c_contiguous:
        raise ValueError("X must be C-contiguous; pass np.ascontiguousarray(X)")
    if finite:
        check_finite("X", X)
    else:
        forget_scan(X)
    return X


def check_y(model: Model, y, n: int) -> np.ndarray:
    y = _array("y", y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= model.n_classes):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise ValueError(f"y holds label {bad}, outside [0, {model.n_classes})")
    return namespace(y).ascontiguousarray(y, dtype=np.int64)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return reduction


def check_l2(l2) -> float:
    l2 = float(l2)
    if not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2 must be a finite number >= 0, got {l2}")
    return l2


def check_out(
    out, shape: tuple[int, ...], dtype: np.dtype, name: str = "out", like=None
) -> np.ndarray:
    """Return ``out`` checked, or a new array when ``out`` is None (on the side of
    ``like``: a CuPy array for a CuPy ``like``).
    """
    if out is None:
        return namespace(like).empty(shape, dtype=dtype)
    out = _array(name, out)
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"{name} must have shape {shape} and dtype {dtype}, got {out.shape} {out.dtype}"
        )
    # (CuPy arrays are always writable and have no `writeable` flag)
    if not out.flags.c_contiguous or not getattr(out.flags, "writeable", True):
        raise ValueError(f"{name} must be C-contiguous and writable")
    return out


def check_data(model, theta, X, y=None, *, finite: bool = True):
    """Validate ``(model, theta, X[, y])`` together; return the checked arrays."""
    model = check_model(model)
    theta = check_theta(model, theta, finite=finite)
    X = check_X(model, X, theta.dtype, finite=finite)
    if y is None:
        return theta, X
    return theta, X, check_y(model, y, X.shape[0])
