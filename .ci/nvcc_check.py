"""Compile every ``csrc/cuda/*.cu`` with nvcc and setup.py's flags (warnings as errors).

Prints ``nvcc compile check: K of N .cu files compiled`` and exits 1 unless all compiled;
prints that it skipped and exits 0 where no nvcc is found. Used by ``.ci/run`` and
``tests/test_cuda_build.py``.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    build = runpy.run_path(str(ROOT / "setup.py"), run_name="sgdcore_setup")
    nvcc = build["find_nvcc"]()
    if nvcc is None:
        print("nvcc compile check: skipped, nvcc not found")
        return 0
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            cmd = [nvcc, *build["NVCC_FLAGS"], "-c", str(src), "-o", f"{tmp}/{src.name}.o"]
            res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if res.returncode == 0:
                ok += 1
            else:
                print(f"nvcc compile check: {src.relative_to(ROOT)} failed:\n{res.stderr}")
    print(f"nvcc compile check: {ok} of {len(sources)} .cu files compiled")
    return 0 if sources and ok == len(sources) else 1


if __name__ == "__main__":
    sys.exit(main())
