"""sgdcore's cuda backend against torch (eager, torch.func) and JAX (jit) on one GPU.

Workloads (float32 unless named): MLP 784-800-10 per-example squared norms at B = 1,000;
gradient-noise statistics (sum of gradients and squared norms) at N = 10,000; exact MLP
HVP at N = 10,000 (f32, f64); binary logistic HVP at N = 100,000 (f64); the top-10
eigenvalues of the MLP's Hessian at N = 10,000 (f32 products, Lanczos to a relative
residual of 1e-4); the Laplace evidence of binary logistic regression (784 inputs, f64)
at 20 values of lambda with N = 10,000 (Newton to |grad| <= 1e-10 |grad(0)|, Cholesky).

Peers on the same GPU: torch (eager and ``torch.func``) and JAX (``jit``). For the
eigenvalues they are the usual recipe -- their HVP behind a SciPy ``LinearOperator``
under ``eigsh`` (ARPACK, vectors on the host); for the evidence, the same Newton
iteration and Cholesky written in each. A peer that is missing or fails is reported in
its row and skipped. Median of repeated calls after warm-up, each timed with device
synchronisation. The floor is the bytes the quantity must read (X once) at the measured
device-copy bandwidth (bytes read + written per second); the FLOP floor of the GEMMs is
not computed here. Prints one row per workload with the ratios and writes JSON with
``--json PATH`` after every row (a run cut short keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import types

import numpy as np

from sgdcore.models import MLP, LogisticRegression

cp = None  # CuPy, imported by main(): this module is importable without a GPU


def timeit(fn, sync, reps=20, warm=3):
    """Median seconds of ``reps`` calls of ``fn`` after ``warm`` calls, synchronised."""
    for _ in range(warm):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def copy_bandwidth():
    """Device-to-device copy rate, bytes read + written per second."""
    a = cp.empty(1 << 28, dtype=cp.uint8)
    b = cp.empty_like(a)
    t = timeit(lambda: b.__setitem__(Ellipsis, a), cp.cuda.Device().synchronize)
    return 2 * a.nbytes / t


def data(model, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = cp.asarray(rng.standard_normal((n, model.n_features)).astype(dtype))
    y = cp.asarray(rng.integers(0, model.n_classes, n))
    theta = cp.asarray(model.init(seed, dtype))
    v = cp.asarray(rng.standard_normal(model.n_params).astype(dtype))
    return theta, X, y, v


def torch_peers(model, theta, X, y, v, what):
    import torch
    from torch.func import functional_call, grad, vmap

    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    t_theta = torch.as_tensor(theta, device=dev)
    t_X, t_y = torch.as_tensor(X, device=dev), torch.as_tensor(y, device=dev)
    t_v = torch.as_tensor(v, device=dev)
    D, H, C = model.n_features, model.n_hidden, model.n_classes
    net = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, C))
    net = net.to(dev, t_theta.dtype)
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    shapes = [(H, D), (H,), (C, H), (C,)]

    def unflat(th):
        out, o = {}, 0
        for n_, s in zip(names, shapes, strict=True):
            k = int(np.prod(s))
            out[n_] = th[o : o + k].reshape(s)
            o += k
        return out

    def ce(th, x, t):
        z = functional_call(net, unflat(th), (x,))
        return torch.nn.functional.cross_entropy(z, t, reduction="sum")

    if what == "norms":
        per = vmap(grad(lambda th, x, t: ce(th, x[None], t[None])), in_dims=(None, 0, 0))
        return {"torch.func": lambda: (per(t_theta, t_X, t_y) ** 2).sum(1)}
    if what == "noise":
        per = vmap(grad(lambda th, x, t: ce(th, x[None], t[None])), in_dims=(None, 0, 0))

        def noise():
            g = per(t_theta, t_X, t_y)
            return g.sum(0), (g**2).sum(1)

        return {"torch.func": noise}
    if what == "hvp_fn":  # the HVP as a function of the direction
        return lambda vec: torch.func.jvp(
            lambda th: torch.func.grad(ce)(th, t_X, t_y), (t_theta,), (vec,)
        )[1]
    if what == "hvp":
        return {
            "torch.func": lambda: torch.func.jvp(
                lambda th: torch.func.grad(ce)(th, t_X, t_y), (t_theta,), (t_v,)
            )[1]
        }
    raise ValueError(what)


def jax_peers(model, theta, X, y, v, what):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    j = lambda a: jnp.asarray(cp.asnumpy(a))  # noqa: E731
    th, Xj, yj, vj = j(theta), j(X), j(y), j(v)
    D, H, C = model.n_features, model.n_hidden, model.n_classes

    def ce(t, x, yy):
        W1 = t[: H * D].reshape(H, D)
        b1 = t[H * D : H * D + H]
        W2 = t[H * D + H : H * D + H + C * H].reshape(C, H)
        b2 = t[H * D + H + C * H :]
        z = jnp.maximum(x @ W1.T + b1, 0) @ W2.T + b2
        return jnp.sum(jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, yy[:, None], 1)[:, 0])

    per = jax.vmap(jax.grad(lambda t, x, yy: ce(t, x[None], yy[None])), in_axes=(None, 0, 0))
    if what == "hvp_fn":  # the HVP as a function of the direction
        return jax.jit(lambda vv: jax.jvp(lambda t: jax.grad(ce)(t, Xj, yj), (th,), (vv,))[1])
    if what == "norms":
        f = jax.jit(lambda: (per(th, Xj, yj) ** 2).sum(1))
    elif what == "noise":

        def noise():
            g = per(th, Xj, yj)
            return g.sum(0), (g**2).sum(1)

        f = jax.jit(noise)
    else:
        f = jax.jit(lambda: jax.jvp(lambda t: jax.grad(ce)(t, Xj, yj), (th,), (vj,))[1])
    return {"jax.jit": lambda: jax.block_until_ready(f())}


# ------------------------------------------------- top-10 Hessian eigenvalues (MLP)

EIG_K, EIG_TOL = 10, 1e-4


def sgdcore_eigen(model, theta, X, y):
    from sgdcore import curvature

    def run():
        op = curvature.HessianOperator(model, theta, X, y)
        return curvature.top_eigenvalues(op, EIG_K, tol=EIG_TOL).eigenvalues

    return run


def _eigsh(hvp_host, P):
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((P, P), matvec=hvp_host, dtype=np.float64)
    return lambda: eigsh(op, k=EIG_K, which="LA", tol=EIG_TOL, return_eigenvectors=False)


def torch_eigen(model, theta, X, y):
    import torch

    hvp = torch_peers(model, theta, X, y, theta, "hvp_fn")
    dtype = torch.float32 if theta.dtype == np.float32 else torch.float64

    def host(v):
        t = torch.as_tensor(np.asarray(v, dtype=np.float64).ravel(), device="cuda")
        return hvp(t.to(dtype)).double().cpu().numpy()

    return {"torch.func+eigsh": _eigsh(host, model.n_params)}


def jax_eigen(model, theta, X, y):
    import jax.numpy as jnp

    hvp = jax_peers(model, theta, X, y, theta, "hvp_fn")

    def host(v):
        return np.asarray(hvp(jnp.asarray(np.asarray(v).ravel(), dtype=theta.dtype)), np.float64)

    return {"jax.jit+eigsh": _eigsh(host, model.n_params)}


# ------------------------------------------- logistic evidence at 20 values of lambda

LAMS = np.geomspace(1e-2, 1e2, 20)


def sgdcore_evidence(model, X, y):
    from sgdcore import evidence

    return lambda: [r.log_evidence for r in evidence.evidence_path(model, X, y, LAMS)]


def _newton_path(lib, Xt, y, eye):
    """The same Newton path written against one array library (a peer's ``lib``:
    sigmoid, softplus, cholesky, tri(L, b, transpose), logdet(L)): warm-started from the
    previous minimum, |grad| <= 1e-10 |grad(0)|, Cholesky solves. The log evidences in
    the order of ``LAMS``."""
    P = Xt.shape[1]
    theta = 0 * eye[0]
    out = []
    for lam in sorted(LAMS, reverse=True):
        g0 = None
        for _ in range(100):
            p = lib.sigmoid(Xt @ theta)
            g = Xt.T @ (p - y) + lam * theta
            gn = float((g @ g) ** 0.5)
            if g0 is None:
                g0 = float(((Xt.T @ (0.5 - y)) @ (Xt.T @ (0.5 - y))) ** 0.5)
            H = (Xt.T * (p * (1 - p))) @ Xt + lam * eye
            L = lib.cholesky(H)
            if gn <= 1e-10 * g0:
                break
            theta = theta - lib.tri(L, lib.tri(L, g, False), True)
        z = Xt @ theta
        cost = float((lib.softplus(z) - y * z).sum() + 0.5 * lam * (theta @ theta))
        out.append(-(cost + 0.5 * (lib.logdet(L) - P * np.log(lam))))
    return out[::-1]


def torch_evidence(model, X, y):
    import torch

    Xt = torch.as_tensor(X, device="cuda")
    Xt = torch.cat([Xt, torch.ones(Xt.shape[0], 1, device="cuda", dtype=Xt.dtype)], 1)
    yt = torch.as_tensor(y, device="cuda").to(Xt.dtype)
    eye = torch.eye(Xt.shape[1], device="cuda", dtype=Xt.dtype)

    def tri(L, b, transpose):
        A = L.T if transpose else L
        return torch.linalg.solve_triangular(A, b[:, None], upper=transpose)[:, 0]

    lib = types.SimpleNamespace(
        sigmoid=torch.sigmoid,
        softplus=torch.nn.functional.softplus,
        cholesky=torch.linalg.cholesky,
        tri=tri,
        logdet=lambda L: 2 * float(torch.log(torch.diagonal(L)).sum()),
    )
    return {"torch": lambda: _newton_path(lib, Xt, yt, eye)}


def jax_evidence(model, X, y):
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl

    jax.config.update("jax_enable_x64", True)
    Xj = jnp.asarray(cp.asnumpy(X))
    Xt = jnp.concatenate([Xj, jnp.ones((Xj.shape[0], 1), Xj.dtype)], 1)
    yj = jnp.asarray(cp.asnumpy(y)).astype(Xt.dtype)
    eye = jnp.eye(Xt.shape[1], dtype=Xt.dtype)
    chol = jax.jit(lambda H: jnp.linalg.cholesky(H))
    tri = jax.jit(lambda L, b, t: jsl.solve_triangular(L, b, lower=True, trans=t), static_argnums=2)

    lib = types.SimpleNamespace(
        sigmoid=jax.nn.sigmoid,
        softplus=jax.nn.softplus,
        cholesky=chol,
        tri=lambda L, b, t: tri(L, b, 1 if t else 0),
        logdet=lambda L: 2 * float(jnp.log(jnp.diagonal(L)).sum()),
    )
    return {"jax": lambda: _newton_path(lib, Xt, yj, eye)}


def _peer_rows(row, makers, args, sync, reps=20, warm=3):
    """Time each peer ``make(*args)`` of ``makers`` into ``row``; a missing or failing
    one is noted in the row and skipped."""
    for make in makers:
        try:
            for pname, fn in make(*args).items():
                row[f"{pname}_s"] = timeit(fn, sync, reps, warm)
        except Exception as exc:  # a missing or failing peer is reported, not fatal
            row[f"{make.__name__}_error"] = f"{type(exc).__name__}: {exc}"[:300]


def main():
    global cp
    import cupy

    from sgdcore.kernels._cuda import curvature as dcurv
    from sgdcore.kernels._cuda import grads as dgrads

    cp = cupy
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sync = cp.cuda.Device().synchronize
    bw = copy_bandwidth()
    print(f"device copy bandwidth {bw / 1e12:.2f} TB/s (read + write)")
    mlp = MLP(784, 800, 10)
    rows = []

    def report(row):
        """Print one row and rewrite the JSON with every row so far."""
        rows.append(row)
        peers = {k: row[k] for k in row if k.endswith("_s") and k not in ("sgdcore_s", "floor_s")}
        best = min(peers.values()) if peers else float("nan")
        print(
            f"{row['workload']:38s} sgdcore {row['sgdcore_s'] * 1e3:9.3f} ms  "
            f"fastest peer {best * 1e3:9.3f} ms  peer/sgdcore {best / row['sgdcore_s']:6.2f}  "
            f"sgdcore/floor {row['sgdcore_s'] / row['floor_s']:7.2f}",
            flush=True,
        )
        for k in row:
            if k.endswith("_error"):
                print(f"    {k}: {row[k]}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"copy_bandwidth_Bps": bw, "rows": rows}, f, indent=1)

    work = [
        ("mlp norms B=1000 f32", mlp, 1000, np.float32, "norms"),
        ("mlp noise N=10000 f32", mlp, 10000, np.float32, "noise"),
        ("mlp hvp N=10000 f32", mlp, 10000, np.float32, "hvp"),
        ("mlp hvp N=10000 f64", mlp, 10000, np.float64, "hvp"),
    ]
    for name, model, n, dtype, what in work:
        theta, X, y, v = data(model, n, dtype)
        if what == "norms":
            out = cp.empty(n, dtype=dtype)
            ours = lambda: dgrads.per_example_grad_sqnorms(model, theta, X, y, out)  # noqa: E731,B023
        elif what == "noise":
            g, sq = cp.empty_like(theta), cp.empty(n, dtype=dtype)
            ours = lambda: dgrads.gradient_noise(model, theta, X, y, g, sq)  # noqa: E731,B023
        else:
            out = cp.empty((1, model.n_params), dtype=dtype)
            ours = lambda: dcurv.hvp(model, theta, X, y, v[None], out)  # noqa: E731,B023
        row = {"workload": name, "sgdcore_s": timeit(ours, sync), "floor_s": X.nbytes / bw}
        _peer_rows(row, (torch_peers, jax_peers), (model, theta, X, y, v, what), sync)
        report(row)
    # binary logistic HVP, one pass over X
    lr = LogisticRegression(784)
    theta, X, y, v = data(lr, 100_000, np.float64)
    out = cp.empty((1, lr.n_params))
    report(
        {
            "workload": "logistic hvp N=100000 f64",
            "sgdcore_s": timeit(lambda: dcurv.hvp(lr, theta, X, y, v[None], out), sync),
            "floor_s": X.nbytes / bw,
        }
    )
    # top-10 Hessian eigenvalues: whole solves, so few repetitions
    theta, X, y, _ = data(mlp, 10_000, np.float32)
    row = {
        "workload": "mlp top-10 eig N=10000 f32",
        "sgdcore_s": timeit(sgdcore_eigen(mlp, theta, X, y), sync, reps=3, warm=1),
        "floor_s": X.nbytes / bw,
    }
    _peer_rows(row, (torch_eigen, jax_eigen), (mlp, theta, X, y), sync, reps=3, warm=1)
    report(row)
    # the logistic evidence path
    theta, X, y, _ = data(lr, 10_000, np.float64)
    row = {
        "workload": "logistic evidence 20 lam N=10000 f64",
        "sgdcore_s": timeit(sgdcore_evidence(lr, X, y), sync, reps=3, warm=1),
        "floor_s": X.nbytes / bw,
    }
    _peer_rows(row, (torch_evidence, jax_evidence), (lr, X, y), sync, reps=3, warm=1)
    report(row)


if __name__ == "__main__":
    main()
