"""Numba CUDA kernels for the per-example squared gradient norms and the gradient-noise
statistics, written with ``numba.cuda`` (the ``numba-cuda`` package) beside the CUDA C++
ones of ``sgdcore._cuda``.

They take the factors of the per-example gradients, not the gradients: a dense layer with
residual rows ``delta [n, k]`` and input rows ``a [n, d]`` has per-example gradients
``(delta_i a_i^T, delta_i)``, so ``|g_i|^2 = sum over layers |delta_i|^2 (|a_i|^2 + 1)``
(no ``[n, P]`` array), and with ``g = sum_i g_i`` the statistics over ``n`` examples are
``|G|^2 = |g / n|^2``, ``tr F = (1/n) sum_i |g_i|^2 - |G|^2`` and
``B_simple = tr F / |G|^2`` (McCandlish et al. 2018). Arrays may be NumPy (copied to the
device), Numba device arrays or CuPy arrays (``__cuda_array_interface__``); sums are
float64 and run in a fixed order, so results do not depend on the launch. Under Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) they run on the CPU, which is how their
indexing, bounds and reductions are tested without a GPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

__all__ = ["THREADS", "grad_sqnorms", "layer_sqnorms", "noise_statistics"]

#: Threads per block of every kernel here (a power of two: the reductions halve it).
THREADS = 128


@cuda.jit
def _layer_sqnorms_kernel(delta, a, out, accumulate):
    i = cuda.grid(1)
    if i >= out.shape[0]:
        return
    dd = 0.0
    for j in range(delta.shape[1]):
        v = float64(delta[i, j])
        dd += v * v
    aa = 0.0
    for j in range(a.shape[1]):
        v = float64(a[i, j])
        aa += v * v
    value = dd * (aa + 1.0)
    if accumulate:
        out[i] += value
    else:
        out[i] = value


@cuda.jit
def _block_sums_kernel(x, squared, partial):
    """``partial[b] = sum of x[i] (or x[i]^2)`` over block b's slice, a fixed tree."""
    buf = cuda.shared.array(THREADS, float64)
    t = cuda.threadIdx.x
    i = cuda.blockIdx.x * THREADS + t
    v = 0.0
    if i < x.shape[0]:
        v = float64(x[i])
        if squared:
            v *= v
    buf[t] = v
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if t < step:
            buf[t] += buf[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        partial[cuda.blockIdx.x] = buf[0]


def _device(a):
    """Host arrays copied to the device; device arrays (Numba's, CuPy's) as they are."""
    if isinstance(a, np.ndarray):
        return cuda.to_device(np.ascontiguousarray(a))
    return a


def _blocks(n: int) -> int:
    return max(1, math.ceil(n / THREADS))


def layer_sqnorms(delta, a, out, accumulate: bool = False) -> None:
    """``out[i] (+)= |delta_i|^2 (|a_i|^2 + 1)`` for one layer; ``out`` a float64 device
    array of length n.
    """
    n = out.shape[0]
    if delta.shape[0] != n or a.shape[0] != n:
        raise ValueError(
            f"delta has {delta.shape[0]} rows and a {a.shape[0]}, but out has {n}: one row "
            "per example in each"
        )
    _layer_sqnorms_kernel[_blocks(n), THREADS](_device(delta), _device(a), out, accumulate)


def grad_sqnorms(layers) -> np.ndarray:
    """``|g_i|^2`` (float64 device array) from ``[(delta, a), ...]``, one pair per layer."""
    n = layers[0][0].shape[0]
    out = cuda.device_array(n, dtype=np.float64)
    for j, (delta, a) in enumerate(layers):
        layer_sqnorms(delta, a, out, accumulate=j > 0)
    return out


def _total(x, squared: bool) -> float:
    """``sum x_i`` (or ``sum x_i^2``) in float64: block partials on the device, then the
    partials added exactly rounded on the host (math.fsum: no order dependence).
    """
    x = _device(x)
    partial = cuda.device_array(_blocks(x.shape[0]), dtype=np.float64)
    _block_sums_kernel[partial.shape[0], THREADS](x, squared, partial)
    return float(math.fsum(partial.copy_to_host()))


def noise_statistics(sqnorms, grad_sum, n: int) -> dict:
    """``{"trace_cov", "grad_norm_sq", "b_simple"}`` of ``n`` examples from their squared
    gradient norms and the sum of their gradients ``g = sum_i g_i``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grad_norm_sq = _total(grad_sum, True) / (n * n)
    trace_cov = _total(sqnorms, False) / n - grad_norm_sq
    if grad_norm_sq > 0:
        b_simple = trace_cov / grad_norm_sq
    else:
        b_simple = math.inf if trace_cov > 0 else math.nan
    return {"trace_cov": trace_cov, "grad_norm_sq": grad_norm_sq, "b_simple": b_simple}
