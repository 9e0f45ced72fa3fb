"""Peers for per-example gradients, their norms and gradient-noise statistics.

Four workloads (issue 3), each run by sgdcore's backends and by every installed peer:
torch.func ``vmap(grad)``, BackPACK (``BatchGrad``, ``BatchL2Grad``, ``Variance``), Opacus
(``GradSampleModule``; ghost clipping for norms) and JAX (``vmap(grad)`` under ``jit``).
Every runner is checked once against sgdcore's NumPy backend before it is timed, so all
of them compute the same numbers. A runner raises ImportError when its package is not
installed.

sgdcore's headline runner is its default call (a fresh output, ``check_finite=True``), as
the peers pay for theirs; the faster form (a preallocated ``out=``, ``check_finite=False``)
is timed beside it under its own name.
"""

from __future__ import annotations

import numpy as np

from .common import MLP_SHAPE, Workload, inputs, sgdcore_runners


def _agree(name, got, want, rtol):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    err = float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-300)
    if not err <= rtol:
        raise RuntimeError(f"{name} disagrees with sgdcore: relative error {err:.2e}")


def _flat_rows(model, blocks):
    """Concatenate per-example ``{name: [N, ...]}`` blocks into ``[N, P]`` (for checks)."""
    n = next(iter(blocks.values())).shape[0]
    return np.concatenate([np.asarray(blocks[k]).reshape(n, -1) for k, _ in model.shapes], 1)


# ----------------------------------------------------------------------- sgdcore


def _sgdcore(quantity, model, theta, X, y):
    """sgdcore's runners of ``quantity`` (``per_example_grads``, ``per_example_grad_norms``
    or ``gradient_noise``): the default call and the faster form."""
    import sgdcore

    n, P = X.shape[0], model.n_params
    if quantity == "gradient_noise":

        def call(backend, fast):
            kw = {"check_finite": False} if fast else {}

            def run():
                r = sgdcore.gradient_noise(model, theta, X, y, backend=backend, **kw)
                return r.mean_grad, r.trace_cov, r.b_simple

            return run

        return sgdcore_runners(call, quantity, model.kind, fast="check_finite=False")

    f = getattr(sgdcore, quantity)
    extra = {"squared": True} if quantity == "per_example_grad_norms" else {}
    shape = (n,) if extra else (n, P)

    def call(backend, fast):
        kw = dict(extra, backend=backend)
        if fast:
            kw.update(out=np.empty(shape, dtype=theta.dtype), check_finite=False)
        return lambda: f(model, theta, X, y, **kw)

    return sgdcore_runners(call, quantity, model.kind)


# -------------------------------------------------------------------------- torch


def _torch_net(model, theta):
    """``(net, loss)``: an nn.Sequential with sgdcore's parameters and a summed loss."""
    import torch

    p = {k: torch.from_numpy(np.array(v)) for k, v in model.unflatten(theta).items()}
    if model.kind == "mlp":
        D, H, C = model.n_features, model.n_hidden, model.n_classes
        net = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, C)).to(
            p["W1"].dtype
        )
        with torch.no_grad():
            net[0].weight.copy_(p["W1"])
            net[0].bias.copy_(p["b1"])
            net[2].weight.copy_(p["W2"])
            net[2].bias.copy_(p["b2"])
        return net, torch.nn.CrossEntropyLoss(reduction="sum")
    net = torch.nn.Sequential(torch.nn.Linear(model.n_features, 1)).to(p["w"].dtype)
    with torch.no_grad():
        net[0].weight.copy_(p["w"][None, :])
        net[0].bias.copy_(p["b"])
    bce = torch.nn.BCEWithLogitsLoss(reduction="sum")
    return net, lambda z, t: bce(z[:, 0], t)


def _torch_xy(model, X, y):
    import torch

    yt = torch.from_numpy(y)
    if model.kind == "logistic_binary":
        yt = yt.to(torch.float64 if X.dtype == np.float64 else torch.float32)
    return torch.from_numpy(X), yt


def _param_rows(net, model, blocks):
    """Per-example blocks in sgdcore's named layout from the net's parameter order."""
    names = [k for k, _ in model.shapes]
    return {k: b.reshape(b.shape[0], -1).numpy() for k, b in zip(names, blocks, strict=True)}


def _torch_func_grads(model, theta, X, y):
    """``(fn, to_rows)``: fn() runs ``vmap(grad)`` and returns the per-parameter blocks."""
    import torch
    from torch.func import functional_call, grad, vmap

    net, loss = _torch_net(model, theta)
    params = {k: v.detach() for k, v in net.named_parameters()}
    Xt, yt = _torch_xy(model, X, y)

    def one(p, x, t):
        return loss(functional_call(net, p, (x[None],)), t[None])

    f = vmap(grad(one), in_dims=(None, 0, 0))

    def fn():
        with torch.no_grad():
            return f(params, Xt, yt)

    return fn, lambda out: _flat_rows(model, _param_rows(net, model, list(out.values())))


