"""The reference sweep: sgdcore's training engine against PyTorch and JAX.

    python benchmarks/peers_train.py [--quick] [--steps 500] [--inputs dense,digits]
                                     [--only "sgdcore (default call)",torch-eager,...]

MLP 784-800-10 on MNIST-shaped data (1,000 train, 10,000 test), B in
{1, 4, 16, 64, 256, 1000}, 3 seeds per B, 500 steps of SGD with momentum 0.9 (lr 0.1),
then the test accuracy of each model. Two kinds of inputs (``--inputs``, default both, one
table each): ``digits``, ``sgdcore.data.synthetic``'s teacher-labelled digit-like inputs,
and ``dense``, ``benchmarks.common.inputs("dense", ...)``: X uniform in [0, 1) with
uniform random labels (test accuracy near chance). Every runner starts from the same
initial parameters and draws the same mini-batches (``sgdcore.philox``), so their final
accuracies agree up to float32 rounding; the table prints them as a check.

Peers: a plain PyTorch loop (one model at a time, ``torch.optim.SGD``), ``torch.func`` +
``vmap`` ensembles, ``torch.compile`` of the eager loop's loss, and JAX (``jit`` +
``lax.scan`` over steps + ``vmap`` over models). torch runs on one thread below B = 64
(faster there than its thread pool) and on every core from B = 64 on. Our update ``v = m v - lr g;
theta += v`` is torch's ``buf = m buf + g; p -= lr buf`` (dampening 0) with
``v = -lr buf``, so every runner does the same arithmetic.

sgdcore's headline runner is ``sgdcore.train`` called with its defaults (backend
``auto``). The digits are about 80% zeros, like MNIST: sgdcore's C++ engine then runs the
first layer on the non-zeros (``csrc/cpu/sparse_inputs.h``), so it can beat the floor,
which counts the dense FLOPs; ``sgdcore-cpp-gemm`` (digits only) is the same engine kept on
its GEMM path, the one the GEMM-ceiling target is about, which dense inputs take anyway.

BLAS kernels: this machine's environment pins OpenBLAS to its AVX2 (Haswell) kernels for
old builds' sake, while JAX and torch use AVX-512. To compare like with like, unset both
variables in the benchmark's command alone (the printed header names the kernels):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/peers_train.py

As a module, ``workloads(quick)`` gives ``benchmarks/peers.py`` one workload per B.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import (
        HEADLINE,
        MLP_SHAPE,
        Workload,
        add_inputs_option,
        chosen_inputs,
        inputs,
    )
else:
    from .common import HEADLINE, MLP_SHAPE, Workload, add_inputs_option, chosen_inputs, inputs

BATCH_SIZES = (1, 4, 16, 64, 256, 1000)
SEEDS = (0, 1, 2)
LR, MOMENTUM = 0.1, 0.9
N_TRAIN, N_TEST = 1000, 10_000


def data(n_train=N_TRAIN, n_test=N_TEST, kind="digits"):
    """Seeded MNIST-shaped train and test sets (float32) of input ``kind``: ``"digits"``
    (teacher-labelled, ``sgdcore.data.synthetic``) or ``"dense"``
    (``benchmarks.common.inputs``)."""
    if kind == "dense":
        return inputs(kind, n_train, seed=0), inputs(kind, n_test, seed=1)
    from sgdcore.data import synthetic

    tr, te = synthetic(n_train, seed=0), synthetic(n_test, seed=1)
    return (tr.X, tr.y), (te.X, te.y)


class Problem:
    """Everything a runner needs, prepared once (not timed)."""

    def __init__(self, B, steps, seeds=SEEDS, n_train=N_TRAIN, n_test=N_TEST, kind="digits"):
        from sgdcore import philox
        from sgdcore.models import MLP

        self.model = MLP(*MLP_SHAPE)
        (self.X, self.y), (self.Xt, self.yt) = data(n_train, n_test, kind)
        self.B, self.steps, self.seeds = B, steps, list(seeds)
        self.init = np.stack([self.model.init(s, np.float32) for s in self.seeds])
        # [K, steps, B] batch indices, the engine's schedule.
        self.idx = np.stack([philox.batch_indices(s, n_train, B, steps) for s in self.seeds])

    def params(self, k):
        """Model k's initial tensors as NumPy arrays (W1, b1, W2, b2)."""
        p = self.model.unflatten(self.init[k])
        return [np.array(p[n]) for n in ("W1", "b1", "W2", "b2")]

    def flops(self):
        D, H, C = MLP_SHAPE
        K, B = len(self.seeds), self.B
        train = 4 * B * D * H + 6 * B * H * C
        return K * (self.steps * train + 2 * self.Xt.shape[0] * (D * H + H * C))

    def bytes(self):
        # Parameters and velocity read and written once per step (float32).
        return len(self.seeds) * self.steps * 16.0 * self.model.n_params


