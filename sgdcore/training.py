"""Train a group of models with SGD at once: the engine behind sweeps and experiments.

:func:`train` runs K models that share one batch size, each with its own seed, learning
rate, momentum, L2 coefficient, training-set size and labels, and returns a tidy table of
their test accuracy and cross-entropies at the evaluation steps. The update is the
paper's (DESIGN.md), heavy-ball momentum with a constant learning rate::

    g = (1/B) sum_{i in batch} dCE_i/dtheta + (l2 / n_k) theta
    v = m v - lr g            (v starts at 0)
    theta = theta + v

Mini-batches are drawn without replacement within an epoch from the Philox schedule of
:mod:`sgdcore.philox`, so every backend trains on identical batches. Backends: ``numpy``
(the reference engine), ``numba`` (compiled steps, models in parallel over Numba's
threads) and ``cpp`` (the whole run is one call into ``sgdcore._cpu``, models in parallel
over an OpenMP team); both compiled engines run BLAS single-threaded inside each model.

Determinism: for a fixed seed, dtype, backend and data, a model's trajectory and every
number reported for it are bitwise the same whatever the evaluation schedule, the number
of threads, the other models of its group and the runs before it (evaluations only read
the parameters; every sum is taken in an order fixed by the data and the model alone).

Divergence: every engine freezes a model at the first step whose mini-batch loss is
NaN/inf. An evaluation row is flagged ``diverged`` when its model is frozen, when one of
its metrics is not finite, or when its test or training cross-entropy exceeds
``DIVERGENCE_FACTOR * ln C`` = 10 ln C (C classes; ln C is the cross-entropy of the
uniform prediction, about where training starts). The rule lives in one place,
:func:`diverged`, applied to the table whatever the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import _validate as v
from ._backend import get_kernel
from .kernels.contracts import TrainJob
from .philox import _MAX_N, _check_seed
from .theory import noise_scale

__all__ = ["DIVERGENCE_FACTOR", "diverged", "train"]

#: An evaluation whose test or training cross-entropy (mean, in nats) exceeds this many
#: times ln C flags its model diverged: 10 ln C = 23.0 for ten classes, 6.9 for a binary
#: model, far above any model that is still learning, yet finite (a run at lr = 1e6
#: reaches a test cross-entropy of about 4e5 without overflowing).
DIVERGENCE_FACTOR = 10.0

COLUMNS = [
    "model",
    "seed",
    "lr",
    "momentum",
    "l2",
    "batch_size",
    "n_train",
    "label_seed",
    "noise_scale",
    "step",
    "epoch",
    "test_accuracy",
    "test_cross_entropy",
    "train_cross_entropy",
    "diverged",
]


def _per_model(name: str, value, K: int, *, lo: float, hi: float | None = None) -> np.ndarray:
    """Broadcast a scalar or length-K sequence to float64 [K], checking its range."""
    try:
        arr = None if isinstance(value, str) else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != K):
        raise ValueError(f"{name} must be a number or a sequence of {K} numbers (one per seed)")
    arr = np.ascontiguousarray(np.broadcast_to(arr, (K,)), dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < lo) | ((arr >= hi) if hi is not None else False)
    if bad.any():
        rng = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}[{int(np.argmax(bad))}] = {arr[bad][0]} must be finite and {rng}")
    return arr


def _data(model, pair, name: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{name} must be a pair (X, y) of NumPy arrays")
    X, y = pair
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} X must be a NumPy array, got {type(X).__name__}")
    if X.dtype.kind != "f":
        raise TypeError(f"{name} X must hold floats, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=dtype)
    try:
        X = v.check_X(model, X, X.dtype)
        y = v.check_y(model, y, X.shape[0])
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    return X, y


def _eval_schedule(steps: int, eval_every, eval_steps) -> np.ndarray:
    if eval_every is not None and eval_steps is not None:
        raise ValueError("pass eval_every or eval_steps, not both")
    if eval_steps is not None:
        es = np.asarray(eval_steps)
        if es.ndim != 1 or es.size == 0 or es.dtype.kind not in "iu":
            raise ValueError("eval_steps must be a non-empty sequence of integers")
        if es.min() < 0 or es.max() > steps:
            raise ValueError(f"eval_steps must lie in [0, steps={steps}]")
        return np.unique(es).astype(np.int64)
    if eval_every is None:
        return np.unique(np.array([0, steps], dtype=np.int64))
    every = v.check_int("eval_every", eval_every, 1)
    return np.unique(np.append(np.arange(0, steps + 1, every), steps)).astype(np.int64)


def _seeds(seeds) -> np.ndarray:
    if isinstance(seeds, (int, np.integer)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise TypeError("seeds must be a sequence of integers (one per model)")
    if len(seeds) == 0:
        raise ValueError("seeds is empty: at least one model is needed")
    return np.array([_check_seed(s) for s in seeds], dtype=np.uint64)


def _n_train(n_train, K: int, N: int, B: int) -> np.ndarray:
    if n_train is None:
        out = np.full(K, N, dtype=np.int64)
    else:
        if np.ndim(n_train) != 1 or len(n_train) != K:
            raise ValueError(f"n_train must be None or a sequence of {K} integers")
        out = np.array([v.check_int("n_train", n, 1) for n in n_train], dtype=np.int64)
    if out.max() > N:
        raise ValueError(f"n_train = {out.max()} exceeds the {N} training examples")
    if out.max() > _MAX_N:
        raise ValueError(f"n_train must be below 2**32, got {out.max()}")
    if B > out.min():
        raise ValueError(
            f"batch_size = {B} exceeds the training-set size n_train = {out.min()} of a "
            "model; batch_size must lie in [1, n_train]"
        )
    return out


def _labels(model, y: np.ndarray, label_seeds, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-model training labels [K, N] and the label-seed column (-1: true labels)."""
    from .data import randomize_labels

    Y = np.empty((K, y.shape[0]), dtype=np.int64)
    col = np.full(K, -1, dtype=np.int64)
    if label_seeds is not None and (np.ndim(label_seeds) != 1 or len(label_seeds) != K):
        raise ValueError(f"label_seeds must be None or a sequence of {K} entries (None or int)")
    for k in range(K):
        s = None if label_seeds is None else label_seeds[k]
        if s is None:
            Y[k] = y
        else:
            col[k] = v.check_int("label_seeds entry", s, 0)
            Y[k] = randomize_labels(y, int(s), n_classes=model.n_classes)
    return Y, col


