"""Running groups: in this process (``local``) or on a Dask cluster (``dask``).

Both executors take the groups still to run and yield ``(group, table, info)`` as
each finishes; the caller writes each into the result store at once, so whatever
finished before a crash or a kill is kept. With Dask, the training data go to the
cluster once, each group is one task, and results come back to the client, which alone
writes the store: workers need sgdcore installed but neither the data files nor the
store's folder. The client is either connected to a running scheduler
(:func:`connect`) or made here on a ``LocalCluster`` sized to the machine
(:func:`local_cluster`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator

import numpy as np

from .._blas import cores
from .groups import Group
from .inputs import build_model

__all__ = [
    "CONNECT_TIMEOUT",
    "EXECUTORS",
    "SweepError",
    "connect",
    "local_cluster",
    "require_dask",
    "run_group",
]

EXECUTORS = ("local", "dask")
#: Seconds to wait for a Dask scheduler to answer (``--connect-timeout``).
CONNECT_TIMEOUT = 10.0


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
        ``backend`` (as resolved by the engine), ``seconds`` (wall time), and the
        ``host``, process id (``pid``) and number of ``cores`` it could use that
        trained the group.
    """
    from ..training import train

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
    info = {
        "backend": df.attrs.get("backend", job["backend"]),
        "seconds": seconds,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cores": cores(),
    }
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


def run_dask(groups: list[Group], job: dict, arrays, client) -> Iterator:
    """Submit every group to a ``distributed.Client``; yields ``(group, df, info)`` as
    tasks finish (in completion order).

    The training arrays go to the cluster once, as the result of a task of their own
    rather than as scattered data: a worker that dies (killed, out of memory) takes its
    copy with it, and the scheduler rebuilds that copy from the task and reruns the
    lost group on another worker (up to ``distributed.scheduler.allowed-failures``
    times); scattered data would be lost for good on a one-worker cluster. Each group
    is one task, and its result is yielded exactly once, however often it ran.

    Parameters
    ----------
    groups : list of Group
    job : dict
        As for :func:`run_group`.
    arrays : tuple
        ``(X_train, y_train, X_test, y_test)``.
    client : distributed.Client
        The cluster (see :func:`connect` and :func:`local_cluster`).

    Raises
    ------
    SweepError
        After every other task has finished, if any failed (naming the groups).
    """
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    with warnings.catch_warnings():
        # the arrays are sent once, on purpose (see above); distributed warns on any
        # task spec over 10 MB
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        data = client.submit(_arrays, *arrays, key=f"sgdcore-data-{token}", pure=False)
        futures = {
            client.submit(
                _task, group, job, data, key=f"sgdcore-{group.id}-{token}", pure=False
            ): group
            for group in groups
        }
    failed: dict[str, list[Group]] = {}  # the reason -> the groups that failed for it
    for fut in as_completed(list(futures), loop=client.loop):
        group = futures[fut]
        try:
            df, info = fut.result()
        except Exception as exc:  # the task's own error, or distributed's reason
            reason = f"{type(exc).__name__}: {str(exc).replace(str(fut.key), 'the task')}"
            if isinstance(exc, (ImportError, AttributeError)) or "cancelled" in str(exc):
                reason += (
                    " (the scheduler and every worker need sgdcore installed, the same "
                    "version as here)"
                )
            failed.setdefault(reason, []).append(group)
            continue
        yield group, df, info
    if failed:
        raise SweepError(_failure_message(failed, len(groups)))


def _failure_message(failed: dict, n_groups: int) -> str:
    """One line per distinct reason, naming the groups that failed for it."""
    n = sum(map(len, failed.values()))
    kept = "; the other groups were stored" if n < n_groups else ""
    lines = []
    for reason, gs in failed.items():
        names = ", ".join(f"{g.id} ({g.describe()})" for g in gs[:3])
        more = f" and {len(gs) - 3} more" if len(gs) > 3 else ""
        lines.append(f"{names}{more}: {reason}")
    head = f"{n} of {n_groups} group(s) failed{kept}"
    if len(lines) == 1:
        return f"{head}: {lines[0]}"
    return f"{head}:\n  " + "\n  ".join(lines)


def _arrays(*arrays):
    return arrays