# ------------------------------------------------------------------------- runners
# Each factory takes a Problem and returns a zero-argument callable that runs the whole
# group and returns the test accuracies (K,); ImportError when the peer is missing.


def sgdcore_runner(backend, **plan):
    """sgdcore.train on one backend; ``plan``: C++ plan fields to force (e.g. sparse)."""

    def make(pb: Problem):
        import sgdcore
        from sgdcore.kernels._cpp import train as cpp

        chosen = cpp.plan

        def forced(*a, **kw):
            return dataclasses.replace(chosen(*a, **kw), **plan)

        def go():
            with mock.patch.object(cpp, "plan", forced):
                return run()

        def run():
            df = sgdcore.train(
                pb.model,
                (pb.X, pb.y),
                (pb.Xt, pb.yt),
                batch_size=pb.B,
                lr=LR,
                momentum=MOMENTUM,
                steps=pb.steps,
                seeds=pb.seeds,
                eval_steps=[pb.steps],
                init=pb.init,
                dtype=np.float32,
                backend=backend,
            )
            return df.test_accuracy.to_numpy()

        return go

    return make


def _torch(B):
    """torch, with its intra-op threads set for batch size B: one below B = 64, where its
    thread pool only adds overhead (and spins on a busy machine), else every core."""
    import torch

    torch.set_num_threads(1 if B < 64 else (os.cpu_count() or 1))
    return torch


def torch_eager(pb: Problem, compile=False):
    torch = _torch(pb.B)
    F = torch.nn.functional
    X, y = torch.from_numpy(pb.X), torch.from_numpy(pb.y)
    Xt, yt = torch.from_numpy(pb.Xt), torch.from_numpy(pb.yt)
    idx = torch.from_numpy(pb.idx)

    def loss_fn(W1, b1, W2, b2, xb, yb):
        return F.cross_entropy(torch.relu(xb @ W1.T + b1) @ W2.T + b2, yb)

    if compile:
        loss_fn = torch.compile(loss_fn)
        # compile forward and backward once, outside the timing
        p = [torch.tensor(a, requires_grad=True) for a in pb.params(0)]
        loss_fn(*p, X[idx[0, 0]], y[idx[0, 0]]).backward()

    def go():
        accs = []
        for k in range(len(pb.seeds)):
            p = [torch.tensor(a, requires_grad=True) for a in pb.params(k)]
            opt = torch.optim.SGD(p, lr=LR, momentum=MOMENTUM)
            for t in range(pb.steps):
                b = idx[k, t]
                opt.zero_grad(set_to_none=True)
                loss_fn(*p, X[b], y[b]).backward()
                opt.step()
            with torch.no_grad():
                W1, b1, W2, b2 = p
                pred = (torch.relu(Xt @ W1.T + b1) @ W2.T + b2).argmax(1)
                accs.append(float((pred == yt).float().mean()))
        return np.array(accs)

    return go


def torch_compiled(pb: Problem):
    return torch_eager(pb, compile=True)


