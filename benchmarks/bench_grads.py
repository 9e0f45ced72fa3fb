"""Per-example gradients, their norms and gradient-noise statistics, per backend.

The kernels that read X in the MLP's first layer run on dense inputs and on sparse digits
(the ``inputs`` parameter, ``benchmarks.common.INPUTS``). ``time_`` times the default call
(a fresh output, ``check_finite=True``); ``time_prealloc_nocheck_`` (``out=``,
``check_finite=False``) and ``time_nocheck_`` the faster forms.
"""

from __future__ import annotations

import numpy as np

import sgdcore
from sgdcore.models import MLP, LogisticRegression

from .common import BACKENDS, INPUTS, MLP_SHAPE, inputs, require

DTYPES = ["float32", "float64"]


def _mlp(n, dtype, kind="digits"):
    model = MLP(*MLP_SHAPE)
    X, y = inputs(kind, n, 10, dtype)
    return model, model.init(0, dtype), X, y


class PerExampleGrads:
    """Materialised ``[N, P]`` per-example gradients: the MLP at B = 128 (325 MB in
    float32) and binary logistic regression at N = 10,000 (63 MB in float64)."""

    QUANTITY = "per_example_grads"
    params = (BACKENDS, DTYPES, ["mlp-128", "logistic-10000"], INPUTS)
    param_names = ["backend", "dtype", "case", "inputs"]

    def setup(self, backend, dtype, case, kind):
        require(backend, self.QUANTITY)
        if case.startswith("mlp"):
            self.model, self.theta, self.X, self.y = _mlp(128, dtype, kind)
        else:
            self.model = LogisticRegression(784)
            self.X, self.y = inputs(kind, 10_000, 2, dtype)
            self.theta = self.model.init(0, dtype)
        self.args = (self.model, self.theta, self.X, self.y)
        self.out = np.empty((self.X.shape[0], self.model.n_params), dtype=dtype)
        self.backend = backend
        self.time_prealloc_nocheck_per_example_grads(backend, dtype, case, kind)  # warm up

    def time_per_example_grads(self, backend, dtype, case, kind):
        sgdcore.per_example_grads(*self.args, backend=self.backend)

    def time_prealloc_nocheck_per_example_grads(self, backend, dtype, case, kind):
        sgdcore.per_example_grads(
            *self.args, out=self.out, backend=self.backend, check_finite=False
        )

    def peakmem_per_example_grads(self, backend, dtype, case, kind):
        sgdcore.per_example_grads(*self.args, out=self.out, backend=self.backend)


class PerExampleGradNorms:
    """``|g_i|^2`` of the MLP without forming the gradients."""

    QUANTITY = "per_example_grad_norms"
    params = (BACKENDS, DTYPES, [128, 1000], INPUTS)
    param_names = ["backend", "dtype", "n", "inputs"]

    def setup(self, backend, dtype, n, kind):
        require(backend, self.QUANTITY)
        self.model, self.theta, self.X, self.y = _mlp(n, dtype, kind)
        self.args = (self.model, self.theta, self.X, self.y)
        self.out = np.empty(n, dtype=dtype)
        self.backend = backend
        self.time_per_example_grad_norms(backend, dtype, n, kind)

    def _run(self, **kw):
        sgdcore.per_example_grad_norms(*self.args, squared=True, backend=self.backend, **kw)

    def time_per_example_grad_norms(self, backend, dtype, n, kind):
        self._run()

    def time_prealloc_nocheck_per_example_grad_norms(self, backend, dtype, n, kind):
        self._run(out=self.out, check_finite=False)

    def peakmem_per_example_grad_norms(self, backend, dtype, n, kind):
        self._run()


class GradientNoise:
    """Mean gradient, tr F and B_simple of the MLP (one forward, one fused backward);
    at N = 10,000 the accumulator runs over several chunks."""

    QUANTITY = "gradient_noise"
    params = (BACKENDS, DTYPES, [1000, 10_000], INPUTS)
    param_names = ["backend", "dtype", "n", "inputs"]

    def setup(self, backend, dtype, n, kind):
        require(backend, self.QUANTITY)
        self.model, self.theta, self.X, self.y = _mlp(n, dtype, kind)
        self.backend = backend
        self.time_gradient_noise(backend, dtype, n, kind)

    def _run(self, **kw):
        return sgdcore.gradient_noise(
            self.model, self.theta, self.X, self.y, backend=self.backend, **kw
        )

    def time_gradient_noise(self, backend, dtype, n, kind):
        self._run()

    def time_nocheck_gradient_noise(self, backend, dtype, n, kind):
        self._run(check_finite=False)

    def peakmem_gradient_noise(self, backend, dtype, n, kind):
        self._run()

    def track_b_simple(self, backend, dtype, n, kind):
        return self._run().b_simple

    track_b_simple.unit = "examples"


class CovMatvec:
    """``F V`` for a block of k directions, MLP at N = 1000 (no N x P)."""

    QUANTITY = "cov_matvec"
    params = (BACKENDS, DTYPES, [1, 8])
    param_names = ["backend", "dtype", "k"]

    def setup(self, backend, dtype, k):
        require(backend, self.QUANTITY)
        model, theta, X, y = _mlp(1000, dtype)
        self.stats = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
        rng = np.random.default_rng(0)
        self.V = rng.standard_normal((model.n_params, k)).astype(dtype)
        self.time_cov_matvec(backend, dtype, k)

    def time_cov_matvec(self, backend, dtype, k):
        self.stats.cov_matvec(self.V)

    def peakmem_cov_matvec(self, backend, dtype, k):
        self.stats.cov_matvec(self.V)


class TopEigenvalues:
    """The 5 leading eigenvalues of F for the MLP at N = 512: exactly from the gradient
    Gram matrix (kernel ``grad_gram``) or by Lanczos on ``cov_matvec``."""

    QUANTITY = "grad_gram"
    params = (BACKENDS, DTYPES, ["gram", "lanczos"])
    param_names = ["backend", "dtype", "method"]
    timeout = 300

    def setup(self, backend, dtype, method):
        require(backend, self.QUANTITY)
        model, theta, X, y = _mlp(512, dtype)
        self.stats = sgdcore.gradient_noise(model, theta, X, y, backend=backend)
        self.stats.top_eigenvalues(1, method="gram")  # compile / warm up

    def time_top_eigenvalues(self, backend, dtype, method):
        self.stats.top_eigenvalues(5, method=method)

    def peakmem_top_eigenvalues(self, backend, dtype, method):
        self.stats.top_eigenvalues(5, method=method)

    def track_top_eigenvalue(self, backend, dtype, method):
        return float(self.stats.top_eigenvalues(1, method=method)[0])
