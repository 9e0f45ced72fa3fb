"""The CUDA sources compile (nvcc, warnings as errors) wherever nvcc exists; no GPU needed."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _nvcc():
    return runpy.run_path(str(ROOT / "setup.py"), run_name="sgdcore_setup")["find_nvcc"]()


def test_every_cu_file_compiles_with_warnings_as_errors():
    if _nvcc() is None:
        pytest.skip("nvcc not found ($CUDA_HOME/bin, /usr/local/cuda/bin, PATH)")
    res = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "nvcc_check.py")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    n = len(list((ROOT / "csrc" / "cuda").glob("*.cu")))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"nvcc compile check: {n} of {n} .cu files compiled" in res.stdout


def test_a_warning_fails_the_check(tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found ($CUDA_HOME/bin, /usr/local/cuda/bin, PATH)")
    flags = runpy.run_path(str(ROOT / "setup.py"), run_name="sgdcore_setup")["NVCC_FLAGS"]
    src = tmp_path / "w.cu"
    src.write_text("__global__ void k(int* p) { int unused = 1; p[0] = 0; }\n")
    res = subprocess.run(
        [nvcc, *flags, "-c", str(src), "-o", str(tmp_path / "w.o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0


def test_the_gpu_backend_is_unavailable_with_a_way_to_get_it_here():
    from sgdcore import _backend

    usable, reason = _backend.backend_status("cuda")
    if usable:
        pytest.skip("a GPU, CuPy and sgdcore._cuda are present here")
    assert "cupy-cuda13x" in reason and "nvcc" in reason
    assert "sgdcore._cuda" not in sys.modules or "cupy" in sys.modules


def test_the_built_module_binds_every_launcher_the_backend_calls():
    """Where sgdcore._cuda is built here, it has `<name>_f32` and `<name>_f64` for every
    `launch("<name>", ...)` of sgdcore/kernels/_cuda (checked in a subprocess: the test
    run itself never imports the extension)."""
    import re

    if not list((ROOT / "sgdcore").glob("_cuda*.so")):
        pytest.skip("sgdcore._cuda is not built in this source tree")
    calls = set()
    for src in (ROOT / "sgdcore" / "kernels" / "_cuda").glob("*.py"):
        calls |= set(re.findall(r'launch\(\s*"(\w+)"', src.read_text()))
    assert {"output_residual", "layer_sqnorms", "logistic_hvp"} <= calls
    code = "import sgdcore._cuda as m; print(' '.join(dir(m)))"
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    bound = set(res.stdout.split())
    missing = sorted(f"{c}_{t}" for c in calls for t in ("f32", "f64") if f"{c}_{t}" not in bound)
    assert not missing, f"launched but not bound: {missing}"