def torch_func_vmap(pb: Problem):
    torch = _torch(pb.B)
    from torch.func import grad, vmap

    F = torch.nn.functional
    X, y = torch.from_numpy(pb.X), torch.from_numpy(pb.y)
    Xt, yt = torch.from_numpy(pb.Xt), torch.from_numpy(pb.yt)
    idx = torch.from_numpy(pb.idx)
    K = len(pb.seeds)

    def loss_fn(p, xb, yb):
        W1, b1, W2, b2 = p
        return F.cross_entropy(torch.relu(xb @ W1.T + b1) @ W2.T + b2, yb)

    grads = vmap(grad(loss_fn))

    def go():
        p = [torch.from_numpy(np.stack([pb.params(k)[i] for k in range(K)])) for i in range(4)]
        buf = [torch.zeros_like(t) for t in p]
        with torch.no_grad():
            for t in range(pb.steps):
                b = idx[:, t]  # [K, B]
                g = grads(p, X[b], y[b])
                torch._foreach_mul_(buf, MOMENTUM)
                torch._foreach_add_(buf, g)
                torch._foreach_add_(p, buf, alpha=-LR)
            W1, b1, W2, b2 = p
            h = torch.relu(torch.einsum("nd,khd->knh", Xt, W1) + b1[:, None])
            pred = (torch.einsum("knh,kch->knc", h, W2) + b2[:, None]).argmax(2)
            return (pred == yt).float().mean(1).numpy()

    return go


