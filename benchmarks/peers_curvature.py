"""Peers for curvature and evidence: exact HVPs (torch.func forward-over-reverse, torch
double backward, curvlinops, PyHessian, JAX), top Hessian eigenvalues (curvlinops and
torch.func with SciPy's ARPACK, PyHessian's power iteration) and the logistic evidence
along a regularisation path (laplace-torch after torch L-BFGS MAP fits; a torch Newton
loop with autograd Hessians).

All peers compute the same quantities as sgdcore: the Hessian of the summed
cross-entropy (plus ``l2 I`` where a prior is involved) at the same parameters.
sgdcore's headline is its default call (a fresh output, ``check_finite=True``); the faster
form (``out=``, ``check_finite=False``) is timed beside it where the API has one.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .common import FAST_FORM, HEADLINE, MLP_SHAPE, Workload, inputs, sgdcore_runners
from .peers_losses import sgdcore_loss_and_grad

# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _torch():
    import torch

    return torch


def _torch_mlp(theta, model, dtype):
    torch = _torch()
    p = {k: torch.tensor(v) for k, v in model.unflatten(theta).items()}
    net = torch.nn.Sequential(
        torch.nn.Linear(model.n_features, model.n_hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(model.n_hidden, model.n_classes),
    ).to(getattr(torch, dtype))
    with torch.no_grad():
        for param, value in zip(
            net.parameters(), [p["W1"], p["b1"], p["W2"], p["b2"]], strict=True
        ):
            param.copy_(value)
    return net


def _torch_params(theta, model):
    torch = _torch()
    return {k: torch.tensor(v) for k, v in model.unflatten(theta).items()}


def _torch_cost(model, X, y):
    """``params dict -> summed cross-entropy`` (functional, for torch.func)."""
    torch = _torch()
    F = torch.nn.functional

    def cost(p):
        if model.kind == "mlp":
            z = torch.relu(X @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
            return F.cross_entropy(z, y, reduction="sum")
        z = X @ p["w"] + p["b"]
        return F.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="sum")

    return cost


def _split(v, model):
    torch = _torch()
    return {k: torch.tensor(a) for k, a in model.unflatten(v).items()}


# ------------------------------------------------------------------------ HVP runners


def _sgdcore_hvp(model, theta, X, y, v):
    """sgdcore's ``hvp`` runners: the default call and the faster form."""
    import sgdcore

    def call(backend, fast):
        kw = {"out": np.empty_like(v), "check_finite": False} if fast else {}
        return lambda: sgdcore.hvp(model, theta, X, y, v, backend=backend, **kw)

    return sgdcore_runners(call, "hvp", model.kind)


def _torch_func_hvp(model, theta, X, y, v):
    def make():
        torch = _torch()
        from torch.func import grad, jvp

        p, t = _torch_params(theta, model), _split(v, model)
        cost = _torch_cost(model, torch.from_numpy(X), torch.from_numpy(y))
        g = grad(cost)
        return lambda: jvp(g, (p,), (t,))[1]

    return make


def _torch_double_backward(model, theta, X, y, v):
    def make():
        torch = _torch()
        p = {k: t.requires_grad_() for k, t in _torch_params(theta, model).items()}
        t = list(_split(v, model).values())
        cost = _torch_cost(model, torch.from_numpy(X), torch.from_numpy(y))
        params = list(p.values())

        def hvp():
            g = torch.autograd.grad(cost(p), params, create_graph=True)
            return torch.autograd.grad(g, params, grad_outputs=t)

        return hvp

    return make


def _curvlinops_operator(model, theta, X, y, dtype):
    torch = _torch()
    with _quiet():
        from curvlinops import HessianLinearOperator

    if model.kind == "mlp":
        net = _torch_mlp(theta, model, dtype)
        loss = torch.nn.CrossEntropyLoss(reduction="sum")
        target = torch.from_numpy(y)
    else:
        p = model.unflatten(theta)
        net = torch.nn.Linear(model.n_features, 1).to(getattr(torch, dtype))
        with torch.no_grad():
            net.weight.copy_(torch.tensor(p["w"])[None, :])
            net.bias.copy_(torch.tensor(p["b"]))
        loss = torch.nn.BCEWithLogitsLoss(reduction="sum")
        target = torch.from_numpy(y).to(getattr(torch, dtype))[:, None]
    params = [q for q in net.parameters()]
    with _quiet():
        op = HessianLinearOperator(
            net, loss, params, [(torch.from_numpy(X), target)], check_deterministic=False
        )
    return op


