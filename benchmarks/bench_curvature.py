"""Curvature and evidence: HVP / GGN products, the forward state, the dense logistic
Hessian, top Hessian eigenvalues, Hutch++ and the logistic evidence path.

The products run on dense inputs and on sparse digits (the ``inputs`` parameter,
``benchmarks.common.INPUTS``); ``time_`` times the default call (a fresh output,
``check_finite=True``), ``time_prealloc_nocheck_`` the faster form (``out=``,
``check_finite=False``).
"""

from __future__ import annotations

import numpy as np

import sgdcore
from sgdcore import curvature, evidence
from sgdcore.models import MLP, LogisticRegression

from .common import BACKENDS, INPUTS, MLP_SHAPE, inputs, require


def _problem(model_name, dtype, n=None, kind="digits"):
    if model_name == "mlp":
        model = MLP(*MLP_SHAPE)
        n = n or 1000
    else:
        model = LogisticRegression(784)
        n = n or 10_000
    X, y = inputs(kind, n, model.n_classes, dtype)
    theta = model.init(0, dtype)
    if model.kind != "mlp":
        theta *= 0.1
    return model, theta, X, y


class _Products:
    """A curvature product (``PRODUCT``): MLP 784-800-10 on 1,000 examples, binary
    logistic on 10,000; one direction or a block of 8."""

    params = (BACKENDS, ["float32", "float64"], ["mlp", "logistic"], [1, 8], INPUTS)
    param_names = ["backend", "dtype", "model", "k", "inputs"]

    def setup(self, backend, dtype, model, k, kind):
        require(backend, self.QUANTITY)
        self.model, self.theta, self.X, self.y = _problem(model, dtype, kind=kind)
        rng = np.random.default_rng(1)
        shape = (self.model.n_params,) if k == 1 else (self.model.n_params, k)
        self.v = rng.standard_normal(shape).astype(dtype)
        self.out = np.empty_like(self.v)
        self.backend = backend
        self.time_prealloc_nocheck_product(backend, dtype, model, k, kind)  # warm up

    def _run(self, **kw):
        f = getattr(sgdcore, self.QUANTITY)
        f(self.model, self.theta, self.X, self.y, self.v, backend=self.backend, **kw)

    def time_product(self, backend, dtype, model, k, kind):
        self._run()

    def time_prealloc_nocheck_product(self, backend, dtype, model, k, kind):
        self._run(out=self.out, check_finite=False)

    def peakmem_product(self, backend, dtype, model, k, kind):
        self._run()


class HessianVectorProduct(_Products):
    """``sgdcore.hvp``: the exact Hessian times one direction or a block of 8."""

    QUANTITY = "hvp"


class GGNVectorProduct(_Products):
    """``sgdcore.ggn_vp``: the Gauss-Newton matrix times one direction or a block of 8."""

    QUANTITY = "ggn_vp"


class CurvatureState:
    """The forward state HessianOperator caches (MLP activations and probabilities)."""

    QUANTITY = "curvature_state"
    params = (BACKENDS, ["float32", "float64"])
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype):
        require(backend, self.QUANTITY)
        self.model, self.theta, self.X, self.y = _problem("mlp", dtype)
        self.backend = backend
        self.time_state(backend, dtype)

    def time_state(self, backend, dtype):
        curvature.HessianOperator(
            self.model, self.theta, self.X, self.y, backend=self.backend, cache_state=True
        )

    def peakmem_state(self, backend, dtype):
        curvature.HessianOperator(
            self.model, self.theta, self.X, self.y, backend=self.backend, cache_state=True
        )


class LogisticHessian:
    """Dense Hessian of binary logistic regression on 800 digits (the evidence's matrix)."""

    QUANTITY = "hessian"
    params = (BACKENDS, ["float32", "float64"])
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype):
        require(backend, self.QUANTITY)
        self.model, self.theta, self.X, self.y = _problem("logistic", dtype, n=800)
        self.backend = backend
        self.time_hessian(backend, dtype)

    def time_hessian(self, backend, dtype):
        sgdcore.hessian(self.model, self.theta, self.X, self.y, l2=1.0, backend=self.backend)

    def peakmem_hessian(self, backend, dtype):
        sgdcore.hessian(self.model, self.theta, self.X, self.y, l2=1.0, backend=self.backend)


class TopEigenvalues:
    """Top-10 Hessian eigenvalues of the MLP over 1,000 digits (Lanczos, thick restart)."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]
    timeout = 600

    def setup(self, dtype):
        require("cpp")
        self.model, self.theta, self.X, self.y = _problem("mlp", dtype)

    def _run(self):
        op = curvature.HessianOperator(self.model, self.theta, self.X, self.y)
        return curvature.top_eigenvalues(op, 10, tol=1e-6)

    def time_top10(self, dtype):
        self._run()

    def peakmem_top10(self, dtype):
        self._run()

    def track_top_eigenvalue(self, dtype):
        return float(self._run().eigenvalues[0])

    track_top_eigenvalue.unit = "Hessian eigenvalue"


class HutchPlusPlus:
    """Hutch++ trace of the MLP Hessian with 60 products."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        require("cpp")
        self.model, self.theta, self.X, self.y = _problem("mlp", dtype, n=256)
        self.op = curvature.HessianOperator(self.model, self.theta, self.X, self.y)

    def time_trace(self, dtype):
        curvature.trace(self.op, n_products=60)


class LogisticEvidence:
    """MAP fits and exact Laplace evidence at 20 values of l2 on 800 digits."""

    timeout = 300

    def setup(self):
        require("cpp")
        self.model, _, self.X, self.y = _problem("logistic", np.float64, n=800)
        self.lams = np.logspace(-3, 3, 20)

    def time_evidence_path(self):
        evidence.evidence_path(self.model, self.X, self.y, self.lams)

    def peakmem_evidence_path(self):
        evidence.evidence_path(self.model, self.X, self.y, self.lams)

    def track_log_ratio_at_l2_1(self):
        r = evidence.laplace(
            self.model, evidence.fit_map(self.model, self.X, self.y, 1.0), self.X, self.y, 1.0
        )
        return r.log_ratio

    track_log_ratio_at_l2_1.unit = "nats"