def _torch_func(kind, model, theta, X, y, want):
    def make():
        fn, rows = _torch_func_grads(model, theta, X, y)
        if kind == "grads":
            _agree("torch.func", rows(fn()), want, _tol(theta))
            return fn

        def norms():
            g = fn()
            return sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in g.values())

        if kind == "norms":
            _agree("torch.func", norms().numpy(), want, _tol(theta))
            return norms

        def noise():
            g = fn()
            sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in g.values())
            mean = [t.mean(0) for t in g.values()]
            gsq = sum(m.pow(2).sum() for m in mean)
            tr = sq.mean() - gsq
            return mean, tr, tr / gsq

        _agree("torch.func", float(noise()[1]), want, _tol(theta))
        return noise

    return make


def _torch_answer(kind, model, net, out):
    """What a torch runner's ``step()`` returned, in the form of sgdcore's answer: the
    flat per-example gradient rows, the squared norms, or ``tr F``."""
    if kind == "grads":
        return _flat_rows(model, _param_rows(net, model, [b.detach() for b in out]))
    if kind == "norms":
        return out.detach().numpy()
    return out[1]


def _backpack(kind, model, theta, X, y, want):
    def make():
        from backpack import backpack, extend
        from backpack.extensions import BatchGrad, BatchL2Grad, Variance

        net, loss = _torch_net(model, theta)
        net = extend(net)
        Xt, yt = _torch_xy(model, X, y)
        ext = {"grads": BatchGrad, "norms": BatchL2Grad, "noise": BatchL2Grad}.get(kind, Variance)

        def step():
            net.zero_grad()
            with backpack(ext()):
                loss(net(Xt), yt).backward()
            ps = list(net.parameters())
            if kind == "grads":
                return [p.grad_batch for p in ps]
            if kind == "norms":
                return sum(p.batch_l2 for p in ps)
            n = Xt.shape[0]
            gsq = sum(float(p.grad.pow(2).sum()) for p in ps) / n**2
            if kind == "noise":
                tr = float(sum(p.batch_l2.sum() for p in ps)) / n - gsq
            else:  # Variance: per-parameter (1/N) sum_i g_i^2 - G^2 of the summed loss
                tr = float(sum(p.variance.sum() for p in ps))
            return [p.grad for p in ps], tr, tr / gsq

        got = _torch_answer(kind, model, net, step())
        _agree(f"BackPACK {ext.__name__}", got, want, _tol(theta))
        return step

    return make


def _opacus(kind, model, theta, X, y, want):
    def make():
        from opacus import GradSampleModule
        from opacus.grad_sample import GradSampleModuleFastGradientClipping

        net, loss = _torch_net(model, theta)
        Xt, yt = _torch_xy(model, X, y)
        if kind == "grads":
            gsm = GradSampleModule(net, loss_reduction="sum")
        else:  # ghost clipping: norms from activations and backprops, no per-example grads
            gsm = GradSampleModuleFastGradientClipping(
                net, loss_reduction="sum", use_ghost_clipping=True
            )
        ps = list(gsm.parameters())

        def step():
            for p in ps:
                p.grad = None
                p.grad_sample = None
            loss(gsm(Xt), yt).backward()
            if kind == "grads":
                return [p.grad_sample for p in ps]
            sq = gsm.get_norm_sample() ** 2
            if kind == "norms":
                return sq
            n = Xt.shape[0]
            gsq = sum(float(p.grad.pow(2).sum()) for p in ps) / n**2
            tr = float(sq.mean()) - gsq
            return [p.grad for p in ps], tr, tr / gsq

        got = _torch_answer(kind, model, net, step())
        _agree("Opacus", got, want, _tol(theta))
        return step

    return make


# ---------------------------------------------------------------------------- JAX


def _jax(kind, model, theta, X, y, want):
    def make():
        import jax

        if X.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        p = {k: jnp.asarray(v) for k, v in model.unflatten(theta).items()}
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def one(p, x, t):
            if model.kind == "mlp":
                h = jax.nn.relu(p["W1"] @ x + p["b1"])
                z = p["W2"] @ h + p["b2"]
                return jax.nn.logsumexp(z) - z[t]
            z = p["w"] @ x + p["b"][0]
            return jax.nn.softplus(z) - t * z

        per = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))

        def sq(g):
            return sum(jnp.sum(b.reshape(b.shape[0], -1) ** 2, axis=1) for b in g.values())

        if kind == "grads":
            f = jax.jit(per)
        elif kind == "norms":
            f = jax.jit(lambda p, X, y: sq(per(p, X, y)))
        else:

            def noise(p, X, y):
                g = per(p, X, y)
                mean = {k: b.mean(0) for k, b in g.items()}
                gsq = sum(jnp.sum(m**2) for m in mean.values())
                tr = sq(g).mean() - gsq
                return mean, tr, tr / gsq

            f = jax.jit(noise)

        def run():
            return jax.block_until_ready(f(p, Xj, yj))

        out = run()
        if kind == "grads":
            got = _flat_rows(model, {k: np.asarray(v) for k, v in out.items()})
        elif kind == "norms":
            got = np.asarray(out)
        else:
            got = float(out[1])
        _agree("JAX", got, want, _tol(theta))
        return run

    return make


