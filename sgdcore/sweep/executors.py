"""Running groups: in this process (``local``) or on a Dask cluster (``dask``).

Both executors take the groups still to run and yield ``(group, table, info)`` as
each finishes; the caller writes each into the result store at once, so whatever
finished before a crash or a kill is kept. With Dask, the training data are
scattered to the workers once, each group is one task, and results come back to the
client, which alone writes the store (workers need no shared file system).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np

from .groups import Group
from .inputs import build_model

__all__ = ["EXECUTORS", "SweepError", "run_group"]

EXECUTORS = ("local", "dask")


class SweepError(RuntimeError):
    """One or more groups of a sweep failed; finished groups were kept."""


def run_group(group: Group, job: dict, arrays, progress=None):
    """Train one group with :func:`sgdcore.train` and label its rows.

    Parameters
    ----------
    group : Group
    job : dict
        ``model`` (spec table), ``dtype``, ``backend``, ``n_classes``.
    arrays : tuple
        ``(X_train, y_train, X_test, y_test)``.
    progress : callable, optional
        Passed to :func:`sgdcore.train` (called with the number of steps done).

    Returns
    -------
    df : pandas.DataFrame
        The engine's table plus ``run`` (index in :meth:`SweepSpec.expand`),
        ``group`` (the group id) and ``total_steps``.
    info : dict
        ``backend`` (as resolved by the engine) and ``seconds`` (wall time).
    """
    from ..train import train

    X, y, Xt, yt = arrays
    model = build_model(job["model"], X.shape[1], job["n_classes"])
    runs = group.runs
    pool = X.shape[0]
    n_train = [pool if r["n_train"] is None else r["n_train"] for r in runs]
    label_seeds = [None if r["label_seed"] < 0 else r["label_seed"] for r in runs]
    start = time.perf_counter()
    df = train(
        model,
        (X, y),
        (Xt, yt),
        batch_size=group.batch_size,
        lr=[r["lr"] for r in runs],
        momentum=[r["momentum"] for r in runs],
        l2=[r["l2"] for r in runs],
        steps=group.steps,
        seeds=[r["seed"] for r in runs],
        eval_steps=list(group.eval_steps),
        n_train=None if all(n == pool for n in n_train) else n_train,
        label_seeds=None if all(s is None for s in label_seeds) else label_seeds,
        dtype=np.dtype(job["dtype"]),
        backend=job["backend"],
        progress=progress,
    )
    seconds = time.perf_counter() - start
    info = {"backend": df.attrs.get("backend", job["backend"]), "seconds": seconds}
    df = df.copy()
    df.attrs = {}
    df.insert(0, "run", np.array([r["run"] for r in runs], dtype=np.int64)[df["model"].to_numpy()])
    df["group"] = group.id
    df["total_steps"] = np.int64(group.steps)
    return df, info


def run_local(groups: list[Group], job: dict, arrays, bar=None) -> Iterator:
    """Run groups one after another in this process; yields ``(group, df, info)``."""
    for group in groups:
        if bar is not None:
            bar.start_group(group.describe(), group.steps, group.size)
        df, info = run_group(group, job, arrays, progress=bar)
        yield group, df, info


def run_dask(groups: list[Group], job: dict, arrays, client=None, scheduler=None) -> Iterator:
    """Submit every group to a ``distributed.Client``; yields ``(group, df, info)`` as
    tasks finish (in completion order).

    Parameters
    ----------
    client : distributed.Client, optional
        The cluster to use.
    scheduler : str, optional
        Address of a scheduler to connect to when ``client`` is not given (a client
        made here is closed at the end).

    Raises
    ------
    SweepError
        After every other task has finished, if any failed (naming the groups).
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError(
            "executor='dask' needs Dask's distributed scheduler: pip install 'dask[distributed]'"
        ) from None
    own = client is None
    if own:
        if scheduler is None:
            raise ValueError("executor='dask' needs a client= or a scheduler address")
        client = Client(scheduler)
    try:
        data = client.scatter(list(arrays), broadcast=True)
        token = uuid.uuid4().hex[:8]
        futures = {
            client.submit(
                _task, group, job, *data, key=f"sgdcore-{group.id}-{token}", pure=False
            ): group
            for group in groups
        }
        failures = []
        for fut in as_completed(list(futures)):
            group = futures[fut]
            if fut.status == "error":
                exc = fut.exception()
                failures.append(f"{group.id} ({group.describe()}): {type(exc).__name__}: {exc}")
                continue
            df, info = fut.result()
            yield group, df, info
        if failures:
            raise SweepError(
                f"{len(failures)} group(s) failed; the others were stored:\n  "
                + "\n  ".join(failures)
            )
    finally:
        if own:
            client.close()


def _task(group, job, X, y, Xt, yt):
    return run_group(group, job, (X, y, Xt, yt))
