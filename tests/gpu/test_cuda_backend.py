"""The ``cuda`` backend on a GPU against the float64 oracle (``sgdcore/reference.py``):
float64 to 1e-10, float32 to 1e-5 relative (TF32 off, CuPy's default), NumPy in/NumPy out
through ``backend="cuda"``, CuPy in/CuPy out through every public function (``auto``
picks the GPU for them), device-resident curvature operators under Lanczos, Hutchinson
and SLQ, the logistic evidence with its Cholesky on the device, two streams, bad inputs.
Skipped, with the reason, where no GPU, CuPy or ``sgdcore._cuda`` is present.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cases import (  # tests/gpu/cases.py
    MODELS,
    TOL,
    check_device_estimates,
    check_device_evidence,
    check_device_kernels,
    check_device_noise,
    check_device_public_api,
    check_gradient_noise,
    check_operators_and_evidence,
    check_public_api,
    data,
    dtypes,
    params,
)

import sgdcore
from sgdcore import _backend, reference

pytestmark = pytest.mark.gpu

usable, why = _backend.backend_status("cuda")
if not usable:
    pytest.skip(f"the cuda backend is not usable here: {why}", allow_module_level=True)
if os.environ.get("CUPY_TF32") == "1":
    pytest.skip(
        "CUPY_TF32=1 changes float32 GEMMs; these tolerances are for TF32 off",
        allow_module_level=True,
    )

import cupy as cp  # noqa: E402

from sgdcore.kernels._cuda import loss_and_grad as dlag  # noqa: E402


def _close(got, want, dtype):
    got = cp.asnumpy(got) if isinstance(got, cp.ndarray) else np.asarray(got)
    np.testing.assert_allclose(got, want, **TOL[dtype])


@params
@dtypes
def test_every_quantity_through_the_public_api(net, fp):
    check_public_api(net, fp)


@params
def test_gradient_noise_every_field(net):
    check_gradient_noise(net)


@params
@dtypes
@pytest.mark.parametrize(
    "check", [check_device_kernels, check_device_public_api], ids=["kernels", "public_api"]
)
def test_cupy_arrays_in_give_cupy_arrays_out(net, fp, check):
    check(net, fp, cp.asarray, cp.asnumpy, cp.ndarray)


@params
def test_operators_lanczos_and_evidence(net):
    check_operators_and_evidence(net)


@params
def test_gradient_noise_on_cupy_arrays(net):
    check_device_noise(net, cp.asarray, cp.asnumpy, cp.ndarray)


@params
def test_estimates_over_a_device_operator(net):
    op = check_device_estimates(net, cp.asarray)
    assert isinstance(op.X, cp.ndarray) and isinstance(op.state[1], cp.ndarray)


@pytest.mark.parametrize("net", MODELS[:2], ids=lambda m: m.kind)
def test_logistic_evidence_on_cupy_arrays(net):
    check_device_evidence(net, cp.asarray)


def test_bad_device_inputs_at_the_public_api():
    net = MODELS[1]
    theta, X, y = data(net)
    td, Xd, yd = cp.asarray(theta), cp.asarray(X), cp.asarray(y)
    with pytest.raises(ValueError, match="^y is a NumPy array but theta is a CuPy array"):
        sgdcore.loss_and_grad(net, td, Xd, y)
    with pytest.raises(ValueError, match="^X is a non-contiguous CuPy array"):
        sgdcore.gradient_noise(net, td, cp.asfortranarray(Xd), yd)
    if cp.cuda.runtime.getDeviceCount() > 1:
        with cp.cuda.Device(1):
            X1 = cp.asarray(X)
        with pytest.raises(ValueError, match="^X lives on GPU 1"):
            sgdcore.per_example_grad_norms(net, td, X1, yd)


def _kernel_grad(net, td, Xd, yd, vd):
    g = cp.empty_like(td)
    dlag.loss_and_grad(net, td, Xd, yd, g)
    return g


@pytest.mark.parametrize(
    "through",
    [
        (_kernel_grad, lambda net, t, X, y, v: reference.grad(net, t, X, y)),
        (sgdcore.hvp, reference.hvp),
    ],
    ids=["loss_and_grad_kernel", "public_hvp"],
)
def test_two_streams_give_the_results_of_one(through):
    run, oracle = through
    net = MODELS[2]
    theta, X, y = data(net, n=4000)
    v = np.random.default_rng(2).standard_normal(net.n_params)
    args = (theta, X, y, v)
    want = oracle(net, *args)
    outs = []
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(2)]
    for s in streams:
        with s:
            outs.append(run(net, *(cp.asarray(a) for a in args)))
    for s in streams:
        s.synchronize()
    for g in outs:
        _close(g, want, np.float64)


def test_bad_device_inputs_name_the_argument():
    net = MODELS[0]
    theta, X, y = data(net)
    with pytest.raises(ValueError, match="X is a NumPy array but theta is a CuPy array"):
        dlag.loss_and_grad(net, cp.asarray(theta), X, y, None)
    Xf = cp.asfortranarray(cp.asarray(X))
    with pytest.raises(ValueError, match="X is a non-contiguous CuPy array"):
        dlag.loss_and_grad(net, cp.asarray(theta), Xf, cp.asarray(y), None)
    if cp.cuda.runtime.getDeviceCount() > 1:
        with cp.cuda.Device(1):
            X1 = cp.asarray(X)
        with pytest.raises(ValueError, match="X lives on GPU 1"):
            dlag.loss_and_grad(net, cp.asarray(theta), X1, cp.asarray(y), None)


def test_auto_picks_cuda_for_cupy_inputs_only():
    assert _backend.resolve("auto", arrays=(np.zeros(3),)) != "cuda"
    assert _backend.resolve("auto", arrays=(cp.zeros(3),)) == "cuda"
