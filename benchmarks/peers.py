"""sgdcore against its peers, measured side by side in one process.

    python benchmarks/peers.py [--only grads,curvature,...] [--repeat 7] [--quick]

Workloads live in ``benchmarks/peers_<topic>.py``: each module defines ``workloads(quick)``
returning ``benchmarks.common.Workload`` objects. For every workload this prints the median time of
each runner (sgdcore backends and every installed peer), its ratio to the best sgdcore
runner, and the workload's floor: FLOPs over the GEMM rate and minimal bytes over the copy
bandwidth, both measured at the start of the same run. Peers that are not installed are
listed as such; nothing here is timed inside the test suite.
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


def _load_workloads(only, quick):
    here = Path(__file__).resolve().parent
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if not info.name.startswith("peers_"):
            continue
        topic = info.name.removeprefix("peers_")
        if only and topic not in only:
            continue
        mod = importlib.import_module(f"benchmarks.{info.name}")
        yield topic, mod.workloads(quick)


def run(only=(), repeat=7, quick=False, out=sys.stdout) -> list[dict]:
    """Time every workload; print the tables; return one dict per (workload, runner)."""
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        pass
    rates = {dt: gemm_rate(dt) for dt in ("float32", "float64")}
    bw = copy_bandwidth()
    print(
        f"machine: {os.cpu_count()} cores; GEMM {rates['float32'] / 1e9:.0f} GFLOP/s float32, "
        f"{rates['float64'] / 1e9:.0f} GFLOP/s float64 (OpenBLAS kernels {blas_kernels()}); "
        f"copy {bw / 1e9:.1f} GB/s",
        file=out,
    )
    rows = []
    for topic, workloads in _load_workloads(set(only), quick):
        print(f"\n## {topic}", file=out)
        for w in workloads:
            floor = max(w.flops / rates[w.dtype], w.bytes / bw)
            times, missing = {}, {}
            for name, factory in w.runners.items():
                try:
                    fn = factory()
                except ImportError as exc:
                    missing[name] = str(exc).splitlines()[0]
                    continue
                times[name] = median_time(fn, repeat)
            ours = {k: t for k, t in times.items() if k.startswith("sgdcore")}
            peers = {k: t for k, t in times.items() if not k.startswith("sgdcore")}
            best_ours = min(ours.values()) if ours else float("nan")
            best_peer = min(peers.values()) if peers else float("nan")
            print(f"\n{w.name}  (floor {floor * 1e3:.2f} ms)", file=out)
            print(
                f"  {'runner':28s} {'median ms':>10s} {'/ best sgdcore':>15s} {'/ floor':>8s}",
                file=out,
            )
            for name, t in sorted(times.items(), key=lambda kv: kv[1]):
                print(
                    f"  {name:28s} {t * 1e3:10.2f} {t / best_ours:15.2f} {t / floor:8.2f}", file=out
                )
                rows.append(
                    dict(
                        topic=topic,
                        workload=w.name,
                        runner=name,
                        seconds=t,
                        floor=floor,
                        ratio_to_sgdcore=t / best_ours,
                    )
                )
            for name, why in missing.items():
                print(f"  {name:28s} {'not installed':>10s}  ({why})", file=out)
            if w.target == "2x" and peers:
                peer_near_floor = best_peer <= 2 * floor
                ok = best_ours <= 1.25 * floor if peer_near_floor else best_peer / best_ours >= 2
                goal = "within 1.25x of floor" if peer_near_floor else ">= 2x fastest peer"
                print(
                    f"  target ({goal}): {'MET' if ok else 'MISSED'}; "
                    f"fastest peer / sgdcore = {best_peer / best_ours:.2f}, "
                    f"sgdcore / floor = {best_ours / floor:.2f}",
                    file=out,
                )
            elif w.target != "2x":
                print(f"  target: {w.target}", file=out)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated topics (file suffixes)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke run")
    args = p.parse_args(argv)
    run([t for t in args.only.split(",") if t], args.repeat, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
