"""Arrays and launches of the ``cuda`` backend.

Kernels receive the arrays the public functions checked. Host (NumPy) arrays are copied to
the current device once per call and the results copied back into the host outputs;
CuPy arrays are used in place, and outputs that are CuPy arrays are written on the device
without synchronising. Every GEMM is CuPy's (cuBLAS on the current stream; TF32 is off
unless CuPy's ``CUPY_TF32=1`` asks for it) and every launch of ``sgdcore._cuda`` gets the
current stream's handle, so a call queued on one stream never waits for another.
"""

from __future__ import annotations

import cupy as cp

from ... import _cuda
from ..._arrays import check_side

__all__ = [
    "empty_like_out",
    "f64",
    "inputs",
    "ptr",
    "store",
    "stream",
    "to_caller",
    "views",
]


def stream() -> int:
    """Handle of the current CuPy stream, as the launchers of ``sgdcore._cuda`` take it."""
    return cp.cuda.get_current_stream().ptr


def f64(a) -> bool:
    """Whether ``a`` holds float64 (else float32): picks the launcher's instantiation."""
    return a.dtype == cp.float64


def ptr(a) -> int:
    """Device address of ``a``'s first element (0 for None)."""
    return 0 if a is None else a.data.ptr


def inputs(**named):
    """The named arrays on the current device, in order (None stays None).

    All given arrays must live on the same side (:func:`sgdcore._arrays.check_side`): all
    NumPy (copied once) or all CuPy (checked: current device, C-contiguous). Labels
    become int64.
    """
    check_side(**named)
    out = []
    for k, a in named.items():
        a = None if a is None else cp.asarray(a)  # the one host -> device copy, if any
        if k == "y" and a is not None and a.dtype != cp.int64:
            a = a.astype(cp.int64)
        out.append(a)
    return out


def empty_like_out(out):
    """A device array to compute ``out`` in: ``out`` itself when it is a CuPy array."""
    if isinstance(out, cp.ndarray):
        return out
    return cp.empty(out.shape, dtype=out.dtype)


def store(out, value) -> None:
    """Write the device array ``value`` into ``out``: on the device when ``out`` is a CuPy
    array, else one device -> host copy (which waits for the stream: the result goes to
    the host).
    """
    if out is value:
        return
    if isinstance(out, cp.ndarray):
        out[...] = value
    else:
        cp.ascontiguousarray(value, dtype=out.dtype).get(out=out)


def to_caller(value, like):
    """``value`` as the caller passed ``like``: CuPy for CuPy, else a NumPy copy."""
    return value if isinstance(like, cp.ndarray) else cp.asnumpy(value)


def views(model, theta) -> dict:
    """Views of the device vector ``theta`` shaped as the model's tensors (no copy)."""
    offs = model.offsets()
    return {name: theta[offs[name]].reshape(shape) for name, shape in model.shapes}


def launch(name: str, f64_: bool, *args) -> None:
    """Call ``sgdcore._cuda.<name>_f64`` (``f64_``) or ``<name>_f32`` with ``args`` and the
    current stream.
    """
    getattr(_cuda, f"{name}_{'f64' if f64_ else 'f32'}")(*args, stream())
