"""Peers for the mini-batch gradient: torch autograd against sgdcore's backends."""

from __future__ import annotations

import numpy as np

from .common import MLP_SHAPE, Workload, mnist_like


def _sgdcore(backend, model, X, y, theta):
    def make():
        import sgdcore

        out = np.empty_like(theta)
        sgdcore.loss_and_grad(model, theta, X, y, out=out, backend=backend)
        return lambda: sgdcore.loss_and_grad(model, theta, X, y, out=out, backend=backend)

    return make


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


def workloads(quick: bool):
    from sgdcore.models import MLP

    model = MLP(*MLP_SHAPE)
    n = 256 if quick else 1000
    X, y = mnist_like(n)
    theta = model.init(0, np.float32)
    D, H, C = MLP_SHAPE
    flops = 2.0 * n * (2 * D * H + 3 * H * C)
    nbytes = 4.0 * (X.size + 2 * theta.size)
    runners = {f"sgdcore-{b}": _sgdcore(b, model, X, y, theta) for b in ("cpp", "numba", "numpy")}
    runners["torch autograd"] = _torch(X, y, theta, model)
    return [Workload(f"MLP loss_and_grad, N={n}, float32", flops, nbytes, "float32", runners)]