def _curvlinops_hvp(model, theta, X, y, v, dtype):
    def make():
        torch = _torch()
        op = _curvlinops_operator(model, theta, X, y, dtype)
        # curvlinops flattens the parameters in module order: sgdcore's layout.
        t = torch.from_numpy(v)
        return lambda: op @ t

    return make


def _pyhessian_hvp(model, theta, X, y, v, dtype):
    def make():
        torch = _torch()
        with _quiet():
            from pyhessian import hessian
            from pyhessian.utils import hessian_vector_product

        net = _torch_mlp(theta, model, dtype)
        crit = torch.nn.CrossEntropyLoss(reduction="sum")
        with _quiet():
            h = hessian(net, crit, data=(torch.from_numpy(X), torch.from_numpy(y)), cuda=False)
        t = [torch.from_numpy(a.copy()) for a in model.unflatten(v).values()]
        t = [t[0], t[1], t[2], t[3]]
        return lambda: hessian_vector_product(h.gradsH, h.params, t)

    return make


def _jax_hvp(model, theta, X, y, v):
    def make():
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def cost(th):
            if model.kind == "mlp":
                D, H, C = MLP_SHAPE
                W1 = th[: H * D].reshape(H, D)
                b1 = th[H * D : H * D + H]
                W2 = th[H * D + H : H * D + H + C * H].reshape(C, H)
                b2 = th[H * D + H + C * H :]
                z = jax.nn.relu(Xj @ W1.T + b1) @ W2.T + b2
                lse = jax.nn.logsumexp(z, axis=1)
                return jnp.sum(lse - jnp.take_along_axis(z, yj[:, None], 1)[:, 0])
            z = Xj @ th[:-1] + th[-1]
            return jnp.sum(jnp.logaddexp(0.0, z) - yj * z)

        hvp = jax.jit(lambda th, vv: jax.jvp(jax.grad(cost), (th,), (vv,))[1])
        th, vv = jnp.asarray(theta), jnp.asarray(v)
        hvp(th, vv).block_until_ready()
        return lambda: hvp(th, vv).block_until_ready()

    return make


def _hvp_workload(model, n, dtype, name, kind, jax=True, pyhessian=True):
    X, y = inputs(kind, n, model.n_classes, dtype)
    theta = model.init(0, dtype)
    v = np.random.default_rng(1).standard_normal(model.n_params).astype(dtype)
    runners = _sgdcore_hvp(model, theta, X, y, v)
    runners["torch.func fwd-over-rev"] = _torch_func_hvp(model, theta, X, y, v)
    runners["torch double backward"] = _torch_double_backward(model, theta, X, y, v)
    runners["curvlinops"] = _curvlinops_hvp(model, theta, X, y, v, dtype)
    if pyhessian and model.kind == "mlp":
        runners["PyHessian (cached graph)"] = _pyhessian_hvp(model, theta, X, y, v, dtype)
    if jax:
        runners["JAX jit jvp(grad)"] = _jax_hvp(model, theta, X, y, v)
    item = np.dtype(dtype).itemsize
    if model.kind == "mlp":
        D, H, C = MLP_SHAPE
        flops = 2.0 * n * (3 * D * H + 7 * H * C)
    else:
        D = model.n_features
        flops = 6.0 * n * D
    nbytes = item * (X.size + 3 * model.n_params)
    return Workload(name, flops, nbytes, dtype, runners)


def _grad_workload(model, n, dtype, kind):
    X, y = inputs(kind, n, model.n_classes, dtype)
    theta = model.init(0, dtype)
    D, H, C = MLP_SHAPE
    runners = sgdcore_loss_and_grad(model, theta, X, y)
    return Workload(
        f"MLP loss_and_grad, N={n}, {dtype} (the HVP target: <= 3x this)",
        2.0 * n * (2 * D * H + 3 * H * C),
        np.dtype(dtype).itemsize * (X.size + 2 * theta.size),
        dtype,
        runners,
        target="reference for the HVP <= 3x gradient target",
    )


# ---------------------------------------------------------------- top eigenvalues


def _sgdcore_top(model, theta, X, y, k, tol, **kw):
    def make():
        from sgdcore import curvature

        def run():
            op = curvature.HessianOperator(model, theta, X, y, **kw)
            return curvature.top_eigenvalues(op, k, tol=tol).eigenvalues

        return run

    return make


