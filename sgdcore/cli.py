"""The ``sgdcore`` command.

``sgdcore info`` reports the build, the backends and where MNIST would come from.
``sgdcore run NAME`` runs one paper experiment; every module in
:mod:`sgdcore.experiments` that defines ``NAME``, ``add_arguments(parser)`` and
``main(args) -> int`` is a ``run`` target.
``sgdcore sweep SPEC.toml --store DIR`` runs (or resumes) a sweep into a result store.
``sgdcore show STORE [--csv FILE] [--parquet FILE]`` prints a store's progress, groups and
finished runs, and exports its table.
``sgdcore reproduce [--quick] [--out DIR]`` runs every experiment and writes a report.
``sgdcore tune --data D --model M`` chooses B, lr and momentum by the paper's recipe.

Errors: :func:`main` turns every error sgdcore raises for bad input or a failed run
into one line on stderr, ``sgdcore: error: ...``, that names the flag, spec key,
environment variable or file it came from; the exit status is 2 for a usage error
(a bad flag, spec or environment variable), 1 for a runtime error, and 130 after
Ctrl-C (with what was kept and how to resume). ``--debug`` or ``SGDCORE_DEBUG=1``
prints the traceback as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from pathlib import Path

from .experiments import available as _experiments

#: Exit statuses of :func:`main`.
EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """The command line or the environment is wrong (exit status 2)."""


def error_types() -> tuple[tuple, tuple]:
    """The exceptions :func:`main` reports as one line: ``(usage, runtime)``.

    Usage errors (exit 2) are bad flags, specs and environment variables; runtime
    errors (exit 1) are what sgdcore raises for unusable stores, data, backends and
    failed groups, and the ``ValueError``/``TypeError`` of input validation.
    """
    from ._backend import BackendUnavailable
    from .curvature._lanczos import ConvergenceError
    from .data import DataError
    from .grads import MemoryBudgetError
    from .sweep import SpecError, StoreError, SweepError

    usage = (UsageError, SpecError)
    runtime = (
        StoreError,
        SweepError,
        DataError,
        BackendUnavailable,
        MemoryBudgetError,
        ConvergenceError,
        ValueError,
        TypeError,
        OSError,
    )
    return usage, runtime


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (raised as :class:`UsageError`)."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


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
    try:
        lines.append(f"  auto -> {_backend.resolve('auto')}")
    except (ValueError, _backend.BackendUnavailable) as exc:
        lines.append(f"  auto -> none: {exc}")
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
    except (FileNotFoundError, data.DataError) as exc:
        lines.append(f"MNIST: no source available ({exc})")
    return lines


def _info(args) -> int:
    print("\n".join(info_lines()))
    return 0


def _run(args) -> int:
    return args.experiment.main(args)


def _sweep(args) -> int:
    from . import sweep

    if args.scheduler is not None and args.executor != "dask":
        raise UsageError("--scheduler is for --executor dask; add --executor dask")
    spec = sweep.SweepSpec.from_toml(args.spec)
    try:
        df = sweep.run(
            spec,
            args.store,
            executor=args.executor,
            scheduler=args.scheduler,
            connect_timeout=args.connect_timeout,
            progress=args.progress,
            log=print,
        )
    except sweep.StoreError as exc:
        raise sweep.StoreError(f"--store {args.store}: {exc}") from exc
    print(f"done: {df['run'].nunique()} runs, {len(df)} rows in {args.store}")
    print(f"see them with: sgdcore show {args.store}")
    return 0


def _show(args) -> int:
    from .results import write_table
    from .sweep.summary import format_summary, summarize

    for flag, path in (("--csv", args.csv), ("--parquet", args.parquet)):
        if path is not None and Path(path).suffix != f".{flag[2:]}":
            raise UsageError(f"{flag} {path}: the file name must end in .{flag[2:]}")
    s = summarize(args.store)
    print(format_summary(s, max_runs=None if args.all else args.max_runs))
    table = s.table.copy()
    manifest = table.attrs.get("manifest")
    table.attrs = {}
    for path in (args.csv, args.parquet):
        if path is not None:
            write_table(table, path, manifest)
            print(f"wrote {len(table)} rows ({s.runs_done} runs) to {path}")
    return 0


def _reproduce(args) -> int:
    from .experiments._common import data_kwargs
    from .report import reproduce

    try:
        path, results = reproduce(
            args.out,
            quick=args.quick,
            backend=args.backend,
            only=args.only,
            **data_kwargs(args),
        )
    except ValueError as exc:
        raise UsageError(f"--only: {exc}") from None
    failed = [r.name for r in results if not r.ok]
    print(f"report: {path}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _tune(args) -> int:
    from . import tuning

    return tuning.main(args)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .sweep.executors import CONNECT_TIMEOUT

    parser = _Parser(
        prog="sgdcore",
        description="Kernels, sweeps and the experiments of Smith & Le (ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"sgdcore {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an error (also: SGDCORE_DEBUG=1)",
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
    sw.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="with --executor dask: the address of a running Dask scheduler, such as "
        "tcp://HOST:8786 (default: start a local cluster sized to this machine)",
    )
    sw.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=CONNECT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the --scheduler to answer (default: %(default)g)",
    )
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
    sh = sub.add_parser("show", help="a result store's progress, groups and finished runs")
    sh.add_argument("store", help="the result store folder (of `sgdcore sweep` or `run`)")
    sh.add_argument("--csv", metavar="FILE", help="write every row (run x evaluation) as CSV")
    sh.add_argument("--parquet", metavar="FILE", help="write every row as Parquet")
    sh.add_argument(
        "--max-runs",
        type=int,
        default=50,
        metavar="N",
        help="finished runs to list (default: %(default)s)",
    )
    sh.add_argument("--all", action="store_true", help="list every finished run")
    sh.set_defaults(func=_show)
    rp = sub.add_parser("reproduce", help="run every experiment and write one Markdown report")
    rp.add_argument("--quick", action="store_true", help="each experiment's --quick settings")
    rp.add_argument("--out", default="results", help="report folder (default: %(default)s)")
    rp.add_argument("--backend", default=None, help="training backend for every experiment")
    rp.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    from .experiments._common import add_data_arguments

    add_data_arguments(rp)
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
    """Run the ``sgdcore`` command; returns its exit status (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("SGDCORE_DEBUG", "") not in ("", "0") or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    args = None
    usage, runtime = error_types()
    try:
        args = build_parser().parse_args(argv)
        if args.command != "info":
            _check_environment()
        return _call(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(_interrupted(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        if not isinstance(exc.code, str):  # --help, --version, or a plain exit status
            raise
        return _fail(exc.code, EXIT_USAGE, debug)
    except usage as exc:
        return _fail(str(exc), EXIT_USAGE, debug)
    except runtime as exc:
        return _fail(str(exc), EXIT_RUNTIME, debug)
    except Exception as exc:  # a bug: still one line, the traceback on request
        return _fail(
            f"internal error {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback, and please report it)",
            EXIT_RUNTIME,
            debug,
        )


def _fail(message: str, code: int, debug: bool) -> int:
    """Print ``message`` as one ``sgdcore: error:`` line (and the traceback if asked)."""
    if debug:
        traceback.print_exc()
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    print(f"sgdcore: error: {'; '.join(lines) or 'failed'}", file=sys.stderr)
    return code


def _check_environment() -> None:
    """Fail early, naming the variable, when ``SGDCORE_BACKEND`` is set to a backend
    that is unknown or not usable here.
    """
    from . import _backend

    value = os.environ.get("SGDCORE_BACKEND", "")
    if value in ("", "auto"):
        return
    if value not in _backend.BACKENDS:
        raise UsageError(
            f"environment variable SGDCORE_BACKEND={value!r} is not a backend; set it to "
            f"one of auto, {', '.join(_backend.BACKENDS)}, or unset it"
        )
    ok, why = _backend.backend_status(value)
    if not ok:
        raise UsageError(
            f"environment variable SGDCORE_BACKEND={value!r} names a backend that is not "
            f"usable here ({why}); unset it or choose one of "
            f"{', '.join(_backend.available_backends())}"
        )


def _stores(args) -> list[Path]:
    """The result stores the interrupted command was writing."""
    if args is None:
        return []
    if args.command == "sweep":
        return [Path(args.store)]
    if args.command == "run" and hasattr(args, "out"):
        return [Path(args.out) / "store"]
    if args.command == "reproduce":
        return sorted(Path(args.out).glob("*/store"))
    return []


def _interrupted(args) -> str:
    """What Ctrl-C kept, and how to resume."""
    from .sweep import ResultStore, StoreError, read_manifest

    kept = []
    for path in _stores(args):
        try:
            store = ResultStore(path, read_manifest(path))
            done = len(store.finished())
        except StoreError:
            continue
        kept.append(f"{done} of {len(store.manifest['groups'])} groups kept in {path}")
    if not kept:
        return "interrupted before any group finished; nothing was kept"
    return f"interrupted: {'; '.join(kept)}; rerun the same command to resume"


def _call(args) -> int:
    """Run the chosen command, printing data warnings as one line each."""
    from .data import DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = _warning_line
        return args.func(args)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one line, ``sgdcore: warning: ...``."""
    print(f"sgdcore: warning: {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":
    sys.exit(main())