def _init(model, init, seeds: np.ndarray, dtype) -> np.ndarray:
    K = seeds.shape[0]
    if init is None:
        return np.stack([model.init(int(s), dtype) for s in seeds])
    if not isinstance(init, np.ndarray) or init.dtype.kind != "f":
        raise TypeError("init must be None or a float NumPy array of shape (K, P)")
    if init.shape != (K, model.n_params):
        raise ValueError(f"init must have shape ({K}, {model.n_params}), got {init.shape}")
    thetas = np.array(init, dtype=dtype, order="C", copy=True)
    v.check_finite("init", thetas)
    return thetas


def diverged(metrics: np.ndarray, frozen: np.ndarray, n_classes: int) -> np.ndarray:
    """Which evaluations flag their model diverged.

    Parameters
    ----------
    metrics : ndarray (n, 3)
        Test accuracy, test cross-entropy and training cross-entropy (means) per row.
    frozen : ndarray of bool (n,)
        Whether the row's model was stopped by a non-finite mini-batch loss at or before
        the row's step.
    n_classes : int
        C, the number of classes.

    Returns
    -------
    ndarray of bool (n,)
        ``frozen``, or a metric that is not finite, or a test or training cross-entropy
        above ``DIVERGENCE_FACTOR * ln C``. Each row depends on its own evaluation only,
        so the flag does not depend on which other steps were evaluated.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([[0.9, 0.3, 0.2], [0.1, 40.0, 30.0], [0.1, np.nan, 0.5]])
    >>> diverged(m, np.array([False, False, False]), 10).tolist()
    [False, True, True]
    """
    limit = DIVERGENCE_FACTOR * np.log(n_classes)
    ce = metrics[:, 1:3]
    with np.errstate(invalid="ignore"):
        blown = ~(ce <= limit).all(axis=1)  # NaN compares False: counted as blown
    return np.asarray(frozen, dtype=bool) | blown | ~np.isfinite(metrics[:, 0])


