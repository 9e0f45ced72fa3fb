"""sgdcore against its peers, measured side by side in one process.

    python benchmarks/peers.py [--only grads,curvature,...] [--inputs dense,digits]
                               [--repeat 7] [--quick]

Workloads live in ``benchmarks/peers_<topic>.py``: each module defines
``workloads(quick, inputs)`` returning ``benchmarks.common.Workload`` objects for one
input kind (``benchmarks.common.INPUTS``): ``dense`` (X uniform in [0, 1)) and ``digits``
(MNIST-like, 80% zeros, where sgdcore's sparse first-layer path engages). Every workload
runs on each kind asked for.

The header prints the ceiling measured at the start of the same run: the float32 and
float64 GEMM rate and the copy bandwidth. For every workload this prints the median time
of each runner (sgdcore's and every installed peer's), its ratio to the headline, sgdcore
called as a user calls it (backend ``auto``, a fresh output, ``check_finite=True``), and
to the workload's floor, the larger of its FLOPs over the GEMM rate and its minimal bytes
over the copy bandwidth. sgdcore's faster form (a preallocated ``out=``,
``check_finite=False``) is a separate runner where the API has one. A closing table gives
one row per workload and input: headline, fastest peer, faster form, floor and headline
over floor. Peers that are not installed are listed as such; nothing here is timed inside
the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import FAST_FORM, INPUTS, add_inputs_option, chosen_inputs  # noqa: E402


def gemm_rate(dtype: str, n: int = 2048, repeat: int = 5) -> float:
    """Measured FLOP/s of one square GEMM through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    a @ b
    best = min(_time_once(lambda: a @ b) for _ in range(repeat))
    return 2.0 * n**3 / best


def copy_bandwidth(nbytes: int = 1 << 28, repeat: int = 5) -> float:
    """Measured bytes/s of a large array copy (read + write counted)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_time_once(lambda: np.copyto(dst, src)) for _ in range(repeat))
    return 2.0 * nbytes / best


def blas_kernels() -> str:
    """The OpenBLAS kernel architectures loaded in this process, comma-separated."""
    from threadpoolctl import threadpool_info

    found = {i.get("architecture", "?") for i in threadpool_info() if i["user_api"] == "blas"}
    return ", ".join(sorted(found))


def _time_once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_time(fn, repeat: int, budget: float = 20.0) -> float:
    """Median seconds of ``repeat`` calls after one warm-up (fewer if over ``budget``)."""
    first = _time_once(fn)
    times = []
    start = time.perf_counter()
    for _ in range(repeat):
        times.append(_time_once(fn))
        if time.perf_counter() - start > budget:
            break
    return statistics.median(times) if times else first


def _load_workloads(only, quick, kinds):
    """``(topic, input kind, workloads)`` of every ``peers_<topic>`` module that defines
    ``workloads`` (``peers_gpu`` is a script of its own), for each kind in ``kinds``."""
    here = Path(__file__).resolve().parent
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if not info.name.startswith("peers_"):
            continue
        topic = info.name.removeprefix("peers_")
        if only and topic not in only:
            continue
        mod = importlib.import_module(f"benchmarks.{info.name}")
        if not hasattr(mod, "workloads"):
            continue
        for kind in kinds:
            yield topic, kind, mod.workloads(quick, kind)


def run(only=(), repeat=7, quick=False, inputs=INPUTS, out=sys.stdout) -> list[dict]:
    """Time every workload on every input kind in ``inputs``; print the tables; return
    one dict per (workload, input kind, runner)."""
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        pass
    rates = {dt: gemm_rate(dt) for dt in ("float32", "float64")}
    bw = copy_bandwidth()
    print(
        f"machine: {os.cpu_count()} cores; ceiling measured in this run: GEMM "
        f"{rates['float32'] / 1e9:.0f} GFLOP/s float32, {rates['float64'] / 1e9:.0f} GFLOP/s "
        f"float64 (OpenBLAS kernels {blas_kernels()}); copy {bw / 1e9:.1f} GB/s; "
        f"load average {os.getloadavg()[0]:.1f}",
        file=out,
    )
    rows, summary = [], []
    for topic, kind, workloads in _load_workloads(set(only), quick, inputs):
        print(f"\n## {topic}, {kind} inputs", file=out)
        for w in workloads:
            rows += _run_workload(w, topic, kind, rates, bw, repeat, out)
            summary.append(_summary_row(w, kind, rows))
    _print_summary(summary, out)
    return rows


def _run_workload(w, topic, kind, rates, bw, repeat, out) -> list[dict]:
    """Time one workload's runners and print its table; its rows."""
    flop_floor, byte_floor = w.flops / rates[w.dtype], w.bytes / bw
    floor = max(flop_floor, byte_floor)
    bound = "FLOPs" if flop_floor >= byte_floor else "memory"
    times, missing = {}, {}
    for name, factory in w.runners.items():
        try:
            fn = factory()
        except ImportError as exc:
            missing[name] = str(exc).splitlines()[0]
            continue
        times[name] = median_time(fn, repeat)
    head = times.get(w.headline, float("nan"))
    print(f"\n[{kind}] {w.name}  (floor {floor * 1e3:.2f} ms, {bound})", file=out)
    width = max([len(n) for n in w.runners] + [6])
    print(
        f"  {'runner':{width}s} {'inputs':>6s} {'median ms':>10s} {'/ headline':>10s} "
        f"{'/ floor':>8s}",
        file=out,
    )
    rows = []
    for name, t in sorted(times.items(), key=lambda kv: kv[1]):
        mark = "  <- headline" if name == w.headline else ""
        print(
            f"  {name:{width}s} {kind:>6s} {t * 1e3:10.2f} {t / head:10.2f} {t / floor:8.2f}{mark}",
            file=out,
        )
        rows.append(
            dict(
                topic=topic,
                workload=w.name,
                inputs=kind,
                runner=name,
                headline=name == w.headline,
                seconds=t,
                floor=floor,
                ratio_to_headline=t / head,
                ratio_to_floor=t / floor,
            )
        )
    for name, why in missing.items():
        print(f"  {name:{width}s} {kind:>6s} {'not installed':>10s}  ({why})", file=out)
    peers = [t for k, t in times.items() if not k.startswith("sgdcore")]
    best_peer = min(peers) if peers else float("nan")
    against = f"; fastest peer / headline = {best_peer / head:.2f}" if peers else ""
    print(f"  headline / floor = {head / floor:.2f}{against}", file=out)
    if w.target == "2x" and peers:
        peer_near_floor = best_peer <= 2 * floor
        ok = head <= 1.25 * floor if peer_near_floor else best_peer / head >= 2
        goal = "within 1.25x of floor" if peer_near_floor else ">= 2x fastest peer"
        print(f"  target ({goal}): {'MET' if ok else 'MISSED'}", file=out)
    elif w.target != "2x":
        print(f"  target: {w.target}", file=out)
    return rows