def _eigsh(op, k, tol):
    from scipy.sparse.linalg import eigsh

    return eigsh(op, k, which="LA", tol=tol, return_eigenvectors=False)


def _curvlinops_top(model, theta, X, y, k, tol, dtype):
    def make():
        def run():
            op = _curvlinops_operator(model, theta, X, y, dtype).to_scipy()
            return _eigsh(op, k, tol)

        return run

    return make


def _torch_func_top(model, theta, X, y, k, tol):
    def make():
        torch = _torch()
        from scipy.sparse.linalg import LinearOperator
        from torch.func import grad, jvp

        p = _torch_params(theta, model)
        cost = _torch_cost(model, torch.from_numpy(X), torch.from_numpy(y))
        g = grad(cost)

        def mv(v):
            t = _split(np.asarray(v, dtype=theta.dtype).ravel(), model)
            out = jvp(g, (p,), (t,))[1]
            return torch.cat([out[name].reshape(-1) for name, _ in model.shapes]).numpy()

        op = LinearOperator((model.n_params,) * 2, matvec=mv, dtype=theta.dtype)
        return lambda: _eigsh(op, k, tol)

    return make


def _pyhessian_top(model, theta, X, y, k):
    def make():
        torch = _torch()
        with _quiet():
            from pyhessian import hessian

        net = _torch_mlp(theta, model, str(theta.dtype))
        crit = torch.nn.CrossEntropyLoss(reduction="sum")

        def run():
            with _quiet():
                h = hessian(net, crit, data=(torch.from_numpy(X), torch.from_numpy(y)), cuda=False)
                return h.eigenvalues(maxIter=100, tol=1e-3, top_n=k)[0]

        return run

    return make


def _top_workload(n, dtype, kind, k=10, tol=1e-6):
    from sgdcore.models import MLP

    model = MLP(*MLP_SHAPE)
    X, y = inputs(kind, n, 10, dtype)
    theta = model.init(0, dtype)
    D, H, C = MLP_SHAPE
    runners = {
        HEADLINE: _sgdcore_top(model, theta, X, y, k, tol),
        f"sgdcore Lanczos ({FAST_FORM}check_finite=False)": _sgdcore_top(
            model, theta, X, y, k, tol, check_finite=False
        ),
        "curvlinops + eigsh": _curvlinops_top(model, theta, X, y, k, tol, dtype),
        "torch.func + eigsh": _torch_func_top(model, theta, X, y, k, tol),
        "PyHessian power iteration": _pyhessian_top(model, theta, X, y, k),
    }
    hvp_flops = 2.0 * n * (3 * D * H + 7 * H * C)
    return Workload(
        f"top-{k} Hessian eigenvalues, MLP N={n}, {dtype} (floor: {k} HVPs)",
        k * hvp_flops,
        np.dtype(dtype).itemsize * (X.size + 3 * model.n_params),
        dtype,
        runners,
    )


# -------------------------------------------------------------------------- evidence


def _sgdcore_path(model, X, y, lams):
    def make():
        from sgdcore import evidence

        return lambda: [r.log_ratio for r in evidence.evidence_path(model, X, y, lams)]

    return make


def import_laplace_torch():
    """laplace-torch, hiding a torchvision build that does not match torch.

    A torchvision build that does not match torch (e.g. a CUDA wheel beside torch+cpu)
    fails on import, and torchmetrics (which laplace-torch imports) imports it whenever
    it is installed: torchmetrics is made to treat it as absent. ImportError when
    laplace-torch is not installed.
    """
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    except Exception:
        from lightning_utilities.core.imports import RequirementCache

        orig = RequirementCache._check_requirement

        def check(self):
            orig(self)
            if self.requirement == "torchvision":
                self.available = False

        RequirementCache._check_requirement = check
        try:
            with _quiet():
                import laplace
        finally:
            RequirementCache._check_requirement = orig
    with _quiet():
        import laplace
    return laplace