def _tol(theta):
    return 1e-9 if theta.dtype == np.float64 else 2e-3


# ---------------------------------------------------------------------- workloads


def _grads_runners(model, theta, X, y) -> dict:
    """Every runner of the materialised per-example gradients, checked against NumPy's."""
    import sgdcore

    want = sgdcore.per_example_grads(model, theta, X, y, backend="numpy")
    runners = _sgdcore("per_example_grads", model, theta, X, y)
    runners["torch.func vmap(grad)"] = _torch_func("grads", model, theta, X, y, want)
    runners["BackPACK BatchGrad"] = _backpack("grads", model, theta, X, y, want)
    runners["Opacus GradSampleModule"] = _opacus("grads", model, theta, X, y, want)
    runners["JAX jit(vmap(grad))"] = _jax("grads", model, theta, X, y, want)
    return runners


def workloads(quick: bool, kind: str = "digits"):
    """The four workloads on inputs of ``kind`` (``benchmarks.common.INPUTS``)."""
    import sgdcore
    from sgdcore.models import MLP, LogisticRegression

    mlp = MLP(*MLP_SHAPE)
    D, H, C = MLP_SHAPE
    P = mlp.n_params
    theta = mlp.init(0, np.float32)
    out = []

    # 1. materialised per-example gradients, MLP, B = 128
    n = 32 if quick else 128
    X, y = inputs(kind, n)
    runners = _grads_runners(mlp, theta, X, y)
    flops = 2.0 * n * (D * H + 2 * H * C)
    out.append(
        Workload(
            f"MLP per-example gradients, B={n}, float32",
            flops,
            4.0 * (n * P + X.size),
            "float32",
            runners,
        )
    )

    # 2. per-example squared norms, MLP, B = 1000
    n = 256 if quick else 1000
    X, y = inputs(kind, n)
    want = sgdcore.per_example_grad_norms(mlp, theta, X, y, squared=True, backend="numpy")
    runners = _sgdcore("per_example_grad_norms", mlp, theta, X, y)
    runners["BackPACK BatchL2Grad"] = _backpack("norms", mlp, theta, X, y, want)
    runners["Opacus ghost clipping"] = _opacus("norms", mlp, theta, X, y, want)
    runners["torch.func vmap(grad)"] = _torch_func("norms", mlp, theta, X, y, want)
    runners["JAX jit(vmap(grad))"] = _jax("norms", mlp, theta, X, y, want)
    flops = 2.0 * n * (D * H + 2 * H * C)
    out.append(
        Workload(
            f"MLP per-example squared norms, B={n}, float32",
            flops,
            4.0 * (X.size + P),
            "float32",
            runners,
        )
    )

    # 3. noise statistics G, tr F, B_simple, MLP, N = 1000 (same data)
    want = sgdcore.gradient_noise(mlp, theta, X, y, backend="numpy").trace_cov
    runners = _sgdcore("gradient_noise", mlp, theta, X, y)
    runners["BackPACK BatchL2Grad + grad"] = _backpack("noise", mlp, theta, X, y, want)
    runners["BackPACK Variance + grad"] = _backpack("variance", mlp, theta, X, y, want)
    runners["Opacus ghost clipping + grad"] = _opacus("noise", mlp, theta, X, y, want)
    runners["torch.func vmap(grad)"] = _torch_func("noise", mlp, theta, X, y, want)
    runners["JAX jit(vmap(grad))"] = _jax("noise", mlp, theta, X, y, want)
    flops = 2.0 * n * (2 * D * H + 3 * H * C)
    out.append(
        Workload(
            f"MLP gradient_noise (G, tr F, B_simple), N={n}, float32",
            flops,
            4.0 * (X.size + 2 * P),
            "float32",
            runners,
        )
    )

    # 4. materialised per-example gradients, binary logistic regression, N = 10,000
    logi = LogisticRegression(784)
    n = 2000 if quick else 10_000
    X, y = inputs(kind, n, 2, np.float64)
    th = logi.init(0, np.float64)
    runners = _grads_runners(logi, th, X, y)
    out.append(
        Workload(
            f"logistic per-example gradients, N={n}, float64",
            2.0 * n * 785,
            8.0 * (n * 785 + X.size),
            "float64",
            runners,
        )
    )
    return out
