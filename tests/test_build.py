"""Packaging: a second editable install reuses the compiled module; LICENSE; extras."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build(src: Path, out: Path) -> subprocess.CompletedProcess:
    """``build_ext`` into fresh folders, as an editable install does, with a compiler
    that fails: whatever compiles shows as a failure.
    """
    env = {**os.environ, "CC": "false", "CXX": "false", "SGDCORE_CUDA": "0"}  # the CPU module
    env.pop("SGDCORE_REBUILD", None)
    env.pop("SGDCORE_SANITIZE", None)
    cmd = [sys.executable, "setup.py", "build_ext", "--build-lib", str(out / "lib")]
    cmd += ["--build-temp", str(out / "tmp")]
    return subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=300)


def test_a_second_build_reuses_the_up_to_date_module(tmp_path):
    modules = sorted((ROOT / "sgdcore").glob("_cpu*.so"))
    if not modules:
        pytest.skip("sgdcore._cpu is not built in this source tree")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "csrc", src / "csrc")
    (src / "sgdcore").mkdir()
    module = src / "sgdcore" / modules[0].name
    shutil.copy2(modules[0], module)
    now = time.time()
    os.utime(module, (now, now))
    res = _build(src, tmp_path / "first")
    assert res.returncode == 0, res.stderr
    assert "up to date with csrc/; not compiling it again" in res.stdout
    assert "building 'sgdcore._cpu' extension" not in res.stdout + res.stderr
    assert (tmp_path / "first" / "lib" / "sgdcore" / module.name).read_bytes() == (
        module.read_bytes()
    )
    # a header edited after the module was built: it is compiled again
    header = src / "csrc" / "common" / "formulas.h"
    os.utime(header, (now + 10, now + 10))
    res = _build(src, tmp_path / "second")
    assert res.returncode != 0
    assert "building 'sgdcore._cpu' extension" in res.stdout + res.stderr


def test_license_is_bsd_3_clause_as_the_metadata_says():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "the sgdcore developers" in text
    assert 'license = { text = "BSD-3-Clause" }' in (ROOT / "pyproject.toml").read_text()


def test_test_extra_brings_laplace_torch():
    text = (ROOT / "pyproject.toml").read_text()
    test_extra = re.search(r"^test = \[(.*?)^\]", text, flags=re.S | re.M).group(1)
    assert '"laplace-torch' in test_extra


def test_nothing_shipped_cites_a_file_outside_the_repository():
    shipped = [ROOT / "README.md", ROOT / "setup.py"]
    for folder in ("sgdcore", "csrc", "docs", "examples", "benchmarks"):
        shipped += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix != ".so"]
    for path in shipped:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        assert "PROTOCOL" not in text, path
