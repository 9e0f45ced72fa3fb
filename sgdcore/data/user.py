"""A user's own data: a folder of IDX files or a ``.npz`` file.

Accepted layouts (:data:`LAYOUTS`):

* a **folder** holding IDX files under MNIST's names, ``train-images-idx3-ubyte`` and
  ``train-labels-idx1-ubyte`` (the train split) and/or ``t10k-images-idx3-ubyte`` and
  ``t10k-labels-idx1-ubyte`` (the test split), each raw or ``.gz``; a folder with only
  one split's pair serves that split alone;
* a **.npz** file holding ``X`` and ``y`` (the train split) and optionally ``X_test`` and
  ``y_test`` (the test split); keras's names ``x_train``, ``y_train``, ``x_test``,
  ``y_test`` are read too.

Images (``[n, ...]``) are flattened to ``[n, d]``; uint8 pixels are scaled to [0, 1]
(``/ 255``), floating inputs are kept as they are and must be finite. Labels must be
non-negative integers; the number of classes is one more than the largest label.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from .dataset import DataError, DataNotFoundError, Dataset, check_labels, pixels_to_inputs
from .idx import read_idx

__all__ = ["LAYOUTS", "user_data", "user_splits"]

#: What a user's data may look like, for the messages.
LAYOUTS = (
    "a folder with train-images-idx3-ubyte + train-labels-idx1-ubyte and/or "
    "t10k-images-idx3-ubyte + t10k-labels-idx1-ubyte (each raw or .gz), "
    "or a .npz file with X, y and optionally X_test, y_test"
)
#: Split -> the IDX (images, labels) stems of a folder.
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Split -> the accepted (inputs, labels) key pairs of a .npz, in order of preference.
_NPZ_KEYS = {
    "train": (("X", "y"), ("x_train", "y_train")),
    "test": (("X_test", "y_test"), ("x_test", "y_test")),
}


def user_splits(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The splits (``"train"``, ``"test"``) that the folder or ``.npz`` at ``path`` holds.

    Only names are looked at (for a ``.npz``, its member list), nothing is parsed.

    Raises
    ------
    DataNotFoundError
        If ``path`` does not exist, or holds neither split; the message names what is
        missing and the accepted layouts.
    DataError
        If a ``.npz`` cannot be opened as one.
    """
    path = Path(path)
    if path.is_dir():
        have = tuple(s for s, stems in _IDX_STEMS.items() if _idx_pair(path, stems) is not None)
        if not have:
            present = sorted(p.name for p in path.iterdir())[:6]
            raise DataNotFoundError(
                f"{path}: no IDX image/label pair found (the folder holds "
                f"{', '.join(present) or 'nothing'}); expected {LAYOUTS}"
            )
        return have
    if path.is_file():
        names = _npz_members(path)
        have = tuple(s for s, pairs in _NPZ_KEYS.items() if _npz_pair(names, pairs) is not None)
        if "train" not in have:
            raise DataNotFoundError(
                f"{path}: holds {', '.join(sorted(names)) or 'no arrays'}, not X and y; "
                f"expected {LAYOUTS}"
            )
        return have
    raise DataNotFoundError(f"{path}: no such file or folder; expected {LAYOUTS}")


def user_data(path: str | os.PathLike[str], split: str, dtype: np.dtype) -> Dataset:
    """Read split ``"train"``, ``"test"`` or ``"all"`` (train then test) of a user's data.

    Returns
    -------
    Dataset
        ``name="user"``, ``source="path"``, ``location`` the absolute path.

    Raises
    ------
    DataNotFoundError
        If the split is not there (see :func:`user_splits`).
    DataError
        If a file is malformed: an IDX error, images and labels of different counts,
        labels that are not non-negative integers, non-finite inputs, or splits with
        different numbers of features.
    """
    path = Path(path).resolve()
    have = user_splits(path)
    parts = list(have) if split == "all" else [split]
    missing = [p for p in parts if p not in have]
    if missing:
        raise DataNotFoundError(
            f"{path}: holds only the {' and '.join(have)} split, not {missing[0]}; "
            f"expected {LAYOUTS}"
        )
    hasher = hashlib.sha256()
    read = _read_folder if path.is_dir() else _read_npz
    if read is _read_npz:
        hasher.update(path.read_bytes())
    Xs, ys = zip(*(read(path, part, hasher, dtype) for part in parts), strict=True)
    if len({X.shape[1] for X in Xs}) > 1:
        raise DataError(
            f"{path}: the train split has {Xs[0].shape[1]} features per example but the "
            f"test split {Xs[1].shape[1]}"
        )
    return Dataset(
        X=np.ascontiguousarray(np.concatenate(Xs)),
        y=np.concatenate(ys),
        source="path",
        location=str(path),
        sha256=hasher.hexdigest(),
        name="user",
        split=split,
    )


def _idx_pair(folder: Path, stems: tuple[str, str]) -> tuple[Path, Path] | None:
    found = []
    for stem in stems:
        hits = [folder / n for n in (stem, f"{stem}.gz") if (folder / n).is_file()]
        if not hits:
            return None
        found.append(hits[0])
    return found[0], found[1]


def _read_folder(folder: Path, split: str, hasher, dtype: np.dtype):
    images, labels = _idx_pair(folder, _IDX_STEMS[split])
    X = read_idx(images, hasher=hasher)
    y = read_idx(labels, ndim=1, hasher=hasher)
    return _inputs(X, y, images, labels, dtype)


def _npz_members(path: Path) -> set[str]:
    try:
        with zipfile.ZipFile(path) as z:
            return {n.removesuffix(".npy") for n in z.namelist()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a .npz file ({exc}); expected {LAYOUTS}") from exc


def _npz_pair(names: set[str], pairs) -> tuple[str, str] | None:
    return next((p for p in pairs if set(p) <= names), None)


def _read_npz(path: Path, split: str, hasher, dtype: np.dtype):
    """One split of a .npz; ``hasher`` is not updated (:func:`user_data` hashes the file
    once, whichever splits it reads).
    """
    raw = path.read_bytes()
    kx, ky = _npz_pair(_npz_members(path), _NPZ_KEYS[split])
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            X, y = npz[kx], npz[ky]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read {kx}/{ky} ({exc})") from exc
    return _inputs(X, y, f"{path}[{kx}]", f"{path}[{ky}]", dtype)


def _inputs(X: np.ndarray, y: np.ndarray, xname, yname, dtype: np.dtype):
    """Flattened inputs in ``dtype`` and int64 labels, both checked."""
    if X.ndim < 2 or not (X.dtype == np.uint8 or X.dtype.kind == "f"):
        raise DataError(
            f"{xname}: inputs must be uint8 pixels or floats of shape [n, ...], "
            f"got {X.dtype} {X.shape}"
        )
    y = check_labels(y, None, yname, len(X), xname)
    if X.dtype == np.uint8:
        return pixels_to_inputs(X, dtype), y
    if not np.isfinite(X).all():
        raise DataError(f"{xname}: inputs hold NaN or infinite values")
    return np.ascontiguousarray(X.reshape(len(X), -1), dtype=dtype), y