def _summary_row(w, kind, rows) -> dict:
    """One line of the closing table from this workload's rows."""
    mine = [r for r in rows if r["workload"] == w.name and r["inputs"] == kind]
    head = next((r["seconds"] for r in mine if r["headline"]), float("nan"))
    peers = [r for r in mine if not r["runner"].startswith("sgdcore")]
    best = min(peers, key=lambda r: r["seconds"]) if peers else None
    fast = [r["seconds"] for r in mine if FAST_FORM in r["runner"]]
    floor = mine[0]["floor"] if mine else float("nan")
    return dict(
        workload=w.name,
        inputs=kind,
        headline=head,
        peer=best["runner"] if best else "-",
        peer_seconds=best["seconds"] if best else float("nan"),
        fast=min(fast) if fast else float("nan"),
        floor=floor,
    )


def _print_summary(summary, out) -> None:
    """The closing markdown table: one row per workload and input kind."""
    print(
        "\n| workload | inputs | sgdcore default call, ms | fastest peer | ms | "
        "fastest peer / sgdcore | sgdcore faster form, ms | floor, ms | sgdcore / floor |",
        file=out,
    )
    print("|---" * 9 + "|", file=out)

    def num(x, scale=1.0):
        return "-" if x != x else f"{x * scale:.2f}"  # NaN: not measured

    for r in summary:
        print(
            f"| {r['workload']} | {r['inputs']} | {num(r['headline'], 1e3)} | {r['peer']} | "
            f"{num(r['peer_seconds'], 1e3)} | {num(r['peer_seconds'] / r['headline'])} | "
            f"{num(r['fast'], 1e3)} | {num(r['floor'], 1e3)} | "
            f"{num(r['headline'] / r['floor'])} |",
            file=out,
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated topics (file suffixes)")
    add_inputs_option(p)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke run")
    args = p.parse_args(argv)
    kinds = chosen_inputs(p, args)
    run([t for t in args.only.split(",") if t], args.repeat, args.quick, kinds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
