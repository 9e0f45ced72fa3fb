"""Build the compiled backends.

``sgdcore._cpu`` (C++17, OpenMP where the compiler has it) is always built from
``csrc/bindings_cpu.cpp`` and every ``csrc/cpu/*_cpu.cpp``. BLAS is not linked: the
kernels call SciPy's OpenBLAS through the function pointers that
``scipy.linalg.cython_blas`` exports, resolved when the module is imported, so the build
needs neither SciPy nor network access.
"""

import os
import shutil
import sys
import tempfile
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _up_to_date(target: str, sources) -> bool:
    """Whether ``target`` exists and is newer than the sources, every header under
    ``csrc/`` and this file.
    """
    if not os.path.isfile(target):
        return False
    inputs = [os.path.join(HERE, s) for s in sources]
    inputs += glob(os.path.join(HERE, "csrc", "**", "*.h"), recursive=True)
    inputs.append(os.path.abspath(__file__))
    newest = max(os.path.getmtime(f) for f in inputs)
    return os.path.getmtime(target) > newest


def _has_flag(compiler, flag: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.cpp")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Add OpenMP and optimisation flags the compiler accepts; reuse an up-to-date
    in-place module instead of compiling it again.

    ``pip install -e .`` builds in fresh temporary folders every time, so the compiler's
    outputs of an earlier install are never seen and a second install (for instance of
    ``.[test]`` after ``.``) would recompile everything. An editable install also copies
    the module into the source tree (``sgdcore/_cpu*.so``); when that copy is newer than
    every C++ source and header and than this file, it is what a build would produce,
    and it is used as the build's output. ``SGDCORE_SANITIZE=1``, ``SGDCORE_REBUILD=1``
    or ``build_ext --force`` always compile.
    """

    def build_extension(self, ext):
        built = self.get_ext_fullpath(ext.name)
        filename = os.path.basename(built)
        inplace = os.path.join(HERE, *ext.name.split(".")[:-1], filename)
        forced = (
            self.force or os.environ.get("SGDCORE_SANITIZE") or os.environ.get("SGDCORE_REBUILD")
        )
        if not forced and _up_to_date(inplace, ext.sources):
            if os.path.abspath(inplace) != os.path.abspath(built):
                os.makedirs(os.path.dirname(built), exist_ok=True)
                shutil.copy2(inplace, built)
            print(f"sgdcore: {inplace} is up to date with csrc/; not compiling it again")
            return
        super().build_extension(ext)

    def build_extensions(self):
        omp = sys.platform != "win32" and _has_flag(self.compiler, "-fopenmp")
        for ext in self.extensions:
            ext.extra_compile_args += ["-O3", "-fno-math-errno", "-Wall"]
            # SGDCORE_SANITIZE=1: AddressSanitizer. Python is not built with it, so run with
            # LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
            # (libstdc++ too: else ASan cannot intercept the C++ exceptions pybind11 throws).
            if os.environ.get("SGDCORE_SANITIZE"):
                ext.extra_compile_args += ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1"]
                ext.extra_link_args += ["-fsanitize=address"]
            if omp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
                ext.define_macros.append(("SGDCORE_OPENMP", "1"))
        super().build_extensions()


cpu = Pybind11Extension(
    "sgdcore._cpu",
    sorted(["csrc/bindings_cpu.cpp", *glob("csrc/cpu/*_cpu.cpp")]),
    include_dirs=["csrc"],
    cxx_std=17,
)

setup(ext_modules=[cpu], cmdclass={"build_ext": BuildExt})
