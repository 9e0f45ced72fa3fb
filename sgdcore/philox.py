"""Philox4x32-10 and the mini-batch schedule every backend shares.

The counter-based generator of Salmon et al. (SC 2011), vectorised with ``uint64``
arithmetic, and the schedule :func:`sgdcore.train` draws its mini-batches from. The same
algorithm is written in C++ (``csrc/common/philox.h``) and Numba
(``sgdcore/kernels/_numba/train.py``), so every backend trains on identical batches.

The schedule of a model with seed ``s`` (``0 <= s < 2**64``) on ``n`` examples:

* key ``(s mod 2**32, s >> 32)``; counter ``(i, epoch, STREAM_BATCHES, attempt)``;
* epoch ``e``'s permutation: start from ``0..n-1``; for ``i = n-1`` down to ``1`` draw
  ``j`` uniform in ``[0, i]`` from the four words of the blocks ``attempt = 0, 1, ...``
  (Lemire's multiply-shift with rejection, so ``j`` is exactly uniform) and swap
  ``perm[i]`` with ``perm[j]`` (Fisher-Yates);
* the index stream is ``perm_0 ++ perm_1 ++ ...``; batch ``t`` is stream positions
  ``[t*B, (t+1)*B)``, so a batch may straddle two epochs and every example is used once
  per epoch.
"""

from __future__ import annotations

import numpy as np

from ._validate import check_int, is_int

__all__ = [
    "STREAM_BATCHES",
    "BatchStream",
    "batch_indices",
    "epoch_permutation",
    "philox4x32_10",
    "swap_partners",
]

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
#: Counter word 2 of the mini-batch stream ("SGDB").
STREAM_BATCHES = 0x53474442
_MASK = np.uint64(0xFFFFFFFF)
_MAX_SEED = 2**64
_MAX_N = 2**32 - 1


