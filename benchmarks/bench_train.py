"""The training engine: model-steps per second against the batch size and the group size.

A group of K MLPs 784-800-10 trained together on 1,000 MNIST-shaped examples (momentum
0.9), evaluated once at the end on 200 test examples, so the time is the steps'. ``time_``
gives the run (``sgdcore.train`` with its defaults), ``track_`` the throughput in
model-steps per second, ``peakmem_`` the memory (O(K P) plus the data). Against the batch
size the examples are dense or sparse digits (the ``inputs`` parameter,
``benchmarks.common.INPUTS``): the first layer's path depends on it.
"""

from __future__ import annotations

import time

import numpy as np

import sgdcore
from sgdcore.models import MLP

from .common import BACKENDS, INPUTS, MLP_SHAPE, inputs, require


class _Train:
    QUANTITY = "train"
    timeout = 600

    def _setup(self, backend, K, B, steps, kind="digits"):
        require(backend, self.QUANTITY)
        self.model = MLP(*MLP_SHAPE)
        self.train = inputs(kind, 1000, seed=0)
        self.test = inputs(kind, 200, seed=1)
        self.steps = steps
        self.kw = dict(
            batch_size=B,
            lr=0.05,
            momentum=0.9,
            steps=steps,
            seeds=list(range(K)),
            eval_steps=[steps],
            dtype=np.float32,
            backend=backend,
            init=np.stack([self.model.init(s, np.float32) for s in range(K)]),
        )
        self.run()  # compile (numba), warm caches

    def run(self):
        return sgdcore.train(self.model, self.train, self.test, **self.kw)

    def _track(self):
        t = time.perf_counter()
        self.run()
        return self.K_ * self.steps / (time.perf_counter() - t)


class TrainVsBatchSize(_Train):
    """Three models, B from 1 to 1,000, dense inputs or digits."""

    params = (BACKENDS, [1, 4, 16, 64, 256, 1000], INPUTS)
    param_names = ["backend", "batch_size", "inputs"]

    def setup(self, backend, batch_size, kind):
        self.K_ = 3
        # enough steps to dwarf the call's fixed costs, few enough for the NumPy engine
        self._setup(backend, 3, batch_size, int(np.clip(2000 // batch_size, 10, 200)), kind)

    def time_train(self, backend, batch_size, kind):
        self.run()

    def peakmem_train(self, backend, batch_size, kind):
        self.run()

    def track_model_steps_per_second(self, backend, batch_size, kind):
        return self._track()

    track_model_steps_per_second.unit = "model-steps/s"


class TrainVsModels(_Train):
    """B = 16, groups of 1 to 32 models."""

    params = (BACKENDS, [1, 2, 8, 32])
    param_names = ["backend", "models"]

    def setup(self, backend, models):
        self.K_ = models
        self._setup(backend, models, 16, 50)

    def time_train(self, backend, models):
        self.run()

    def peakmem_train(self, backend, models):
        self.run()

    def track_model_steps_per_second(self, backend, models):
        return self._track()

    track_model_steps_per_second.unit = "model-steps/s"
