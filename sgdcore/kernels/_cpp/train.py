"""C++ training engine (``csrc/cpu/train_cpu.cpp``): the whole run is one call.

:func:`plan` decides how the run uses the cores (see its docstring for the rule and the
measurements behind it); the call runs with BLAS limited to one thread (thread policy
``"own"``), so that BLAS
and the OpenMP team never oversubscribe the cores and every product is computed the
same way whatever the number of threads.

For a fixed seed, dtype and data, a model's trajectory and reported numbers are bitwise
the same whatever the evaluation schedule, the team size, the other models of the group
and the runs before it: the plan depends only on the model, B, the dtype and the data; a
chunk of steps ends without touching the parameters; evaluations read a copy of the
sparse path's lazily updated rows; every sum is taken in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import _cpu
from ..._backend import register
from ..._blas import cores
from .sparse import SPARSE_DENSITY
from .sparse import density as input_density


@dataclass(frozen=True)
class Plan:
    """How one run uses the machine.

    threads : OpenMP team size; each thread runs whole units with single-threaded BLAS.
    slices : hidden-unit slices per MLP model; a unit is (model, slice).
    block_rows : rows of W1 per update block (momentum GEMM, theta += v, next forward).
    fuse : compute the next step's forward inside the update loop (two batch buffers).
    chunk : steps a thread runs on one model before it picks the least advanced model
        again (when slices == 1).
    sparse : run an MLP's first layer on the inputs' non-zeros (when slices == 1).
    """

    threads: int
    slices: int
    block_rows: int
    fuse: bool
    chunk: int
    sparse: bool = False


def plan(model, K: int, B: int, dtype, threads: int | None = None, density: float = 1.0) -> Plan:
    """The plan for K models at batch size B, with a fraction ``density`` of the training
    inputs non-zero.

    Rule (measured on 2 cores, MLP 784-800-10, B from 1 to 1,000): an OpenMP team of one
    thread per core, each running whole models with single-threaded BLAS, beats one
    model at a time with BLAS threading inside each GEMM at every B (2.6x at K = 1,
    B = 16; 5-8x for K = 3 on a busy machine: no fork/join per GEMM, no spinning BLAS
    threads). The models are independent: a thread takes the least advanced free model
    and runs ``chunk`` steps of it (about 0.1 s of work), so K = 3 on 2 cores balances
    without any barrier, and the result does not depend on the number of threads (each
    model's arithmetic is the same wherever it runs, BLAS always on one thread). The
    lockstep schedule (``slices > 1``: the hidden layer cut across threads, one barrier
    per step) is only used when asked for through :data:`OVERRIDE`: it helps a lone
    model on an idle machine, but a barrier costs a scheduler quantum as soon as the
    cores are shared (750 us per step measured here at load 4, against 1 us without),
    and it changes rounding with the number of slices. W1 is updated in blocks of 128
    rows below B = 16 (W1 and velocity blocks stay in L2 between the momentum GEMM, the
    update and the next forward) and whole from B = 16 on, where the GEMMs dominate; the
    next forward is fused into that loop while B * D * itemsize <= 2 MiB.

    Sparse inputs (``density <= SPARSE_DENSITY``, MLP): the first layer runs on the
    inputs' non-zeros, W1 held transposed, and rows of W1 under no pixel of a batch are
    brought up to date only when next used (``csrc/cpu/sparse_inputs.h``): on MNIST-like
    inputs (19% non-zero) it is 1.5x faster than the GEMMs at B = 1,000 and faster at
    every B.
    """
    T = cores() if threads is None else max(1, int(threads))
    if not getattr(_cpu, "openmp", True):  # built without OpenMP: one thread
        T = 1
    S = 1
    itemsize = np.dtype(dtype).itemsize
    D = model.n_features
    # Small batches: blocks of 128 rows (a block of W1 and of its velocity stay in L2
    # between the GEMM, the update and the next forward). From B = 16 on, whole slices:
    # the GEMMs then dominate and smaller blocks only repack the batch more often.
    rows = 128 if B < 16 else max(1, getattr(model, "n_hidden", 1))
    fuse = B * D * itemsize <= (2 << 20)
    # Rough seconds per step (traffic over P-sized buffers + GEMM work): chunks of ~0.1 s,
    # long enough that switching models (a cold cache, one unfused forward) costs little.
    P = model.n_params
    est = 6 * P * itemsize / 20e9 + 4 * B * P / 50e9
    chunk = int(max(1, min(1000, round(0.1 / est))))
    sparse = getattr(model, "n_hidden", None) is not None and density <= SPARSE_DENSITY
    return Plan(threads=T, slices=S, block_rows=rows, fuse=fuse, chunk=chunk, sparse=sparse)


#: A dict of :class:`Plan` fields that replace :func:`plan`'s choice (benchmarks, tuning;
#: e.g. ``{"slices": 2}`` for the lockstep schedule).
OVERRIDE: dict | None = None


@register("train", "cpp", threads="own")
def train(job):
    model, *inputs, progress = job.positional()
    K = job.thetas.shape[0]
    # The density of all the data, not of the group's rows: a model's path must not
    # depend on the group it runs in.
    p = plan(model, K, job.batch_size, job.thetas.dtype, density=input_density(job.X))
    if OVERRIDE:
        p = Plan(**{**p.__dict__, **OVERRIDE})
    metrics = np.empty((K, job.evals.shape[0], 3))
    div_step = np.empty(K, dtype=np.int64)
    args = (*model.dims, *inputs, metrics, div_step)
    kw = dict(
        threads=p.threads,
        slices=p.slices,
        block_rows=p.block_rows,
        fuse=p.fuse,
        chunk=p.chunk,
        sparse=p.sparse,
        progress=progress,
    )
    _cpu.train(*args, **kw)
    return metrics, div_step
