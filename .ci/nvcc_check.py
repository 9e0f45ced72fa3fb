"""Check that every ``csrc/cuda/*.cu`` compiles with nvcc and setup.py's flags (warnings as
errors), compiling each file at most once.

Where this tree's ``sgdcore/_cuda*.so`` is newer than every source it is built from, the
build already compiled each ``.cu`` with those flags: the check loads the module (in a
subprocess) and compiles nothing. Otherwise it compiles each ``.cu`` into a temporary
folder; with ``--built`` (what ``.ci/run`` passes, right after the install built the
module) a missing or stale module is a failure instead.

Prints ``nvcc compile check: K of N .cu files compiled`` and exits 1 unless all compiled;
prints that it skipped and exits 0 where no nvcc is found. Used by ``.ci/run`` and
``tests/test_cuda_build.py``.
"""

from __future__ import annotations

import argparse
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def built_module(build: dict, sources: list[Path]) -> Path | None:
    """The ``sgdcore._cuda`` of this tree when it is newer than ``sources``, the bindings, every
    header under ``csrc/`` and setup.py (setup.py's own rule); else None.
    """
    inputs = ["csrc/bindings_cuda.cpp", *(str(s.relative_to(ROOT)) for s in sources)]
    for so in sorted((ROOT / "sgdcore").glob("_cuda*.so")):
        if build["_up_to_date"](str(so), inputs):
            return so
    return None


def _not_built_by_setup(build: dict, sources: list[Path]) -> list[str]:
    built = set(ROOT.glob(build["CUDA_SOURCES"]))
    return [str(s.relative_to(ROOT)) for s in sources if s not in built]


def _compile(nvcc: str, flags: list[str], sources: list[Path]) -> int:
    ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            cmd = [nvcc, *flags, "-c", str(src), "-o", f"{tmp}/{src.name}.o"]
            res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if res.returncode == 0:
                ok += 1
            else:
                print(f"nvcc compile check: {src.relative_to(ROOT)} failed:\n{res.stderr}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--built", action="store_true", help="use the built module; never compile (CI)")
    args = ap.parse_args(argv)
    build = runpy.run_path(str(ROOT / "setup.py"), run_name="sgdcore_setup")
    nvcc = build["find_nvcc"]()
    if nvcc is None:
        print("nvcc compile check: skipped, nvcc not found")
        return 0
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    n = len(sources)
    if not sources:
        print("nvcc compile check: no .cu file under csrc/cuda")
        return 1
    so = built_module(build, sources)
    if so is None and args.built:
        print(
            "nvcc compile check: --built, but sgdcore/_cuda*.so is missing or older than "
            "csrc/ (was the install run with SGDCORE_CUDA=0?)"
        )
        return 1
    if so is None:
        ok = _compile(nvcc, build["NVCC_FLAGS"], sources)
        print(f"nvcc compile check: {ok} of {n} .cu files compiled")
        return 0 if ok == n else 1
    missing = _not_built_by_setup(build, sources)
    if missing:
        print(f"nvcc compile check: {', '.join(missing)} not in setup.py's CUDA_SOURCES")
        return 1
    res = subprocess.run(
        [sys.executable, "-c", "import sgdcore._cuda"], cwd=ROOT, capture_output=True, text=True
    )
    if res.returncode != 0:
        print(f"nvcc compile check: {so.relative_to(ROOT)} does not load:\n{res.stderr}")
        return 1
    print(
        f"nvcc compile check: {n} of {n} .cu files compiled (by the build of "
        f"{so.relative_to(ROOT)}, warnings as errors; not compiled again)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
