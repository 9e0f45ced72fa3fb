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
    """The check compiles each .cu where this tree has no up-to-date sgdcore._cuda; where
    the build (the CI install) already compiled them with the same flags, it only loads
    the module, so no .cu is compiled twice."""
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


def test_the_shared_formulas_and_philox_compile_as_device_code(tmp_path):
    """csrc/common's SGD_HD functions are callable from a kernel (the CPU tests check
    their values; this checks that nvcc accepts them in device code)."""
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found ($CUDA_HOME/bin, /usr/local/cuda/bin, PATH)")
    flags = runpy.run_path(str(ROOT / "setup.py"), run_name="sgdcore_setup")["NVCC_FLAGS"]
    src = tmp_path / "probe.cu"
    src.write_text(
        '#include "common/curvature_formulas.h"\n'
        '#include "common/formulas.h"\n'
        '#include "common/philox.h"\n'
        "template <class T> __global__ void k(T* z, long long* perm, unsigned* w) {\n"
        "  T p[3];\n"
        "  z[0] = sgdcore::softplus(z[0]) + sgdcore::sigmoid(z[1]) + sgdcore::relu(z[2])\n"
        "         + sgdcore::relu_grad(z[2]) + sgdcore::binary_xent(z[0], 1)\n"
        "         + sgdcore::softmax_xent(z, 3, 1, p) + sgdcore::sigmoid_curvature(p[0]);\n"
        "  sgdcore::softmax_curvature_vp(p, z, 3, z);\n"
        "  const uint32_t ctr[4] = {1, 2, 3, 4}, key[2] = {5, 6};\n"
        "  sgdcore::philox::philox4x32_10(ctr, key, w);\n"
        "  w[0] = sgdcore::philox::uniform_below(7u, 6u, 0u, key);\n"
        "  sgdcore::philox::epoch_permutation(9, 0, 8, reinterpret_cast<int64_t*>(perm));\n"
        "}\n"
        "template __global__ void k<float>(float*, long long*, unsigned*);\n"
        "template __global__ void k<double>(double*, long long*, unsigned*);\n"
    )
    res = subprocess.run(
        [nvcc, *flags, "-c", str(src), "-o", str(tmp_path / "probe.o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr


def test_the_ci_check_refuses_a_stale_build_instead_of_compiling(monkeypatch, capsys):
    """With --built (CI), a module older than its sources fails the check; nvcc (here a
    stand-in that would fail every compile) is never run."""
    check = runpy.run_path(str(ROOT / ".ci" / "nvcc_check.py"), run_name="nvcc_check")
    build = {
        "find_nvcc": lambda: "false",
        "_up_to_date": lambda target, sources: False,
        "NVCC_FLAGS": [],
        "CUDA_SOURCES": "csrc/cuda/*_cuda.cu",
    }
    monkeypatch.setattr(runpy, "run_path", lambda *a, **k: build)
    assert check["main"](["--built"]) == 1
    out = capsys.readouterr().out
    assert "missing or older than csrc/" in out and "failed" not in out
    assert check["main"]([]) == 1  # without --built it compiles, and the stand-in fails
    assert "0 of" in capsys.readouterr().out
