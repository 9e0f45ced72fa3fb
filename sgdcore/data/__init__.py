"""Data for sgdcore: MNIST from wherever it already is, Fashion-MNIST, a user's own data,
synthetic data.

Loaders return a :class:`Dataset` (inputs ``X [n, d]`` in [0, 1], labels ``y``, and
where they came from); :mod:`~sgdcore.data.splits` draws the paper's training and
test sets from it. See :mod:`~sgdcore.data.sources` for the order in which MNIST is
looked for, :mod:`~sgdcore.data.user` for the layouts a user's data may have, and
:func:`load_pools` for the one way experiments and sweeps name their data (``"mnist"``,
``"fashion-mnist"`` or a path, and a split). Nothing here touches the network unless a
download is asked for (``download=True``, ``--download``).
"""

from .dataset import DataError, DataNotFoundError, Dataset, DataWarning
from .idx import read_idx, read_idx_pair
from .resolve import NAMES, SPLITS, Pools, check_data, describe, load_pools, too_few
from .sources import (
    Source,
    fashion_mnist,
    fashion_mnist_source,
    mnist,
    mnist_source,
    torchvision_roots,
)
from .splits import binary_subset, randomize_labels, subset
from .teacher import synthetic
from .user import LAYOUTS, user_data

__all__ = [
    "LAYOUTS",
    "NAMES",
    "SPLITS",
    "DataError",
    "DataNotFoundError",
    "DataWarning",
    "Dataset",
    "Pools",
    "Source",
    "binary_subset",
    "check_data",
    "describe",
    "fashion_mnist",
    "fashion_mnist_source",
    "load_pools",
    "mnist",
    "mnist_source",
    "randomize_labels",
    "read_idx",
    "read_idx_pair",
    "subset",
    "synthetic",
    "too_few",
    "torchvision_roots",
    "user_data",
]
