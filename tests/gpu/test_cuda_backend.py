"""The ``cuda`` backend on a GPU against the float64 oracle (``sgdcore/reference.py``):
float64 to 1e-10, float32 to 1e-5 relative (TF32 off, CuPy's default), NumPy in/NumPy out
through ``backend="cuda"``, CuPy outputs on the device, two streams, bad inputs. Skipped,
with the reason, where no GPU, CuPy or ``sgdcore._cuda`` is present.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cases import MODELS, TOL, data, dtypes, params  # tests/gpu/cases.py

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

from sgdcore.kernels._cuda import curvature as dcurv  # noqa: E402
from sgdcore.kernels._cuda import grads as dgrads  # noqa: E402
from sgdcore.kernels._cuda import loss_and_grad as dlag  # noqa: E402


def _close(got, want, dtype):
    got = cp.asnumpy(got) if isinstance(got, cp.ndarray) else np.asarray(got)
    np.testing.assert_allclose(got, want, **TOL[dtype])


@params
@dtypes
def test_loss_grad_proba_accuracy_through_the_public_api(net, fp):
    dtype = fp
    theta, X, y = data(net, dtype=dtype)
    c, g = sgdcore.loss_and_grad(net, theta, X, y, l2=0.3, backend="cuda")
    assert isinstance(g, np.ndarray)
    _close(c, reference.loss(net, theta, X, y, l2=0.3), dtype)
    _close(g, reference.grad(net, theta, X, y, l2=0.3), dtype)
    _close(sgdcore.loss(net, theta, X, y, backend="cuda"), reference.loss(net, theta, X, y), dtype)
    _close(
        sgdcore.predict_proba(net, theta, X, backend="cuda"),
        reference.predict_proba(net, theta, X),
        dtype,
    )
    assert sgdcore.accuracy(net, theta, X, y, backend="cuda") == reference.accuracy(
        net, theta.astype(np.float64), X.astype(np.float64), y
    )


@params
@dtypes
def test_per_example_quantities(net, fp):
    dtype = fp
    theta, X, y = data(net, dtype=dtype)
    _close(
        sgdcore.per_example_grad_norms(net, theta, X, y, backend="cuda") ** 2,
        reference.per_example_grad_norms(net, theta, X, y, squared=True),
        dtype,
    )
    _close(
        sgdcore.per_example_grads(net, theta, X, y, backend="cuda"),
        reference.per_example_grads(net, theta, X, y),
        dtype,
    )


@params
def test_gradient_noise_every_field(net):
    theta, X, y = data(net)
    got = sgdcore.gradient_noise(net, theta, X, y, backend="cuda")
    want = reference.gradient_noise(net, theta, X, y)
    for field in ("trace_cov", "grad_norm_sq", "b_simple"):
        _close(getattr(got, field), want[field], np.float64)
    _close(got.mean_grad, want["mean_grad"], np.float64)
    v = np.random.default_rng(3).standard_normal(net.n_params)
    _close(got.cov_matvec(v), want["cov"] @ v, np.float64)


@params
def test_hvp_ggn_and_logistic_hessian(net):
    theta, X, y = data(net)
    v = np.random.default_rng(4).standard_normal(net.n_params)
    _close(
        sgdcore.hvp(net, theta, X, y, v, backend="cuda"),
        reference.hvp(net, theta, X, y, v),
        np.float64,
    )
    _close(
        sgdcore.ggn_vp(net, theta, X, y, v, backend="cuda"),
        reference.ggn_vp(net, theta, X, y, v),
        np.float64,
    )
    if net.kind != "mlp":
        _close(
            sgdcore.hessian(net, theta, X, y, backend="cuda"),
            reference.hessian(net, theta, X, y),
            np.float64,
        )


@params
@dtypes
def test_cupy_arrays_in_give_cupy_arrays_out_at_the_kernel_level(net, fp):
    dtype = fp
    theta, X, y = data(net, dtype=dtype)
    td, Xd, yd = cp.asarray(theta), cp.asarray(X), cp.asarray(y)
    g = cp.empty_like(td)
    ce = dlag.loss_and_grad(net, td, Xd, yd, g)
    _close(ce, reference.loss(net, theta, X, y), dtype)
    _close(g, reference.grad(net, theta, X, y), dtype)
    p = dlag.predict_proba(net, td, Xd)
    assert isinstance(p, cp.ndarray)
    _close(p, reference.predict_proba(net, theta, X), dtype)
    sq = cp.empty(X.shape[0], dtype=dtype)
    dgrads.per_example_grad_sqnorms(net, td, Xd, yd, sq)
    _close(sq, reference.per_example_grad_norms(net, theta, X, y, squared=True), dtype)
    v = np.random.default_rng(5).standard_normal(net.n_params).astype(dtype)
    out = cp.empty((1, net.n_params), dtype=dtype)
    dcurv.hvp(net, td, Xd, yd, cp.asarray(v)[None], out)
    _close(out[0], reference.hvp(net, theta, X, y, v), dtype)


def test_two_streams_give_the_results_of_one():
    net = MODELS[2]
    theta, X, y = data(net, n=4000)
    want = reference.grad(net, theta, X, y)
    outs = []
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(2)]
    for s in streams:
        with s:
            td, Xd, yd = cp.asarray(theta), cp.asarray(X), cp.asarray(y)
            g = cp.empty_like(td)
            dlag.loss_and_grad(net, td, Xd, yd, g)
            outs.append(g)
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


def test_auto_never_picks_cuda_for_numpy_inputs():
    assert _backend.resolve("auto", arrays=(np.zeros(3),)) != "cuda"
