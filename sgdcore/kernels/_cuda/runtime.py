"""What the ``cuda`` backend needs at run time, checked before any of its kernels load.

Importing this module checks that CuPy sees a device, then loads ``sgdcore._cuda``; where
CuPy or a GPU is missing it raises ImportError, so the registry reports the backend
unusable (with the way to get it) and ``sgdcore._cuda`` is never loaded.
"""

from __future__ import annotations

import importlib

import cupy


def _check_device() -> None:
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise ImportError(f"CuPy finds no usable GPU ({exc})") from None
    if n_devices == 0:
        raise ImportError("CuPy finds no GPU")


_check_device()
importlib.import_module("sgdcore._cuda")
