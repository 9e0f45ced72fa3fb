"""sgdcore's cuda backend against torch (eager, torch.func) and JAX (jit) on one GPU.

Workloads (float32 unless named): MLP 784-800-10 per-example squared norms at B = 1,000;
gradient-noise statistics (sum of gradients and squared norms) at N = 10,000; exact MLP
HVP at N = 10,000 (f32, f64); binary logistic HVP at N = 100,000 (f64). Median of
repeated calls after warm-up, each timed with device synchronisation. The floor is the
bytes the quantity must read (X once) at the measured device-copy bandwidth (bytes read +
written per second); the FLOP floor of the GEMMs is not computed here. Prints one
row per workload with the ratios and writes JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from sgdcore.models import MLP, LogisticRegression

cp = None  # CuPy, imported by main(): this module is importable without a GPU


def timeit(fn, sync, reps=20, warm=3):
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
    mlp = MLP(784, 800, 10)
    rows = []
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
        for peers in (torch_peers, jax_peers):
            try:
                for pname, fn in peers(model, theta, X, y, v, what).items():
                    row[f"{pname}_s"] = timeit(fn, sync)
            except Exception as exc:  # a missing or failing peer is reported, not fatal
                row[f"{peers.__name__}_error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
    # binary logistic HVP, one pass over X
    lr = LogisticRegression(784)
    theta, X, y, v = data(lr, 100_000, np.float64)
    out = cp.empty((1, lr.n_params))
    rows.append(
        {
            "workload": "logistic hvp N=100000 f64",
            "sgdcore_s": timeit(lambda: dcurv.hvp(lr, theta, X, y, v[None], out), sync),
            "floor_s": X.nbytes / bw,
        }
    )
    print(f"device copy bandwidth {bw / 1e12:.2f} TB/s (read + write)")
    for r in rows:
        peers = {k: r[k] for k in r if k.endswith("_s") and k not in ("sgdcore_s", "floor_s")}
        best = min(peers.values()) if peers else float("nan")
        print(
            f"{r['workload']:28s} sgdcore {r['sgdcore_s'] * 1e3:8.3f} ms  "
            f"fastest peer {best * 1e3:8.3f} ms  peer/sgdcore {best / r['sgdcore_s']:6.2f}  "
            f"sgdcore/floor {r['sgdcore_s'] / r['floor_s']:6.2f}"
        )
        for k in r:
            if k.endswith("_error"):
                print(f"    {k}: {r[k]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"copy_bandwidth_Bps": bw, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
