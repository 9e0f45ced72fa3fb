"""Strict reader for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian
uint32 dimensions, then the row-major big-endian payload. Files may be gzip
compressed; compression is recognised by its magic bytes ``1f 8b``, never by the
file name. Anything that does not match the header exactly raises
:class:`~sgdcore.data.DataError`, so a damaged file is never half-used.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import TYPE_CHECKING

import numpy as np

from .dataset import DataError, check_labels

if TYPE_CHECKING:
    import hashlib

__all__ = ["read_idx", "read_idx_pair"]

_GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(
    path: str | os.PathLike[str],
    *,
    ndim: int | None = None,
    hasher: hashlib._Hash | None = None,
) -> np.ndarray:
    """Read one IDX file, raw or gzip compressed.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip compression is detected from the magic bytes ``1f 8b``.
    ndim : int, optional
        The number of dimensions the header must declare (3 for images, 1 for
        labels). Any number is accepted when omitted.
    hasher : hashlib hash object, optional
        Updated with the file's bytes as stored (before decompression), so a
        caller can checksum exactly what it read without reading it twice.

    Returns
    -------
    numpy.ndarray
        A new, writable, native-endian array of the declared shape and type
        (uint8 for MNIST images and labels).

    Raises
    ------
    DataError
        If the file is not IDX (wrong magic), declares an unsupported type code or
        an unexpected number of dimensions, is a corrupt gzip stream, or its
        payload is shorter (truncated) or longer (trailing bytes) than the header
        declares. The message names the file.
    FileNotFoundError
        If the file does not exist.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if hasher is not None:
        hasher.update(raw)
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip stream ({exc})") from exc
    return _parse(raw, path, ndim)


def read_idx_pair(
    images: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    *,
    hasher: hashlib._Hash | None = None,
    n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a matching pair of IDX image and label files.

    Parameters
    ----------
    images : str or os.PathLike
        IDX file of uint8 images, shape ``[n, rows, cols]``.
    labels : str or os.PathLike
        IDX file of integer labels, shape ``[n]``.
    hasher : hashlib hash object, optional
        Updated with the bytes of ``images`` then ``labels``, as stored.
    n_classes : int, optional
        The number of classes of the data set (10 for MNIST); every label must lie
        in ``[0, n_classes)``. Without it labels need only be non-negative.

    Returns
    -------
    images : numpy.ndarray, shape (n, rows, cols), uint8
    labels : numpy.ndarray, shape (n,), int64

    Raises
    ------
    DataError
        If either file is malformed (see :func:`read_idx`), the images are not a
        3-D uint8 array, the labels are not 1-D integers in range, or the two
        counts differ (the message names both files).
    """
    X = read_idx(images, ndim=3, hasher=hasher)
    y = read_idx(labels, ndim=1, hasher=hasher)
    return check_pair(X, y, images, labels, n_classes)


def check_pair(
    X: np.ndarray, y: np.ndarray, images: object, labels: object, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Check images ``[n, rows, cols]`` uint8 against labels ``[n]``; return ``(X, y)``.

    ``images`` and ``labels`` name where the arrays came from, for the messages.
    The labels are returned as int64.

    Raises
    ------
    DataError
        If the shapes, types or counts do not match, or a label is negative or (with
        ``n_classes``) not below ``n_classes``.
    """
    if X.ndim != 3 or X.dtype != np.uint8:
        raise DataError(f"{images}: images must be a 3-D uint8 array, got {X.dtype} {X.shape}")
    return X, check_labels(y, n_classes, labels, len(X), images)


def _parse(buf: bytes, path: str | os.PathLike[str], ndim: int | None) -> np.ndarray:
    if len(buf) < 4:
        raise DataError(f"{path}: truncated header ({len(buf)} bytes, an IDX header needs 4+)")
    if buf[0] != 0 or buf[1] != 0:
        raise DataError(
            f"{path}: wrong magic bytes {buf[:4].hex(' ')}; not an IDX file "
            "(expected 00 00 <type> <ndim>)"
        )
    code, declared = buf[2], buf[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DataError(f"{path}: unsupported IDX type code 0x{code:02X} (known: {known})")
    if declared == 0 or (ndim is not None and declared != ndim):
        expected = "at least 1" if ndim is None else str(ndim)
        raise DataError(
            f"{path}: dimension mismatch: header declares {declared} dimensions, "
            f"expected {expected}"
        )
    start = 4 + 4 * declared
    if len(buf) < start:
        raise DataError(
            f"{path}: truncated header ({len(buf)} bytes, {start} needed for {declared} dims)"
        )
    shape = struct.unpack(f">{declared}I", buf[4:start])
    dtype = _IDX_DTYPES[code]
    need = math.prod(shape) * dtype.itemsize
    have = len(buf) - start
    if have < need:
        raise DataError(
            f"{path}: truncated payload: header declares shape {shape} "
            f"({need} bytes), file holds {have}"
        )
    if have > need:
        raise DataError(
            f"{path}: {have - need} trailing bytes after the payload of shape {shape} "
            f"({need} bytes)"
        )
    data = np.frombuffer(buf, dtype=dtype, count=math.prod(shape), offset=start)
    return data.astype(dtype.newbyteorder("=")).reshape(shape)
