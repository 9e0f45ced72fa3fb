"""Build the compiled backends.

``sgdcore._cpu`` (C++17, OpenMP where the compiler has it) is always built from
``csrc/bindings_cpu.cpp`` and every ``csrc/cpu/*_cpu.cpp``. BLAS is not linked: the
kernels call SciPy's OpenBLAS through the function pointers that
``scipy.linalg.cython_blas`` exports, resolved when the module is imported, so the build
needs neither SciPy nor network access.

``sgdcore._cuda`` is built from ``csrc/bindings_cuda.cpp`` and every
``csrc/cuda/*_cuda.cu`` where nvcc is found (``$CUDA_HOME/bin``, ``/usr/local/cuda/bin``,
then ``PATH``): nvcc compiles the kernels for sm_80 and sm_90 plus sm_90 PTX, with warnings
as errors, and the module links the CUDA runtime statically (the GEMMs go through CuPy's
cuBLAS at run time; see docs/GPU.md). ``SGDCORE_CUDA=0`` skips it; ``SGDCORE_CUDA=1``
makes a missing nvcc an error. Without nvcc the build is the CPU build alone.
"""

import os
import shutil
import subprocess
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
    inputs += glob(os.path.join(HERE, "csrc", "**", "*.cuh"), recursive=True)
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
        sources = [*ext.sources, *getattr(ext, "cuda_sources", [])]
        if not forced and _up_to_date(inplace, sources):
            if os.path.abspath(inplace) != os.path.abspath(built):
                os.makedirs(os.path.dirname(built), exist_ok=True)
                shutil.copy2(inplace, built)
            print(f"sgdcore: {inplace} is up to date with csrc/; not compiling it again")
            return
        if getattr(ext, "cuda_sources", None):
            ext.extra_objects = _nvcc_objects(ext.cuda_sources, self.build_temp)
        # Stale by the rule above: link even where distutils' own check, which sees neither
        # the headers nor the .cu objects, finds the module newer than its .cpp sources.
        force, self.force = self.force, True
        try:
            super().build_extension(ext)
        finally:
            self.force = force

    def build_extensions(self):
        omp = sys.platform != "win32" and _has_flag(self.compiler, "-fopenmp")
        for ext in self.extensions:
            ext.extra_compile_args += ["-O3", "-fno-math-errno", "-Wall"]
            if getattr(ext, "cuda_sources", None):
                continue  # host code around the CUDA kernels: no OpenMP, no sanitizer
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


# ------------------------------------------------------------------------------ CUDA

#: The kernels nvcc compiles into ``sgdcore._cuda`` (besides ``csrc/bindings_cuda.cpp``).
CUDA_SOURCES = "csrc/cuda/*_cuda.cu"

#: nvcc's code generation: machine code for sm_80 (A100) and sm_90 (H100, H200), and
#: sm_90 PTX that newer devices compile when the module loads.
NVCC_ARCH = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]
#: Every nvcc warning, and the host compiler's, is an error.
NVCC_FLAGS = [
    "-std=c++17",
    "-O3",
    "-Icsrc",
    "-Werror=all-warnings",
    "-Xcompiler=-fPIC,-Wall,-Wextra,-Werror",
    *NVCC_ARCH,
]


def find_nvcc() -> str | None:
    """The path of nvcc: ``$CUDA_HOME/bin``, ``/usr/local/cuda/bin`` or ``PATH``; None if none."""
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root and os.access(os.path.join(root, "bin", "nvcc"), os.X_OK):
            return os.path.join(root, "bin", "nvcc")
    return shutil.which("nvcc")


def _cuda_root(nvcc: str) -> str:
    """The toolkit folder holding ``include/cuda_runtime.h`` for ``nvcc``."""
    candidates = [os.environ.get("CUDA_HOME"), os.path.dirname(os.path.dirname(nvcc))]
    candidates += [os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"]
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")):
            return root
    raise RuntimeError(
        f"sgdcore: found {nvcc} but no CUDA toolkit headers (include/cuda_runtime.h) beside "
        "it; set CUDA_HOME to the toolkit's folder, or SGDCORE_CUDA=0 to build without CUDA"
    )


def _cudart_static(root: str) -> str:
    for sub in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib")):
        path = os.path.join(root, sub, "libcudart_static.a")
        if os.path.isfile(path):
            return path
    raise RuntimeError(
        f"sgdcore: no libcudart_static.a under {root}; set CUDA_HOME to a full CUDA toolkit, "
        "or SGDCORE_CUDA=0 to build without CUDA"
    )


def _nvcc_objects(sources, build_temp: str) -> list[str]:
    """Compile each ``.cu`` with nvcc into ``build_temp``; return the object files."""
    nvcc = find_nvcc()
    objects = []
    for src in sources:
        obj = os.path.join(build_temp, "cuda", os.path.basename(src) + ".o")
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        cmd = [nvcc, *NVCC_FLAGS, "-c", os.path.join(HERE, src), "-o", obj]
        print(" ".join(cmd))
        subprocess.run(cmd, cwd=HERE, check=True)
        objects.append(obj)
    return objects


def cuda_extension():
    """The ``sgdcore._cuda`` extension, or None where it is not to be built."""
    want = os.environ.get("SGDCORE_CUDA", "").strip()
    if want not in ("", "0", "1"):
        raise RuntimeError(f"SGDCORE_CUDA must be 0 or 1, got {want!r}")
    if want == "0":
        return None
    nvcc = find_nvcc()
    if nvcc is None:
        if want == "1":
            raise RuntimeError(
                "SGDCORE_CUDA=1 but nvcc was not found in $CUDA_HOME/bin, /usr/local/cuda/bin "
                "or PATH; install the CUDA toolkit or set CUDA_HOME"
            )
        return None
    root = _cuda_root(nvcc)
    ext = Pybind11Extension(
        "sgdcore._cuda",
        ["csrc/bindings_cuda.cpp"],
        include_dirs=["csrc", os.path.join(root, "include")],
        extra_link_args=[_cudart_static(root), "-ldl", "-lrt", "-lpthread"],
        cxx_std=17,
    )
    ext.cuda_sources = sorted(glob(CUDA_SOURCES))
    return ext


cpu = Pybind11Extension(
    "sgdcore._cpu",
    sorted(["csrc/bindings_cpu.cpp", *glob("csrc/cpu/*_cpu.cpp")]),
    include_dirs=["csrc"],
    cxx_std=17,
)

if __name__ == "__main__":  # also under pip: setuptools runs this file as __main__
    cuda = cuda_extension()
    setup(ext_modules=[cpu] + ([cuda] if cuda else []), cmdclass={"build_ext": BuildExt})