def jax_scan_vmap(pb: Problem, chunk=100):
    try:
        import jax
    except ImportError as exc:
        raise ImportError(f"jax is not installed ({exc})") from None
    import jax.numpy as jnp

    K = len(pb.seeds)
    steps = pb.steps
    chunk = min(chunk, steps) or 1
    while steps % chunk:
        chunk -= 1
    X, y = jnp.asarray(pb.X), jnp.asarray(pb.y)
    Xt, yt = jnp.asarray(pb.Xt), jnp.asarray(pb.yt)
    idx = jnp.asarray(pb.idx.transpose(1, 0, 2).reshape(steps // chunk, chunk, K, pb.B))

    def loss_fn(p, xb, yb):
        W1, b1, W2, b2 = p
        z = jax.nn.relu(xb @ W1.T + b1) @ W2.T + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], 1))

    grads = jax.vmap(jax.grad(loss_fn))

    @jax.jit
    def run_chunk(p, buf, idx_chunk):
        def body(carry, b):
            p, buf = carry
            g = grads(p, X[b], y[b])
            buf = jax.tree.map(lambda u, gi: MOMENTUM * u + gi, buf, g)
            p = jax.tree.map(lambda w, u: w - LR * u, p, buf)
            return (p, buf), None

        (p, buf), _ = jax.lax.scan(body, (p, buf), idx_chunk)
        return p, buf

    @jax.jit
    def accuracy(p):
        W1, b1, W2, b2 = p
        h = jax.nn.relu(jnp.einsum("nd,khd->knh", Xt, W1) + b1[:, None])
        pred = (jnp.einsum("knh,kch->knc", h, W2) + b2[:, None]).argmax(2)
        return (pred == yt).mean(1)

    def start():
        p = tuple(jnp.asarray(np.stack([pb.params(k)[i] for k in range(K)])) for i in range(4))
        return p, jax.tree.map(jnp.zeros_like, p)

    p, buf = start()
    jax.block_until_ready(run_chunk(p, buf, idx[0]))  # compile outside the timing
    jax.block_until_ready(accuracy(p))

    def go():
        p, buf = start()
        for c in range(steps // chunk):
            p, buf = run_chunk(p, buf, idx[c])
        return np.asarray(accuracy(p))

    return go


RUNNERS = {
    # sgdcore.train as a user calls it: backend "auto" (the C++ engine where it is built).
    HEADLINE: sgdcore_runner("auto"),
    # The C++ engine kept on its GEMM path (as for dense inputs): what the GEMM-ceiling
    # target measures. On MNIST-like digits the default call takes the sparse path.
    "sgdcore-cpp-gemm": sgdcore_runner("cpp", sparse=False),
    "sgdcore-numba": sgdcore_runner("numba"),
    "sgdcore-numpy": sgdcore_runner("numpy"),
    "torch-eager": torch_eager,
    "torch.func+vmap": torch_func_vmap,
    "torch.compile": torch_compiled,
    "jax-scan-vmap": jax_scan_vmap,
}
PEERS = ("torch-eager", "torch.func+vmap", "torch.compile", "jax-scan-vmap")


def _runs(name, B, kind):
    """Whether runner ``name`` runs at batch size B on inputs of ``kind``: the NumPy engine
    only at small B, the forced GEMM path only on digits (dense inputs take it anyway)."""
    if name == "sgdcore-numpy" and B > 64:
        return False
    return name != "sgdcore-cpp-gemm" or kind == "digits"


def workloads(quick: bool, kind: str = "digits"):
    """One workload per batch size for ``benchmarks/peers.py``, on inputs of ``kind``."""
    steps = 50 if quick else 500
    sizes = (1, 16, 256) if quick else BATCH_SIZES
    out = []
    for B in sizes:
        pb = Problem(B, steps, kind=kind)
        names = [n for n in RUNNERS if _runs(n, B, kind) and (n != "sgdcore-numpy" or B <= 16)]
        runners = {n: (lambda f=RUNNERS[n], pb=pb: f(pb)) for n in names}
        target = ">= 3x fastest peer" if B <= 16 else (">= 85% of GEMM ceiling" if B >= 256 else "")
        out.append(
            Workload(
                f"SGD, 3 x MLP 784-800-10, B={B}, {steps} steps + test accuracy (10,000)",
                pb.flops(),
                pb.bytes(),
                "float32",
                runners,
                target or "see reference sweep",
            )
        )
    return out


# ------------------------------------------------------------ the reference sweep


def sweep(
    steps=500,
    sizes=BATCH_SIZES,
    only=None,
    warm_steps=5,
    repeat=1,
    kind="digits",
    out=sys.stdout,
):
    """Time every runner on every B on inputs of ``kind``: after a short warm-up each,
    ``repeat`` rounds over all runners, keeping each one's best time; print the table."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from threadpoolctl import threadpool_limits

    from benchmarks.peers import blas_kernels, copy_bandwidth, gemm_rate

    # The ceiling: NumPy's BLAS on every core, or one core's rate times the cores (what
    # independent single-threaded GEMMs can reach), whichever is higher.
    with threadpool_limits(1, user_api="blas"):
        one = gemm_rate("float32")
    cores = os.cpu_count() or 1
    rate, bw = max(gemm_rate("float32"), cores * one), copy_bandwidth()
    print(
        f"machine: {cores} cores, float32 GEMM ceiling {rate / 1e9:.0f} GFLOP/s "
        f"({one / 1e9:.0f} on one core; OpenBLAS kernels {blas_kernels()}), "
        f"copy {bw / 1e9:.1f} GB/s; load average {os.getloadavg()[0]:.1f}; {kind} inputs",
        file=out,
    )
    names = [n for n in RUNNERS if only is None or n in only]
    times = {n: {} for n in names}
    accs = {n: {} for n in names}
    floors = {}
    for B in sizes:
        pb = Problem(B, steps, kind=kind)
        floors[B] = max(pb.flops() / rate, pb.bytes() / bw)
        ready = {}
        for name in names:
            if not _runs(name, B, kind):
                continue
            try:
                RUNNERS[name](Problem(B, warm_steps, kind=kind))()  # compile, caches, threads
                ready[name] = RUNNERS[name](pb)
            except ImportError as exc:
                print(f"  {name}: not installed ({exc})", file=out)
            except Exception as exc:  # a peer that does not work here (e.g. torch.compile)
                print(f"  {name}: failed ({type(exc).__name__}: {exc})"[:200], file=out)
        # Rounds over all runners, best time each: load from elsewhere on the machine hits
        # every runner alike and the minimum filters it out.
        for _ in range(repeat):
            for name, go in ready.items():
                t = time.perf_counter()
                acc = go()
                dt = time.perf_counter() - t
                times[name][B] = min(dt, times[name].get(B, float("inf")))
                accs[name][B] = float(np.mean(acc))
        for name in ready:
            print(
                f"  B={B:5d} {name:24s} {times[name][B]:8.2f} s  acc {accs[name][B]:.4f}",
                file=out,
                flush=True,
            )
    _report(times, accs, floors, sizes, kind, out)
    return times, accs, floors


def _report(times, accs, floors, sizes, kind, out):
    cols = [n for n in times if times[n]]
    print(
        f"\n{kind} inputs\n| B | " + " | ".join(cols) + " | floor | fastest peer / sgdcore |",
        file=out,
    )
    print("|---" * (len(cols) + 3) + "|", file=out)

    def peer_best(B):
        vals = [times[n][B] for n in PEERS if B in times.get(n, {})]
        return min(vals) if vals else float("nan")

    for B in sizes:
        cells = [f"{times[n][B]:.2f}" if B in times[n] else "-" for n in cols]
        cpp = times.get(HEADLINE, {}).get(B, float("nan"))
        print(
            f"| {B} | " + " | ".join(cells) + f" | {floors[B]:.2f} | {peer_best(B) / cpp:.2f} |",
            file=out,
        )
    full = [n for n in cols if all(B in times[n] for B in sizes)]
    tot = {n: sum(times[n][B] for B in sizes) for n in full}
    print(
        "| total | "
        + " | ".join(f"{tot[n]:.2f}" if n in tot else "-" for n in cols)
        + f" | {sum(floors.values()):.2f} | |",
        file=out,
    )
    print("\nfinal test accuracy (mean of seeds):", file=out)
    for n in cols:
        print(
            f"  {n:24s} " + " ".join(f"B={B}:{accs[n][B]:.3f}" for B in sizes if B in accs[n]),
            file=out,
        )
    if HEADLINE not in tot:
        return
    cpp = times[HEADLINE]
    peers_tot = [tot[n] for n in PEERS if n in tot]
    if peers_tot:
        r = min(peers_tot) / tot[HEADLINE]
        print(
            f"\nwhole sweep: fastest peer / sgdcore = {r:.2f} "
            f"(target >= 1.3: {'MET' if r >= 1.3 else 'MISSED'})",
            file=out,
        )
    small = [B for B in sizes if B <= 16]
    if small and peers_tot:
        best = min(sum(times[n][B] for B in small) for n in PEERS if n in tot)
        r = best / sum(cpp[B] for B in small)
        print(
            f"B <= 16: fastest peer / sgdcore = {r:.2f} "
            f"(target >= 3: {'MET' if r >= 3 else 'MISSED'})",
            file=out,
        )
    gemm = times.get("sgdcore-cpp-gemm", {})
    for B in sizes:
        if B >= 256:
            for name, t in (("sgdcore-cpp-gemm", gemm), (HEADLINE, cpp)):
                if B not in t:
                    continue
                eff = floors[B] / t[B]
                sparse = t is cpp and kind == "digits"
                what = "dense-equivalent, sparse path" if sparse else "GEMM path"
                print(
                    f"B = {B}: {name} at {eff:.0%} of the GEMM ceiling ({what}; "
                    f"target >= 85%: {'MET' if eff >= 0.85 else 'MISSED'})",
                    file=out,
                )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="50 steps, B in {1, 16, 256}")
    p.add_argument("--only", default="", help="comma-separated runner names")
    p.add_argument("--sizes", default="", help="comma-separated batch sizes")
    p.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    add_inputs_option(p)
    args = p.parse_args(argv)
    sizes = tuple(int(b) for b in args.sizes.split(",") if b) or (
        (1, 16, 256) if args.quick else BATCH_SIZES
    )
    kinds = chosen_inputs(p, args)
    for kind in kinds:
        sweep(
            steps=50 if args.quick else args.steps,
            sizes=sizes,
            only=set(args.only.split(",")) if args.only else None,
            repeat=args.repeat,
            kind=kind,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
