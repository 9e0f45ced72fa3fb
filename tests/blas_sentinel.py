"""Run sgdcore's hot paths and report which of them woke NumPy's own BLAS threads.

Run as a script (``python tests/blas_sentinel.py [PATH ...]``) in a fresh process: the
threads that appear while NumPy is imported are its bundled OpenBLAS's workers, which
sleep until a threaded BLAS call (``@``, ``np.dot``, ``np.linalg.norm`` on vectors of
more than about 10,000 entries) wakes them and then spin for a while. sgdcore's BLAS
limits are narrowed to the other libraries, so a NumPy call inside a kernel's limits
still shows. Each path runs once to warm up (JIT, caches), then again while the CPU time
of NumPy's workers is read from ``/proc``; the report is one JSON object mapping each
path to the nanoseconds those workers ran (0 when NumPy's BLAS was never entered: a
sleeping worker does not run at all).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _cpu_ns(tids) -> int:
    """Nanoseconds the threads ``tids`` have run (the scheduler's exact count)."""
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue
    return total


_BEFORE = _threads()
import numpy as np  # noqa: E402

NUMPY_WORKERS = _threads() - _BEFORE

import sgdcore  # noqa: E402
from sgdcore import _backend, _blas, curvature  # noqa: E402
from sgdcore.models import MLP  # noqa: E402


def _sgdcore_limits_skip_numpy() -> None:
    """Let sgdcore's BLAS limits reach every BLAS but NumPy's own."""
    pools = _blas.blas_pools()
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    others = [
        lib
        for lib in pools.lib_controllers
        if not os.path.realpath(lib.filepath).startswith(os.path.realpath(numpy_dir) + "/numpy")
    ]
    pools.lib_controllers = others


# An MLP with P > 10,000 so that any vector BLAS call on theta would go threaded.
MODEL = MLP(60, 200, 10)
N = 300


def _problem():
    rng = np.random.default_rng(0)
    X = np.where(rng.random((N, 60)) < 0.3, rng.random((N, 60)), 0.0)
    y = rng.integers(0, 10, N)
    return MODEL.init(0) + 0.01 * rng.standard_normal(MODEL.n_params), X, y


def _paths(backend: str):
    theta, X, y = _problem()
    V = np.random.default_rng(1).standard_normal((MODEL.n_params, 2))

    def losses():
        sgdcore.loss_and_grad(MODEL, theta, X, y, l2=0.1, backend=backend)
        sgdcore.loss(MODEL, theta, X, y, l2=0.1, backend=backend)

    def grads():
        sgdcore.per_example_grad_norms(MODEL, theta, X, y, backend=backend)
        noise = sgdcore.GradientNoise(MODEL, theta, backend=backend, keep_data=True)
        noise.update(X, y)
        result = noise.result()
        result.cov_matvec(V)

    def products():
        sgdcore.hvp(MODEL, theta, X, y, V, l2=0.1, backend=backend)
        sgdcore.ggn_vp(MODEL, theta, X, y, V, backend=backend)

    def lanczos():
        op = curvature.HessianOperator(MODEL, theta, X, y, backend=backend, cache_state=True)
        curvature.top_eigenvalues(op, k=2, tol=1e-3, ncv=8, max_products=40)
        curvature.trace(op, n_products=6, seed=0)
        curvature.slq(op, np.abs, n_probes=2, steps=8, seed=0)

    def training():
        sgdcore.train(
            MODEL,
            (X, y),
            (X[:50], y[:50]),
            batch_size=16,
            lr=0.05,
            momentum=0.9,
            steps=30,
            seeds=[0, 1],
            eval_every=10,
            dtype=np.float64,
            backend=backend,
        )

    return {
        "losses": losses,
        "grads": grads,
        "products": products,
        "lanczos": lanczos,
        "training": training,
    }


def _cases(names):
    """(label, path): every path on the C++ kernels (the Python layer around kernels is
    the same for every backend), and every compiled training engine (each has its own
    Python driver). The NumPy backend's kernels use NumPy's BLAS by design."""
    usable = _backend.available_backends()
    for backend in usable:
        if backend == "numpy":
            continue
        for name, path in _paths(backend).items():
            if (backend == usable[0] or name == "training") and (not names or name in names):
                yield f"{backend}:{name}", path


def main(names) -> dict:
    _sgdcore_limits_skip_numpy()
    report = {}
    for label, path in _cases(names):
        path()  # warm up: JIT, caches
        time.sleep(0.3)  # let any spinning worker go back to sleep
        before = _cpu_ns(NUMPY_WORKERS)
        path()
        time.sleep(0.05)
        report[label] = _cpu_ns(NUMPY_WORKERS) - before
    return report


if __name__ == "__main__":
    print(json.dumps({"numpy_workers": len(NUMPY_WORKERS), "ns": main(sys.argv[1:])}))
