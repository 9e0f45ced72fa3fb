"""Where an array lives -- the host (NumPy) or a GPU (CuPy) -- and the moves between them.

Every public function takes NumPy arrays or CuPy arrays and answers in kind:

* CuPy arrays in give CuPy arrays out, computed on the device (``backend="auto"`` then
  picks the GPU backend, ``cuda``);
* NumPy arrays with a GPU backend named (``backend="cuda"``, or ``SGDCORE_BACKEND=cuda``)
  are copied to the device once, at the public function's boundary, and its results
  copied back, so the caller sees NumPy;
* NumPy arrays otherwise never meet CuPy.

All the array arguments of one call live on the same side: a mix, a CuPy array on a
device other than the current one, or a non-contiguous CuPy array is refused with one
line naming the argument. CuPy is optional: it is never imported here unless an array
already is a CuPy array (then ``cupy`` is in ``sys.modules``) or a GPU backend is named.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import types

import numpy as np

__all__ = [
    "accepts_device",
    "check_current_device",
    "check_side",
    "namespace",
    "on_device",
    "sqnorm",
    "to_device",
    "to_host",
]


def _cupy():
    """The CuPy module when it has been imported (a CuPy array exists only then)."""
    return sys.modules.get("cupy")


def on_device(a) -> bool:
    """Whether ``a`` is a CuPy array (without importing CuPy)."""
    cp = _cupy()
    return cp is not None and isinstance(a, cp.ndarray)


def namespace(a) -> types.ModuleType:
    """The array module of ``a``: ``cupy`` for a CuPy array, else ``numpy``."""
    return _cupy() if on_device(a) else np


def sqnorm(a) -> float:
    """``|a|^2`` of a vector on either side, accumulated in float64."""
    if on_device(a):
        cp = _cupy()
        return float(cp.sum(cp.square(a, dtype=cp.float64)))
    from ._blas import sqnorm as host_sqnorm

    return host_sqnorm(a)


def check_current_device(name: str, a) -> None:
    """Raise (naming ``name``) unless the CuPy array ``a`` is on the current device."""
    here = _cupy().cuda.Device().id
    if a.device.id != here:
        raise ValueError(
            f"{name} lives on GPU {a.device.id} but the current device is GPU {here}; "
            f"copy it with cupy.asarray({name}) inside `with cupy.cuda.Device({here}):`"
        )


def _check_device_array(name: str, a) -> None:
    check_current_device(name, a)
    if not a.flags.c_contiguous:
        raise ValueError(
            f"{name} is a non-contiguous CuPy array; pass cupy.ascontiguousarray({name})"
        )


def check_side(**named) -> bool:
    """Whether the named arrays live on the GPU (True) or the host (False).

    Values that are not arrays (None, lists, numbers) are ignored. CuPy arrays must be on
    the current device and C-contiguous.

    Raises
    ------
    ValueError
        When NumPy and CuPy arrays are mixed, or a CuPy array is on another device or
        not C-contiguous; the message names the argument.
    """
    if _cupy() is None:  # no CuPy array can exist
        return False
    host = [k for k, a in named.items() if isinstance(a, np.ndarray) and not on_device(a)]
    device = [k for k, a in named.items() if on_device(a)]
    if host and device:
        raise ValueError(
            f"{host[0]} is a NumPy array but {device[0]} is a CuPy array; pass every array "
            "on the host or every array on the GPU"
        )
    for k in device:
        _check_device_array(k, named[k])
    return bool(device)


def to_device(a):
    """A NumPy array copied to the current GPU; anything else (a CuPy array, None, a
    list the callee will refuse) is returned as is.
    """
    if not isinstance(a, np.ndarray) or on_device(a):
        return a
    return importlib.import_module("cupy").asarray(a)


def to_host(value, out=None):
    """``value`` with every CuPy array in it copied to the host.

    Handles arrays, tuples and lists, iterators of ``(start, block)`` (converted as they
    are consumed) and objects with a ``to_host()`` method; anything else is returned as
    is. With ``out`` (a NumPy array), an array result is copied into ``out`` and
    ``out`` returned; an iterator's blocks are then written into ``out[:len(block)]``.
    """
    if on_device(value):
        if out is None:
            return _cupy().asnumpy(value)
        value.get(out=out)
        return out
    if isinstance(value, tuple):  # e.g. (cost, grad): ``out`` receives the array of its shape
        shape = None if out is None else out.shape
        return tuple(to_host(v, out if getattr(v, "shape", None) == shape else None) for v in value)
    if isinstance(value, list):
        return [to_host(v) for v in value]
    if inspect.isgenerator(value):
        return ((s, to_host(b, None if out is None else out[: b.shape[0]])) for s, b in value)
    if hasattr(value, "to_host") and not isinstance(value, np.ndarray):
        return value.to_host()
    return value


@functools.cache
def _registry():
    from . import _backend  # (imported late: it imports this module)

    return _backend


def _gpu_backend(backend) -> bool:
    return _registry().is_gpu(backend)


def accepts_device(*names: str):
    """Decorator: a public function whose arguments ``names`` may be CuPy arrays.

    The arrays are checked together (:func:`check_side`). NumPy arrays with a GPU
    backend named are copied to the device once (an ``out`` among ``names`` stays on the
    host and receives the result) and the function's results copied back
    (:func:`to_host`); otherwise the function runs on the arrays as given.
    """

    def deco(fn):
        sig = inspect.signature(fn)
        position = {k: i for i, k in enumerate(sig.parameters)}
        default_backend = sig.parameters["backend"].default

        def argument(name, args, kwargs, default=None):
            # (cheaper than sig.bind on the common path, where nothing moves)
            if name in kwargs:
                return kwargs[name]
            i = position[name]
            return args[i] if i < len(args) else default

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            given = {k: argument(k, args, kwargs) for k in names}
            backend = argument("backend", args, kwargs, default_backend)
            if check_side(**given) or not _gpu_backend(backend):
                return fn(*args, **kwargs)
            _registry().resolve(backend)  # a missing GPU backend says so, and how to get it
            bound = sig.bind(*args, **kwargs)
            out = given.pop("out", None)
            for k, a in given.items():
                if isinstance(a, np.ndarray):
                    bound.arguments[k] = to_device(a)
            if out is not None:
                bound.arguments["out"] = None
            return to_host(fn(*bound.args, **bound.kwargs), out)

        return wrapper

    return deco
