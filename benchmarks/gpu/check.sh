#!/usr/bin/env bash
# The GPU check, for a machine with one H100/H200, Python 3.12 with CuPy, torch and JAX,
# nvcc 13 and no network: builds sgdcore here in place, runs tests/gpu/ and the GPU
# benchmarks against torch and JAX, and writes logs and JSON to $OUT (or ./gpu-results).
# Everything is bounded by `timeout` (build 190 s + tests 100 s + benchmarks 170 s = 460 s) to
# finish within 8 minutes; the benchmark JSON is rewritten after every row.
set -uo pipefail
cd "$(dirname "$0")/../.."
RES="${OUT:-./gpu-results}"
mkdir -p "$RES"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 CUPY_TF32=0 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  nvcc --version | tail -2
  "$PY" -c "import sys, cupy, numpy; print(sys.version); print('cupy', cupy.__version__, 'numpy', numpy.__version__)"
} >"$RES/env.txt" 2>&1
cat "$RES/env.txt"

# sgdcore._cuda alone, in place (the GPU tests and benchmarks need no sgdcore._cpu, whose
# one-file-at-a-time build could take minutes); setup.py's own extension and flags.
echo "== build (sgdcore._cuda in place)"
SGDCORE_CUDA=1 timeout 190 "$PY" - >"$RES/build.log" 2>&1 <<'PYEOF'
import runpy, sys
from setuptools import setup
ns = runpy.run_path("setup.py", run_name="sgdcore_setup")
sys.argv = ["setup.py", "build_ext", "--inplace", "--force"]
setup(ext_modules=[ns["cuda_extension"]()], cmdclass={"build_ext": ns["BuildExt"]})
PYEOF
build=$?
tail -3 "$RES/build.log"
[ "$build" = 0 ] || { echo "build failed ($build); see build.log"; exit 1; }

echo "== tests/gpu"
# -W: a warning of CuPy's own (say, about the toolkit path) is not a test failure here.
timeout 100 "$PY" -m pytest -q -p no:cacheprovider -ra -W "ignore::UserWarning" tests/gpu \
  --junitxml="$RES/tests_gpu.xml" 2>&1 | tee "$RES/tests_gpu.log" | tail -25
tests=${PIPESTATUS[0]}

echo "== benchmarks (peers_gpu.py)"
timeout 170 "$PY" benchmarks/peers_gpu.py --json "$RES/peers_gpu.json" 2>&1 \
  | tee "$RES/peers_gpu.log" | tail -30
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmarks exit $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
