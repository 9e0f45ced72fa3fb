"""C++ per-example kernels (``csrc/cpu/per_example_grads_cpu.cpp``,
``grad_norms_cpu.cpp``, ``gradient_noise_cpu.cpp``, ``cov_matvec_cpu.cpp``,
``grad_gram_cpu.cpp``); contracts in ``sgdcore/grads.py``.
"""

from __future__ import annotations

from ... import _cpu
from ..._backend import register


# checks_finite: the kernel reports NaN or inf among the values it writes (every x_ij is
# multiplied into one), so the caller may skip its own pass over X.
@register("per_example_grads", "cpp", threads="blas", flags=("checks_finite",))
def per_example_grads(model, theta, X, y, out):
    return _cpu.per_example_grads(*model.dims, theta, X, y, out)


@register("per_example_grad_norms", "cpp", threads="blas")
def per_example_grad_sqnorms(model, theta, X, y, out):
    _cpu.per_example_grad_sqnorms(*model.dims, theta, X, y, out)


@register("gradient_noise", "cpp", threads="blas")
def gradient_noise(model, theta, X, y, grad, sqnorms):
    return _cpu.gradient_noise(*model.dims, theta, X, y, grad, sqnorms)


@register("cov_matvec", "cpp", threads="blas")
def cov_matvec(model, theta, X, y, Vt, shift, out, ssum):
    _cpu.cov_matvec(*model.dims, theta, X, y, Vt, shift, out, ssum)


@register("grad_gram", "cpp", threads="blas")
def grad_gram(model, theta, X, y, out):
    _cpu.grad_gram(*model.dims, theta, X, y, out)