def _laplace_torch_path(X, y, lams):
    def make():
        torch = _torch()
        laplace = import_laplace_torch()
        from laplace.curvature import CurvlinopsHessian

        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(Xt, yt), batch_size=len(y)
        )
        D = X.shape[1]

        class Net(torch.nn.Module):  # two logits [0, z]: softmax = the sigmoid model
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(D, 1).double()

            def forward(self, x):
                z = self.linear(x)
                return torch.cat([torch.zeros_like(z), z], dim=1)

        def run():
            default = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)  # curvlinops builds dense matrices in it
            try:
                return fit_all()
            finally:
                torch.set_default_dtype(default)

        def fit_all():
            out = []
            net = Net()
            with torch.no_grad():
                for p in net.parameters():
                    p.zero_()
            for lam in sorted(lams, reverse=True):
                opt = torch.optim.LBFGS(
                    net.parameters(),
                    max_iter=500,
                    tolerance_grad=1e-10,
                    tolerance_change=0,
                    history_size=20,
                    line_search_fn="strong_wolfe",
                )

                def closure(lam=lam, opt=opt):
                    opt.zero_grad()
                    loss = torch.nn.functional.cross_entropy(net(Xt), yt, reduction="sum")
                    loss = loss + 0.5 * lam * sum((p**2).sum() for p in net.parameters())
                    loss.backward()
                    return loss

                opt.step(closure)
                with _quiet():
                    la = laplace.Laplace(
                        net,
                        "classification",
                        subset_of_weights="all",
                        hessian_structure="full",
                        prior_precision=torch.tensor(lam),
                        backend=CurvlinopsHessian,
                    )
                    la.fit(loader, progress_bar=False)
                out.append(float(la.log_marginal_likelihood()))
            return out

        return run

    return make


def _torch_newton_path(X, y, lams):
    def make():
        torch = _torch()
        Xt = torch.cat([torch.from_numpy(X), torch.ones(len(y), 1, dtype=torch.float64)], 1)
        yt = torch.from_numpy(y).double()

        def run():
            theta = torch.zeros(Xt.shape[1], dtype=torch.float64)
            out = []
            for lam in sorted(lams, reverse=True):
                for _ in range(100):
                    z = Xt @ theta
                    p = torch.sigmoid(z)
                    g = Xt.T @ (p - yt) + lam * theta
                    H = Xt.T @ (Xt * (p * (1 - p))[:, None]) + lam * torch.eye(Xt.shape[1])
                    L = torch.linalg.cholesky(H)
                    if g.norm() < 1e-10 * 100:
                        break
                    theta = theta - torch.cholesky_solve(g[:, None], L)[:, 0]
                z = Xt @ theta
                cost = torch.nn.functional.softplus(z).sum() - (yt * z).sum()
                cost = cost + 0.5 * lam * theta @ theta
                logdet = 2 * torch.log(torch.diagonal(L)).sum()
                out.append(float(cost + 0.5 * (logdet - len(theta) * np.log(lam))))
            return out

        return run

    return make


def _evidence_workload(kind, n=800, n_lams=20):
    from sgdcore.models import LogisticRegression

    model = LogisticRegression(784)
    X, y = inputs(kind, n, 2, np.float64)
    lams = np.logspace(-3, 3, n_lams)
    P = model.n_params
    return Workload(
        f"logistic evidence at {n_lams} l2 values incl. MAP fits, N={n}, float64",
        n_lams * (n * P * P + P**3 / 3),
        8.0 * X.size,
        "float64",
        {
            HEADLINE: _sgdcore_path(model, X, y, lams),
            "laplace-torch (+ torch L-BFGS)": _laplace_torch_path(X, y, lams),
            "torch Newton + Cholesky": _torch_newton_path(X, y, lams),
        },
    )


def workloads(quick: bool, kind: str = "digits"):
    """HVPs, top eigenvalues and the evidence path on inputs of ``kind``
    (``benchmarks.common.INPUTS``)."""
    from sgdcore.models import MLP, LogisticRegression

    mlp = MLP(*MLP_SHAPE)
    n = 256 if quick else 1000
    n_log = 2_000 if quick else 10_000
    out = []
    for dtype in ("float32", "float64"):
        out.append(_hvp_workload(mlp, n, dtype, f"MLP exact HVP, N={n}, {dtype}", kind))
        out.append(_grad_workload(mlp, n, dtype, kind))
    logistic = LogisticRegression(784)
    out.append(_hvp_workload(logistic, n_log, "float64", f"logistic HVP, N={n_log}, float64", kind))
    out.append(_top_workload(n, "float32", kind))
    out.append(_evidence_workload(kind, n_lams=5 if quick else 20))
    return out