def _task(group, job, arrays):
    return run_group(group, job, arrays)


# -- Dask clusters --------------------------------------------------------------------------


def require_dask():
    """The ``distributed`` package, or a SweepError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise SweepError(
            "the Dask executor needs Dask's distributed scheduler, which is not installed "
            "here: pip install 'sgdcore[dask]'"
        ) from None
    return distributed


@contextlib.contextmanager
def connect(address: str, timeout: float = CONNECT_TIMEOUT, log=None):
    """A ``distributed.Client`` connected to the scheduler at ``address``, closed on exit.

    Parameters
    ----------
    address : str
        The scheduler's address, such as ``tcp://HOST:8786`` (``dask scheduler``
        prints it).
    timeout : float
        Seconds to wait for the scheduler to answer.
    log : callable, optional
        Called with a line naming the scheduler and its number of workers.

    Raises
    ------
    SweepError
        If ``address`` is malformed or no scheduler answers there within ``timeout``.
    """
    distributed = require_dask()
    _check_address(address)
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # OSError on a timeout; others from whatever answered
        why = "" if isinstance(exc, OSError) else f" ({type(exc).__name__}: {exc})"
        raise SweepError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
            f"(--scheduler){why}; start one with `dask scheduler` and workers with "
            f"`dask worker {address}`, or leave out the scheduler address to run on a "
            "local cluster"
        ) from None
    try:
        if log is not None:
            n = len(client.nthreads())
            more = "" if n else f"; tasks wait until one joins (`dask worker {address}`)"
            log(f"Dask scheduler {address}: {n} worker(s){more}")
        yield client
    finally:
        client.close()


def _check_address(address: str) -> None:
    """Raise a SweepError unless ``address`` parses as a scheduler address (checked
    before a client is made: a client that fails on a malformed address hangs the
    interpreter's exit for twice its timeout).
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise SweepError(
            f"{address!r} is not a Dask scheduler address (--scheduler): {exc}; give one "
            "such as tcp://HOST:8786, as `dask scheduler` prints it"
        ) from None


def local_slices(n_groups: int) -> list[list[int]]:
    """How a local cluster shares this machine's cores among its workers.

    One worker per core while there are at least as many groups as cores; with fewer
    groups, one worker per group, each on an equal share of the cores. The training
    engines run their models in parallel over as many threads as their process may use
    cores, so each worker is confined to its share (Linux CPU affinity) and the
    engines' threads never oversubscribe the machine. Where affinity cannot be set,
    one worker gets every core.

    Parameters
    ----------
    n_groups : int
        Groups left to run (at least 1).

    Returns
    -------
    list of list of int
        One list of core ids per worker.
    """
    if not hasattr(os, "sched_setaffinity"):
        return [sorted(range(os.cpu_count() or 1))]
    cores = sorted(os.sched_getaffinity(0))
    n = max(1, min(len(cores), n_groups))
    return [part.tolist() for part in np.array_split(np.array(cores), n)]


@contextlib.contextmanager
def local_cluster(n_groups: int, log=None):
    """A ``distributed.Client`` on a new ``LocalCluster`` sized by :func:`local_slices`
    (worker processes, one task at a time each); both are closed on exit.

    Parameters
    ----------
    n_groups : int
        Groups left to run.
    log : callable, optional
        Called with a line describing the cluster.
    """
    distributed = require_dask()
    slices = local_slices(n_groups)
    with (
        distributed.LocalCluster(
            n_workers=len(slices),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        if hasattr(os, "sched_setaffinity"):
            client.register_plugin(_core_share(distributed, slices), name="sgdcore-cores")
        if log is not None:
            log(
                f"Dask local cluster: {len(slices)} worker process(es), "
                f"{len(slices[0])} core(s) each; {cluster.scheduler_address}"
            )
        yield client


def _core_share(distributed, slices: list[list[int]]):
    """A worker plugin confining each local worker (by its name, 0, 1, ...) to its share
    of the cores; a worker that its nanny restarts gets the same share.
    """

    class CoreShare(distributed.WorkerPlugin):
        def setup(self, worker) -> None:
            os.sched_setaffinity(0, slices[int(worker.name) % len(slices)])

    return CoreShare()
