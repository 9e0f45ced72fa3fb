"""The data and model a sweep spec names, built the same way on every machine."""

from __future__ import annotations

import hashlib

import numpy as np

from .. import data as _data
from ..models import MLP, LogisticRegression, Model

__all__ = ["arrays_sha256", "build_model", "load_data", "n_classes_of"]


def load_data(spec_data: dict, dtype="float32"):
    """Draw the training and test sets a spec's ``data`` table describes.

    * ``"mnist"``, ``"fashion-mnist"`` or a path: the pools
      :func:`sgdcore.data.load_pools` gives for the table's ``split`` (by default the
      training set from the train split and the test set, ``n_test`` examples or all
      of it, from the test split; both from one pool where there is one, as for the
      5,000 offline MNIST digits: ``n_train`` for training and ``n_test`` (default:
      all the rest) for testing, disjoint). Nothing is downloaded unless
      ``download`` is true; ``offline_ok`` lets a failed download fall back to the
      offline digits.
    * ``"synthetic"``: a pool of ``n_train + n_test`` (default ``n_test`` 4,000)
      teacher-labelled examples from :func:`sgdcore.data.synthetic`.

    With ``digits = [a, b]`` the sets are balanced two-class subsets
    (:func:`sgdcore.data.binary_subset`, labels 0/1). ``seed`` seeds the draw.

    Returns
    -------
    train, test : sgdcore.data.Dataset

    Raises
    ------
    sgdcore.data.DataError
        If the data cannot be read, or hold fewer examples than asked for (the message
        says how many there are and how to get more).
    """
    dtype = np.dtype(dtype)
    name, n_train, n_test, seed = (spec_data[k] for k in ("name", "n_train", "n_test", "seed"))
    if name == "synthetic":
        n_pool = n_train + (4000 if n_test is None else n_test)
        pools = _data.Pools(_data.synthetic(n_pool, seed, dtype=dtype))
    else:
        pools = _data.load_pools(
            name,
            spec_data.get("split", "auto"),
            download=spec_data.get("download", False),
            offline_ok=spec_data.get("offline_ok", False),
            dtype=dtype,
            origin="data.name",
        )
    digits = spec_data.get("digits")
    try:
        if digits is not None:
            return _data.binary_subset(
                pools.train,
                tuple(digits),
                n_train,
                n_test,
                balanced=True,
                seed=seed,
                test=pools.test,
            )
        return _data.subset(pools.train, n_train, n_test, seed, test=pools.test)
    except ValueError as exc:
        raise _data.too_few(exc, pools) from None


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
