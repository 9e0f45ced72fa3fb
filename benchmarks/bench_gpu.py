"""The ``cuda`` backend on CuPy arrays (skipped where it is not usable): the issue's GPU
workloads, each call followed by a device synchronisation so asv times the work itself."""

from __future__ import annotations

import numpy as np

from sgdcore.models import MLP, LogisticRegression

from .common import MLP_SHAPE, mnist_like, require

DTYPES = ["float32", "float64"]


def _device(model, n, dtype, n_classes=10):
    import cupy as cp

    X, y = mnist_like(n, n_classes, dtype)
    rng = np.random.default_rng(1)
    v = rng.standard_normal(model.n_params).astype(dtype)
    return cp, cp.asarray(model.init(0, dtype)), cp.asarray(X), cp.asarray(y), cp.asarray(v)


class GpuGradNorms:
    """MLP 784-800-10 per-example squared norms at B = 1,000."""

    params = (DTYPES,)
    param_names = ["dtype"]

    def setup(self, dtype):
        require("cuda")
        from sgdcore.kernels._cuda import grads

        self.grads, self.model = grads, MLP(*MLP_SHAPE)
        self.cp, self.theta, self.X, self.y, _ = _device(self.model, 1000, dtype)
        self.out = self.cp.empty(1000, dtype=dtype)
        self.time_norms(dtype)

    def time_norms(self, dtype):
        self.grads.per_example_grad_sqnorms(self.model, self.theta, self.X, self.y, self.out)
        self.cp.cuda.Device().synchronize()


class GpuGradientNoise:
    """Sum of gradients and squared norms of the MLP at N = 10,000."""

    params = (DTYPES,)
    param_names = ["dtype"]

    def setup(self, dtype):
        require("cuda")
        from sgdcore.kernels._cuda import grads

        self.grads, self.model = grads, MLP(*MLP_SHAPE)
        self.cp, self.theta, self.X, self.y, _ = _device(self.model, 10_000, dtype)
        self.g = self.cp.empty_like(self.theta)
        self.sq = self.cp.empty(10_000, dtype=dtype)
        self.time_noise(dtype)

    def time_noise(self, dtype):
        self.grads.gradient_noise(self.model, self.theta, self.X, self.y, self.g, self.sq)
        self.cp.cuda.Device().synchronize()


class GpuHvp:
    """Exact MLP HVP at N = 10,000, and the binary logistic HVP at N = 100,000."""

    params = (DTYPES, ["mlp-10000", "logistic-100000"])
    param_names = ["dtype", "case"]

    def setup(self, dtype, case):
        require("cuda")
        from sgdcore.kernels._cuda import curvature

        self.curvature = curvature
        if case.startswith("mlp"):
            self.model = MLP(*MLP_SHAPE)
            self.cp, self.theta, self.X, self.y, v = _device(self.model, 10_000, dtype)
        else:
            self.model = LogisticRegression(784)
            self.cp, self.theta, self.X, self.y, v = _device(self.model, 100_000, dtype, 2)
        self.V = v[None]
        self.out = self.cp.empty_like(self.V)
        self.time_hvp(dtype, case)

    def time_hvp(self, dtype, case):
        self.curvature.hvp(self.model, self.theta, self.X, self.y, self.V, self.out)
        self.cp.cuda.Device().synchronize()


class GpuTopEigenvalues:
    """Top-10 eigenvalues of the MLP's Hessian at N = 10,000 (operator and Lanczos on the
    device, relative residual 1e-4)."""

    params = (DTYPES,)
    param_names = ["dtype"]

    def setup(self, dtype):
        require("cuda")
        from sgdcore import curvature

        self.curvature, self.model = curvature, MLP(*MLP_SHAPE)
        self.cp, self.theta, self.X, self.y, _ = _device(self.model, 10_000, dtype)
        self.time_top10(dtype)

    def time_top10(self, dtype):
        op = self.curvature.HessianOperator(self.model, self.theta, self.X, self.y)
        self.curvature.top_eigenvalues(op, 10, tol=1e-4)


class GpuEvidencePath:
    """Laplace evidence of binary logistic regression (784 inputs, float64) at 20 values
    of lambda with N = 10,000, Cholesky on the device."""

    def setup(self):
        require("cuda")
        from sgdcore import evidence

        self.evidence, self.model = evidence, LogisticRegression(784)
        self.cp, _, self.X, self.y, _ = _device(self.model, 10_000, "float64", 2)
        self.lams = np.geomspace(1e-2, 1e2, 20)
        self.time_path()

    def time_path(self):
        self.evidence.evidence_path(self.model, self.X, self.y, self.lams)
