"""The runner behind ``sgdcore.sweep.run``: expand a spec, run its unfinished groups, store
each as it ends.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import environment
from .executors import (
    CONNECT_TIMEOUT,
    EXECUTORS,
    connect,
    local_cluster,
    require_dask,
    run_dask,
    run_local,
)
from .groups import make_groups
from .inputs import arrays_sha256, load_data, n_classes_of
from .progress import Progress
from .spec import SweepSpec
from .store import FORMAT, FORMAT_VERSION, ResultStore

__all__ = ["plan", "run"]


def plan(spec: SweepSpec, data=None):
    """The data, groups and manifest a sweep of ``spec`` would use.

    Parameters
    ----------
    spec : SweepSpec
    data : (train, test) pair of sgdcore.data.Dataset, optional
        The sets to train on; by default drawn by :func:`~sgdcore.sweep.load_data`
        from ``spec.data``.

    Returns
    -------
    arrays : tuple
        ``(X_train, y_train, X_test, y_test)`` in the spec's dtype.
    groups : list of Group
    manifest : dict
        What the result store records: format and version, the spec and its
        SHA-256, the environment (sgdcore version, backend, machine), the data
        (source, location, SHA-256 of the source files and of the arrays drawn) and
        the groups.
    """
    train, test = load_data(spec.data, spec.dtype) if data is None else data
    dtype = np.dtype(spec.dtype)
    arrays = (
        np.ascontiguousarray(train.X, dtype=dtype),
        np.ascontiguousarray(train.y, dtype=np.int64),
        np.ascontiguousarray(test.X, dtype=dtype),
        np.ascontiguousarray(test.y, dtype=np.int64),
    )
    if spec.data["n_train"] != len(train):
        raise ValueError(
            f"the training set has {len(train)} examples but the spec's data.n_train is "
            f"{spec.data['n_train']}"
        )
    n_classes = n_classes_of(train, test)
    groups = make_groups(spec, arrays[0].shape[1], n_classes)
    env = environment(spec.backend, train)
    env["backend_resolved"] = _resolved_backend(spec, arrays[0].shape[1], n_classes)
    data_info = {
        "train": env.pop("data"),
        "test": environment(None, test)["data"],
        "arrays_sha256": arrays_sha256(*arrays),
        "n_features": int(arrays[0].shape[1]),
        "n_classes": n_classes,
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "spec": spec.to_dict(),
        "spec_sha256": spec.sha256,
        "environment": env,
        "data": data_info,
        "n_runs": sum(g.size for g in groups),
        "groups": [
            {
                "id": g.id,
                "batch_size": g.batch_size,
                "steps": g.steps,
                "size": g.size,
                "n_rows": g.n_rows,
            }
            for g in groups
        ],
    }
    return arrays, groups, manifest


def _resolved_backend(spec: SweepSpec, n_features: int, n_classes: int):
    """The engine backend ``spec.backend`` resolves to here (None if none is usable);
    each group file records the one that actually ran (it may differ on Dask workers).
    """
    from .._backend import BackendUnavailable, resolve
    from .inputs import build_model

    kind = build_model(spec.model, n_features, n_classes).kind
    try:
        return resolve(spec.backend, quantity="train", kind=kind)
    except (BackendUnavailable, ValueError):
        return None


def run(
    spec: SweepSpec | dict | str | os.PathLike,
    store,
    executor: str = "local",
    client=None,
    *,
    scheduler=None,
    connect_timeout: float = CONNECT_TIMEOUT,
    progress: bool | None = None,
    data=None,
    log=None,
) -> pd.DataFrame:
    """Run a sweep into a result store, resuming whatever an earlier run left.

    The spec is expanded into groups (:func:`~sgdcore.sweep.make_groups`); groups whose
    file is already in the store are skipped, the others are trained and each is
    written atomically the moment it finishes. Rerunning the same call after a crash
    or a kill therefore finishes the sweep without redoing or duplicating anything.

    Parameters
    ----------
    spec : SweepSpec, dict or path to a TOML file
    store : str or os.PathLike
        The result store folder (created if missing; see :mod:`~sgdcore.sweep.store`).
    executor : {"local", "dask"}
        ``"local"`` trains groups one after another in this process; ``"dask"``
        submits each group as a task to a Dask cluster: the one ``scheduler`` names,
        or else a ``LocalCluster`` started for the sweep, sized to this machine (see
        :func:`~sgdcore.sweep.executors.local_slices`) and closed at the end (its
        worker processes are spawned: in a script, call this under
        ``if __name__ == "__main__":``).
    client : distributed.Client, optional
        For ``executor="dask"``: the same as passing it as ``scheduler``.
    scheduler : str or distributed.Client, optional
        For ``executor="dask"``: a scheduler address such as ``tcp://HOST:8786``
        (the scheduler is reached before the store is touched), or a client to use.
    connect_timeout : float
        Seconds to wait for the scheduler at ``scheduler`` to answer.
    progress : bool, optional
        Draw a progress bar on stderr; by default exactly when stderr is a terminal.
    data : (train, test) pair of sgdcore.data.Dataset, optional
        Train on these instead of the sets ``spec.data`` describes (they must have
        ``spec.data["n_train"]`` training examples); the store records their
        checksum like any other.
    log : callable, optional
        Called with a line of text saying how many groups there are and how many are
        left to run (the command line prints it).

    Returns
    -------
    pandas.DataFrame
        Every run's rows (see :func:`~sgdcore.sweep.load`), ordered by run and step.

    Raises
    ------
    StoreError
        If ``store`` is foreign, corrupt, in use, or made by another spec or data.
    SweepError
        If the Dask scheduler cannot be reached (nothing is written then), Dask is
        not installed, or groups failed under Dask (the others are stored).
    """
    if isinstance(spec, dict):
        spec = SweepSpec.from_dict(spec)
    elif not isinstance(spec, SweepSpec):
        spec = SweepSpec.from_toml(spec)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        if client is not None:
            raise ValueError("give a Dask client as client= or as scheduler=, not both")
        client, scheduler = scheduler, None
    if executor == "local" and (client is not None or scheduler is not None):
        raise ValueError("client/scheduler are for executor='dask'")
    if not (isinstance(connect_timeout, (int, float)) and 0 < connect_timeout < math.inf):
        raise ValueError(
            f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}"
        )
    if executor == "dask":
        require_dask()
    arrays, groups, manifest = plan(spec, data)
    job = {
        "model": spec.model,
        "dtype": spec.dtype,
        "backend": spec.backend,
        "n_classes": manifest["data"]["n_classes"],
    }
    with contextlib.ExitStack() as stack:
        if scheduler is not None:  # an unreachable scheduler must not leave a store behind
            client = stack.enter_context(connect(scheduler, connect_timeout, log))
        stack.enter_context(_discard_if_unused(store))
        st = stack.enter_context(ResultStore.open(store, manifest))
        done = st.finished()
        todo = [g for g in groups if g.id not in done]
        if log is not None:
            log(
                f"sweep {spec.name!r}: {len(groups)} groups ({manifest['n_runs']} runs), "
                f"{len(groups) - len(todo)} finished, {len(todo)} to run; store {st.path}"
            )
        if executor == "dask" and client is None and todo:
            client = stack.enter_context(local_cluster(len(todo), log))
        bar = Progress(
            len(groups),
            done=len(groups) - len(todo),
            enabled=progress,
            work=sum(g.size * g.steps for g in todo),
        )
        try:
            if executor == "local":
                results = run_local(todo, job, arrays, bar)
            else:
                results = run_dask(todo, job, arrays, client)
            for group, df, info in results:
                st.write_group(group.id, df, info)
                if executor == "dask":
                    bar.start_group(group.describe(), 0)
                bar.finish_group(group.size * group.steps)
        finally:
            bar.close()
        df = st.read()
    df.attrs["manifest"] = st.manifest
    df.attrs["complete"] = True
    return df


@contextmanager
def _discard_if_unused(store):
    """After a failure (or Ctrl-C) that came before any group was written, leave the
    disk as it was: remove the store folder and the parents of it that this sweep
    created, or empty it again if it was an empty folder.
    """
    store = Path(store).absolute()
    missing = []
    path = store
    while not path.exists():
        missing.append(path)
        path = path.parent
    was_empty = store.is_dir() and not any(store.iterdir())
    try:
        yield
    except BaseException:
        if not any((store / "groups").glob("*.parquet")):
            if missing:
                shutil.rmtree(missing[0], ignore_errors=True)
                for folder in missing[1:]:
                    try:
                        folder.rmdir()
                    except OSError:  # no longer empty: something else wrote into it
                        break
            elif was_empty:
                for item in store.iterdir():
                    if item.is_dir():
                        shutil.rmtree(item)
                    else:
                        item.unlink(missing_ok=True)
        raise