def train(
    model,
    train,
    test,
    *,
    batch_size,
    lr,
    momentum=0.0,
    l2=0.0,
    steps,
    seeds,
    eval_every=None,
    eval_steps=None,
    n_train=None,
    label_seeds=None,
    init=None,
    dtype=np.float32,
    backend="auto",
    return_params=False,
    progress: Callable[[int], object] | None = None,
):
    """Train K models with mini-batch SGD at once and evaluate them along the way.

    Model ``k`` (one per entry of ``seeds``) trains on the first ``n_train[k]`` rows of
    ``train`` with its own labels, learning rate, momentum and L2 coefficient; all share
    ``batch_size``. Each step draws the next batch of its Philox schedule
    (:func:`sgdcore.philox.batch_indices`) and applies::

        g = (1/B) sum_{i in batch} dCE_i/dtheta + (l2 / n_k) theta
        v = m v - lr g,   theta = theta + v        (v starts at 0)

    i.e. SGD on the mean cost ``C / n_k`` with ``C = sum_i CE_i + (l2/2)|theta|^2``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    train : (X, y)
        ``X`` float array (N, D), cast once to ``dtype``; ``y`` int labels (N,).
    test : (X_test, y_test)
        The test set (M, D) and (M,); evaluated with its true labels.
    batch_size : int
        B, shared by the group; ``1 <= B <= n_train[k]``.
    lr, momentum, l2 : float or sequence of K floats
        Learning rate (>= 0), momentum in [0, 1), L2 coefficient (>= 0, summed-cost
        convention), broadcast over the models.
    steps : int
        Number of SGD steps.
    seeds : sequence of K ints in [0, 2**64)
        One model per seed: its initialisation (``model.init(seed)``) and batch schedule.
    eval_every : int, optional
        Evaluate at step 0, every ``eval_every`` steps and at the last step.
    eval_steps : sequence of ints, optional
        Evaluate exactly at these steps (in [0, steps]) instead. With neither, evaluate
        at step 0 and the last step.
    n_train : sequence of K ints, optional
        Model k trains on the first ``n_train[k]`` rows (default: all N).
    label_seeds : sequence of K (None or int), optional
        An int ``s`` replaces model k's training labels by
        ``sgdcore.data.randomize_labels(y, s)``; None keeps the true labels.
    init : ndarray (K, P), optional
        Initial parameters (default ``model.init(seed_k, dtype)``).
    dtype : {np.float32, np.float64}
        Precision of the parameters and the arithmetic.
    backend : str
        ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpp"``.
    return_params : bool
        Also return the final parameters.
    progress : callable, optional
        Called as ``progress(steps_done)`` after each evaluation and (cpp) about every
        0.2 s; an exception raised by it stops the run and propagates.

    Returns
    -------
    pandas.DataFrame
        One row per (model, evaluation step): ``model, seed, lr, momentum, l2,
        batch_size, n_train, label_seed`` (-1: true labels), ``noise_scale`` =
        ``lr/(1-m) * (n_train/B - 1)``, ``step``, ``epoch`` = ``step*B/n_train``,
        ``test_accuracy``, ``test_cross_entropy`` (mean), ``train_cross_entropy`` (mean
        over the model's own training rows and labels, without the L2 term),
        ``diverged``. A model whose mini-batch loss turns NaN/inf is frozen at that
        step; its rows from then on have ``diverged=True`` and NaN metrics (as do rows
        whose parameters are not finite). The other models go on. A row is also
        ``diverged`` when its test or training cross-entropy exceeds
        ``DIVERGENCE_FACTOR * ln C`` (10 ln C; its metrics are then kept): see
        :func:`diverged`.
    thetas : ndarray (K, P)
        Final parameters, only with ``return_params=True``.

    Examples
    --------
    With ``lr = 0`` nothing moves, so the training loss stays at its initial value:

    >>> import numpy as np, sgdcore
    >>> m = sgdcore.models.LogisticRegression(3)
    >>> X = np.eye(3); y = np.array([0, 1, 1])
    >>> df = sgdcore.train(m, (X, y), (X, y), batch_size=2, lr=0.0, steps=5, seeds=[0, 1],
    ...                    dtype=np.float64, backend="numpy")
    >>> df.groupby("model").train_cross_entropy.nunique().tolist()
    [1, 1]
    """
    import pandas as pd

    v.check_model(model)
    dtype = np.dtype(dtype)
    if dtype not in v.FLOATS:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    X, y = _data(model, train, "train", dtype)
    Xte, yte = _data(model, test, "test", dtype)
    N = X.shape[0]
    B = v.check_int("batch_size", batch_size, 1)
    steps = v.check_int("steps", steps, 0)
    seeds_arr = _seeds(seeds)
    K = seeds_arr.shape[0]
    lr_ = _per_model("lr", lr, K, lo=0.0)
    mom = _per_model("momentum", momentum, K, lo=0.0, hi=1.0)
    l2_ = _per_model("l2", l2, K, lo=0.0)
    nk = _n_train(n_train, K, N, B)
    evals = _eval_schedule(steps, eval_every, eval_steps)
    Y, label_col = _labels(model, y, label_seeds, K)
    thetas = _init(model, init, seeds_arr, dtype)
    if progress is not None and not callable(progress):
        raise TypeError("progress must be None or a callable taking the number of steps done")

    name, kernel = get_kernel(model, "train", backend, (X,))
    job = TrainJob(
        model=model,
        X=X,
        Y=Y,
        X_test=Xte,
        y_test=yte,
        thetas=thetas,
        seeds=seeds_arr,
        n_train=nk,
        lr=lr_,
        momentum=mom,
        l2=l2_,
        batch_size=B,
        steps=steps,
        evals=evals,
        progress=progress,
    )
    metrics, div_step = kernel(job)

    E = evals.shape[0]
    step = np.tile(evals, K)
    kk = np.repeat(np.arange(K), E)
    n_rep = nk[kk]
    frozen = (div_step[kk] >= 0) & (step >= div_step[kk])
    metrics = metrics.reshape(K * E, 3).copy()
    metrics[frozen] = np.nan
    flag = diverged(metrics, frozen, model.n_classes)
    seed_col = seeds_arr.astype(np.int64) if seeds_arr.max() < 2**63 else seeds_arr
    df = pd.DataFrame(
        {
            "model": kk,
            "seed": seed_col[kk],
            "lr": lr_[kk],
            "momentum": mom[kk],
            "l2": l2_[kk],
            "batch_size": np.full(K * E, B, dtype=np.int64),
            "n_train": n_rep,
            "label_seed": label_col[kk],
            "noise_scale": noise_scale(lr_[kk], n_rep, B, mom[kk]),
            "step": step,
            "epoch": step * B / n_rep,
            "test_accuracy": metrics[:, 0],
            "test_cross_entropy": metrics[:, 1],
            "train_cross_entropy": metrics[:, 2],
            "diverged": flag,
        },
        columns=COLUMNS,
    )
    df.attrs["backend"] = name
    return (df, thetas) if return_params else df
