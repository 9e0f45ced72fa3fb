"""Peers for the mini-batch gradient: torch autograd against sgdcore's backends.

sgdcore's headline is its default call (a fresh gradient, ``check_finite=True``); the
faster form (``out=``, ``check_finite=False``) is timed beside it.
"""

from __future__ import annotations

import numpy as np

from .common import MLP_SHAPE, Workload, inputs, sgdcore_runners


def sgdcore_loss_and_grad(model, theta, X, y):
    """sgdcore's ``loss_and_grad`` runners: the default call and the faster form."""
    import sgdcore

    def call(backend, fast):
        kw = {"out": np.empty_like(theta), "check_finite": False} if fast else {}
        return lambda: sgdcore.loss_and_grad(model, theta, X, y, backend=backend, **kw)

    return sgdcore_runners(call, "loss_and_grad", model.kind)


def _torch(X, y, theta, model):
    def make():
        import torch

        p = {k: torch.tensor(v, requires_grad=True) for k, v in model.unflatten(theta).items()}
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def step():
            for t in p.values():
                t.grad = None
            h = torch.relu(Xt @ p["W1"].T + p["b1"])
            loss = torch.nn.functional.cross_entropy(h @ p["W2"].T + p["b2"], yt, reduction="sum")
            loss.backward()

        return step

    return make


def workloads(quick: bool, kind: str = "digits"):
    """The MLP's loss and gradient on inputs of ``kind`` (``benchmarks.common.INPUTS``)."""
    from sgdcore.models import MLP

    model = MLP(*MLP_SHAPE)
    n = 256 if quick else 1000
    X, y = inputs(kind, n)
    theta = model.init(0, np.float32)
    D, H, C = MLP_SHAPE
    flops = 2.0 * n * (2 * D * H + 3 * H * C)
    nbytes = 4.0 * (X.size + 2 * theta.size)
    runners = sgdcore_loss_and_grad(model, theta, X, y)
    runners["torch autograd"] = _torch(X, y, theta, model)
    return [Workload(f"MLP loss_and_grad, N={n}, float32", flops, nbytes, "float32", runners)]