def philox4x32_10(counter, key) -> np.ndarray:
    """Philox4x32-10 of a batch of counters under one key.

    Parameters
    ----------
    counter : array_like of uint32, shape (..., 4)
    key : array_like of uint32, shape (2,)

    Returns
    -------
    ndarray of uint32, shape (..., 4)
        The four output words of each counter.

    Examples
    --------
    Random123's known answer for a zero counter and key:

    >>> [hex(w) for w in philox4x32_10([0, 0, 0, 0], [0, 0])]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c = np.asarray(counter, dtype=np.uint64)
    if c.shape[-1:] != (4,):
        raise ValueError(f"counter must have shape (..., 4), got {c.shape}")
    k = np.asarray(key, dtype=np.uint64)
    if k.shape != (2,):
        raise ValueError(f"key must have shape (2,), got {k.shape}")
    x0, x1, x2, x3 = (c[..., q] & _MASK for q in range(4))
    k0, k1 = int(k[0]) & 0xFFFFFFFF, int(k[1]) & 0xFFFFFFFF
    m0, m1 = np.uint64(M0), np.uint64(M1)
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
        p0, p1 = m0 * x0, m1 * x2  # exact: both factors < 2**32
        x0, x1, x2, x3 = (
            (p1 >> np.uint64(32)) ^ x1 ^ np.uint64(k0),
            p1 & _MASK,
            (p0 >> np.uint64(32)) ^ x3 ^ np.uint64(k1),
            p0 & _MASK,
        )
    return np.stack([x0, x1, x2, x3], axis=-1).astype(np.uint32)


def _key(seed: int) -> tuple[int, int]:
    return seed & 0xFFFFFFFF, seed >> 32


def _check_seed(seed) -> int:
    if not is_int(seed):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def swap_partners(seed: int, epoch: int, positions) -> np.ndarray:
    """Fisher-Yates partners: ``j`` uniform in ``[0, i]`` for each position ``i``.

    Parameters
    ----------
    seed : int in [0, 2**64)
    epoch : int in [0, 2**32)
    positions : array_like of int, each in [1, 2**32 - 1)

    Returns
    -------
    ndarray of int64, same shape as ``positions``
    """
    seed = _check_seed(seed)
    epoch = check_int("epoch", epoch, 0, 2**32 - 1)
    i = np.asarray(positions, dtype=np.int64)
    if i.size and (i.min() < 1 or i.max() >= _MAX_N):
        raise ValueError("positions must lie in [1, 2**32 - 1)")
    shape = i.shape
    i = i.ravel().astype(np.uint64)
    s = i + np.uint64(1)
    threshold = (np.uint64(2**32) - s) % s
    key = _key(seed)
    out = np.empty(i.size, dtype=np.uint64)
    todo = np.arange(i.size)
    attempt = 0
    while todo.size:
        ctr = np.zeros((todo.size, 4), dtype=np.uint64)
        ctr[:, 0] = i[todo]
        ctr[:, 1] = epoch
        ctr[:, 2] = STREAM_BATCHES
        ctr[:, 3] = attempt
        words = philox4x32_10(ctr, key).astype(np.uint64)
        m = words * s[todo, None]  # < 2**64
        ok = (m & _MASK) >= threshold[todo, None]
        found = ok.any(axis=1)
        first = np.argmax(ok, axis=1)
        rows = np.flatnonzero(found)
        out[todo[rows]] = m[rows, first[rows]] >> np.uint64(32)
        todo = todo[~found]
        attempt += 1
    return out.astype(np.int64).reshape(shape)


def epoch_permutation(seed: int, n: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s permutation of ``range(n)`` for a model with ``seed``.

    Parameters
    ----------
    seed : int in [0, 2**64)
    n : int in [1, 2**32 - 1]
    epoch : int in [0, 2**32)

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    seed = _check_seed(seed)
    n = check_int("n", n, 1, _MAX_N)
    epoch = check_int("epoch", epoch, 0, 2**32 - 1)
    perm = list(range(n))
    if n > 1:
        js = swap_partners(seed, epoch, np.arange(1, n)).tolist()
        for i in range(n - 1, 0, -1):
            j = js[i - 1]
            perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.int64)


def batch_indices(seed: int, n: int, batch_size: int, steps: int) -> np.ndarray:
    """The mini-batches :func:`sgdcore.train` draws for one model.

    Batch ``t`` holds the stream positions ``[t*B, (t+1)*B)`` of the concatenated
    per-epoch permutations (sampling without replacement within an epoch).

    Parameters
    ----------
    seed : int in [0, 2**64)
        The model's seed.
    n : int
        Number of training examples the model draws from (its ``n_train``).
    batch_size : int in [1, n]
    steps : int >= 0

    Returns
    -------
    ndarray of int64, shape (steps, batch_size)
        Row ``t`` holds the indices into the training set of step ``t``'s batch.

    Examples
    --------
    Every example appears exactly once per epoch:

    >>> idx = batch_indices(seed=3, n=10, batch_size=5, steps=4)
    >>> sorted(idx[:2].ravel().tolist()) == list(range(10))
    True
    """
    seed = _check_seed(seed)
    n = check_int("n", n, 1, _MAX_N)
    batch_size = check_int("batch_size", batch_size, 1, n)
    steps = check_int("steps", steps, 0)
    total = steps * batch_size
    n_epochs = -(-total // n)
    if n_epochs > 2**32:
        raise ValueError("steps * batch_size / n exceeds 2**32 epochs")
    stream = np.empty(n_epochs * n, dtype=np.int64)
    for e in range(n_epochs):
        stream[e * n : (e + 1) * n] = epoch_permutation(seed, n, e)
    return stream[:total].reshape(steps, batch_size)


class BatchStream:
    """The index stream of one model, read batch by batch (one epoch held at a time).

    ``BatchStream(seed, n).next(b)`` returns the next ``b`` indices; successive calls
    with ``b = B`` give the rows of ``batch_indices(seed, n, B, steps)``.
    """

    def __init__(self, seed: int, n: int):
        self.seed = _check_seed(seed)
        self.n = check_int("n", n, 1, _MAX_N)
        self.epoch = 0
        self.pos = 0
        self._perm = epoch_permutation(self.seed, self.n, 0)

    def next(self, b: int) -> np.ndarray:
        """The next ``b`` indices of the stream, shape (b,), int64."""
        out = np.empty(b, dtype=np.int64)
        filled = 0
        while filled < b:
            if self.pos == self.n:
                self.epoch += 1
                self.pos = 0
                self._perm = epoch_permutation(self.seed, self.n, self.epoch)
            take = min(b - filled, self.n - self.pos)
            out[filled : filled + take] = self._perm[self.pos : self.pos + take]
            filled += take
            self.pos += take
        return out
