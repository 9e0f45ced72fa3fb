"""Loss and gradient of the paper's two models, per backend."""

from __future__ import annotations

import numpy as np

import sgdcore
from sgdcore.models import MLP, LogisticRegression

from .common import BACKENDS, MLP_SHAPE, mnist_like, require


class LossAndGrad:
    """``loss_and_grad`` on MNIST-shaped data: MLP 784-800-10 and binary logistic."""

    QUANTITY = "loss_and_grad"
    params = (BACKENDS, ["float32", "float64"], ["mlp", "logistic"], [128, 1000])
    param_names = ["backend", "dtype", "model", "n"]

    def setup(self, backend, dtype, model, n):
        require(backend, self.QUANTITY)
        self.model = MLP(*MLP_SHAPE) if model == "mlp" else LogisticRegression(784)
        self.X, self.y = mnist_like(n, self.model.n_classes, dtype)
        self.theta = self.model.init(0, dtype)
        self.out = np.empty_like(self.theta)
        self.backend = backend
        self.time_loss_and_grad(backend, dtype, model, n)  # compile / warm up

    def time_loss_and_grad(self, backend, dtype, model, n):
        sgdcore.loss_and_grad(
            self.model, self.theta, self.X, self.y, out=self.out, backend=self.backend
        )

    def peakmem_loss_and_grad(self, backend, dtype, model, n):
        sgdcore.loss_and_grad(self.model, self.theta, self.X, self.y, backend=self.backend)


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
