"""Loss and gradient of the paper's two models, per backend, on dense inputs and on
sparse digits (``benchmarks.common.INPUTS``). ``time_`` times the default call (a fresh
output, ``check_finite=True``); ``time_prealloc_nocheck_`` the faster form."""

from __future__ import annotations

import numpy as np

import sgdcore
from sgdcore.models import MLP, LogisticRegression

from .common import BACKENDS, INPUTS, MLP_SHAPE, inputs, mnist_like, require


class LossAndGrad:
    """``loss_and_grad`` on MNIST-shaped data: MLP 784-800-10 and binary logistic."""

    QUANTITY = "loss_and_grad"
    params = (BACKENDS, ["float32", "float64"], ["mlp", "logistic"], [128, 1000], INPUTS)
    param_names = ["backend", "dtype", "model", "n", "inputs"]

    def setup(self, backend, dtype, model, n, kind):
        require(backend, self.QUANTITY)
        self.model = MLP(*MLP_SHAPE) if model == "mlp" else LogisticRegression(784)
        self.X, self.y = inputs(kind, n, self.model.n_classes, dtype)
        self.theta = self.model.init(0, dtype)
        self.args = (self.model, self.theta, self.X, self.y)
        self.fast = {"out": np.empty_like(self.theta), "check_finite": False}
        self.backend = backend
        self.time_loss_and_grad(backend, dtype, model, n, kind)  # compile / warm up

    def time_loss_and_grad(self, backend, dtype, model, n, kind):
        sgdcore.loss_and_grad(*self.args, backend=self.backend)

    def time_prealloc_nocheck_loss_and_grad(self, backend, dtype, model, n, kind):
        sgdcore.loss_and_grad(*self.args, backend=self.backend, **self.fast)

    def peakmem_loss_and_grad(self, backend, dtype, model, n, kind):
        sgdcore.loss_and_grad(*self.args, backend=self.backend)


class PredictProba:
    """Class probabilities of the MLP on 10,000 test digits."""

    QUANTITY = "predict_proba"
    params = (BACKENDS, ["float32", "float64"])
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype):
        require(backend, self.QUANTITY)
        self.model = MLP(*MLP_SHAPE)
        self.X, _ = mnist_like(10_000, 10, dtype)
        self.theta = self.model.init(0, dtype)
        self.backend = backend

    def time_predict_proba(self, backend, dtype):
        sgdcore.predict_proba(self.model, self.theta, self.X, backend=self.backend)

    def peakmem_predict_proba(self, backend, dtype):
        sgdcore.predict_proba(self.model, self.theta, self.X, backend=self.backend)


class InputCheck:
    """The input check every default call makes: whether X is finite and how many of its
    entries are non-zero (the C++ first layer's choice), one pass over 60,000 rows."""

    params = (["float32", "float64"], INPUTS)
    param_names = ["dtype", "inputs"]

    def setup(self, dtype, kind):
        require("cpp")
        self.X, _ = inputs(kind, 60_000, 10, dtype)

    def time_check_finite(self, dtype, kind):
        from sgdcore import _validate

        _validate.check_finite("X", self.X)
