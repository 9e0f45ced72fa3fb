"""Data for sgdcore: MNIST from wherever it already is, Fashion-MNIST, synthetic data.

Loaders return a :class:`Dataset` (inputs ``X [n, d]`` in [0, 1], labels ``y``, and
where they came from); :mod:`~sgdcore.data.splits` draws the paper's training and
test sets from it. See :mod:`~sgdcore.data.sources` for the order in which MNIST is
looked for. Nothing here touches the network except a download that :func:`mnist`
starts when no local copy exists.
"""

from .dataset import DataError, Dataset
from .idx import read_idx, read_idx_pair
from .sources import (
    Source,
    fashion_mnist,
    fashion_mnist_source,
    mnist,
    mnist_source,
    torchvision_roots,
)
from .splits import binary_subset, randomize_labels, subset
from .synthetic import synthetic

__all__ = [
    "DataError",
    "Dataset",
    "Source",
    "binary_subset",
    "fashion_mnist",
    "fashion_mnist_source",
    "mnist",
    "mnist_source",
    "randomize_labels",
    "read_idx",
    "read_idx_pair",
    "subset",
    "synthetic",
    "torchvision_roots",
]
