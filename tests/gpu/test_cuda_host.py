"""The ``cuda`` backend's Python side on the host, against the float64 oracle.

No GPU is needed: CuPy is replaced by NumPy arrays of a marked subclass ("device arrays")
and ``sgdcore._cuda`` by NumPy versions of its launchers that follow the contracts of
``csrc/cuda/kernels.h`` and check every call as the CUDA kernels need it (contiguous
arrays, the dtype that the ``f64`` flag names, sizes that match ``n``, ``K``, ...). So
these tests check the backend's orchestration: layouts, views, GEMM shapes, which kernel
runs on which buffer, the host <-> device copies and the argument checks. The CUDA
kernels themselves are compiled by ``tests/test_cuda_build.py`` and run on a device by
``tests/gpu/test_cuda_backend.py``. This file needs no GPU and runs everywhere.
"""

from __future__ import annotations

import functools
import sys
import types

import numpy as np
import pytest
from cases import (  # tests/gpu/cases.py
    MODELS,
    check_device_kernels,
    check_gradient_noise,
    check_operators_and_evidence,
    check_public_api,
    data,
    dtypes,
    params,
)

import sgdcore
from sgdcore import _backend

# ------------------------------------------------------------------ the stand-ins


class DevArray(np.ndarray):
    """A NumPy array standing in for a CuPy array on device 0."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self)

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def get(self, out=None):
        assert out is not None and out.dtype == self.dtype and out.shape == self.shape
        out[...] = self
        return out


def _dev(a):
    return np.asarray(a).view(DevArray)


def _fake_cupy():
    cp = types.ModuleType("cupy")
    cp.ndarray = DevArray
    cp.float64, cp.float32, cp.int64 = np.float64, np.float32, np.int64
    cp.asarray = lambda a, dtype=None: _dev(np.array(a, dtype=dtype))
    cp.empty = lambda shape, dtype=np.float64: _dev(np.full(shape, np.nan, dtype=dtype))
    cp.empty_like = lambda a: _dev(np.full_like(a, np.nan))
    cp.ones = lambda shape, dtype=np.float64: _dev(np.ones(shape, dtype=dtype))
    cp.arange = lambda *a: _dev(np.arange(*a))
    cp.ascontiguousarray = lambda a, dtype=None: _dev(np.ascontiguousarray(a, dtype=dtype))
    cp.concatenate = lambda arrs, axis=0: _dev(np.concatenate(arrs, axis=axis))
    cp.asnumpy = lambda a: np.array(a)
    cp.matmul, cp.sum, cp.square, cp.ix_ = np.matmul, np.sum, np.square, np.ix_
    stream = types.SimpleNamespace(ptr=12345)
    cp.cuda = types.SimpleNamespace(
        get_current_stream=lambda: stream,
        Device=lambda *a: types.SimpleNamespace(id=0),
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, CUDARuntimeError=RuntimeError),
    )
    return cp


CALLS: list[str] = []


def _arr(a, f64, size, name):
    """Check one array argument as the CUDA kernels need it."""
    assert isinstance(a, DevArray), f"{name}: not a device array"
    assert a.flags.c_contiguous, f"{name}: not contiguous"
    if f64 is not None:
        assert a.dtype == (np.float64 if f64 else np.float32), f"{name}: dtype {a.dtype}"
    assert a.size == size, f"{name}: {a.size} elements, expected {size}"
    return a


def _fake_cuda():
    m = types.ModuleType("sgdcore._cuda")
    m.LOSS_ONLY, m.RESIDUAL, m.PROBABILITIES = 0, 1, 2

    def output_residual(f64, Z, y, n, K, ce, mode, stream):
        CALLS.append("output_residual")
        assert stream == 12345
        Zm = _arr(Z, f64, n * K, "Z").reshape(n, K)
        if mode != 2:
            y = _arr(y, None, n, "y")
            assert y.dtype == np.int64
        if isinstance(ce, DevArray):
            _arr(ce, True, n, "ce")
        z = Zm.astype(np.float64)
        if K == 1:
            if mode != 2 and isinstance(ce, DevArray):
                ce[:] = np.logaddexp(0, z[:, 0]) - y * z[:, 0]
            if mode == 1:
                Zm[:, 0] = 1 / (1 + np.exp(-z[:, 0])) - y
            if mode == 2:
                Zm[:, 0] = 1 / (1 + np.exp(-z[:, 0]))
            return
        lse = np.logaddexp.reduce(z, axis=1)
        if mode != 2 and isinstance(ce, DevArray):
            ce[:] = lse - z[np.arange(n), y]
        if mode >= 1:
            Zm[...] = np.exp(z - lse[:, None])
        if mode == 1:
            Zm[np.arange(n), y] -= 1

    def bias_relu(f64, A, b, n, H, stream):
        CALLS.append("bias_relu")
        Am = _arr(A, f64, n * H, "A").reshape(n, H)
        Am[...] = np.maximum(Am + _arr(b, f64, H, "b"), 0)

    def relu_mask(f64, D, A, n, H, stream):
        CALLS.append("relu_mask")
        _arr(D, f64, n * H, "D").reshape(n, H)[...] *= _arr(A, f64, n * H, "A").reshape(n, H) > 0

    def layer_sqnorms(f64, delta, k, a, d, n, out, accumulate, stream):
        CALLS.append("layer_sqnorms")
        dl = _arr(delta, f64, n * k, "delta").reshape(n, k).astype(np.float64)
        am = _arr(a, f64, n * d, "a").reshape(n, d).astype(np.float64)
        v = (dl**2).sum(1) * ((am**2).sum(1) + 1)
        o = _arr(out, True, n, "out")
        o[...] = o + v if accumulate else v

    def row_dot_add(f64, delta, u, n, k, s, stream):
        CALLS.append("row_dot_add")
        dl = _arr(delta, f64, n * k, "delta").reshape(n, k).astype(np.float64)
        _arr(s, True, n, "s")[...] += (dl * _arr(u, f64, n * k, "u").reshape(n, k)).sum(1)

    def scale_rows(f64, delta, s, n, k, out, stream):
        CALLS.append("scale_rows")
        dl = _arr(delta, f64, n * k, "delta").reshape(n, k)
        sv = _arr(s, True, n, "s").astype(dl.dtype)
        _arr(out, f64, n * k, "out").reshape(n, k)[...] = dl * sv[:, None]

    def output_curvature(f64, Pm, R, n, K, stream):
        CALLS.append("output_curvature")
        p = _arr(Pm, f64, n * K, "Pm").reshape(n, K)
        r = _arr(R, f64, n * K, "R").reshape(n, K)
        if K == 1:
            r *= p * (1 - p)
        else:
            r[...] = p * (r - (p * r).sum(1, keepdims=True))

    def logistic_hvp(f64, X, n, D, theta, Pm, v, partial, out, stream):
        CALLS.append("logistic_hvp")
        Xm = _arr(X, f64, n * D, "X").reshape(n, D).astype(np.float64)
        th = _arr(theta, f64, D + 1, "theta")
        if isinstance(Pm, DevArray):
            p = _arr(Pm, f64, n, "Pm")
        else:
            p = 1 / (1 + np.exp(-(Xm @ th[:D] + th[D])))
        vv = _arr(v, f64, D + 1, "v")
        _arr(partial, True, m.logistic_hvp_partials(n, D), "partial")
        c = p * (1 - p) * (Xm @ vv[:D] + vv[D])
        o = _arr(out, f64, D + 1, "out")
        o[:D] = c @ Xm
        o[D] = c.sum()

    launchers = [output_residual, bias_relu, relu_mask, layer_sqnorms, row_dot_add]
    for fn in [*launchers, scale_rows, output_curvature, logistic_hvp]:
        # bound twice, as csrc/bindings_cuda.cpp does: <name>_f32 and <name>_f64
        for f64 in (False, True):
            setattr(m, f"{fn.__name__}_f{64 if f64 else 32}", functools.partial(fn, f64))
    m.logistic_hvp_partials = lambda n, D: ((n + 63) // 64) * (D + 1)
    return m


@pytest.fixture(scope="module")
def fake_gpu():
    """The cuda backend loaded over the stand-ins; the registry restored afterwards."""
    _backend.registry()  # load every other backend first, so that restoring is complete
    saved_kernels, saved_loaded = dict(_backend._KERNELS), dict(_backend._LOADED)
    saved_modules = {k: v for k, v in sys.modules.items() if k.startswith("sgdcore.kernels._cuda")}
    mp = pytest.MonkeyPatch()
    mp.setitem(sys.modules, "cupy", _fake_cupy())
    fake_ext = _fake_cuda()
    mp.setitem(sys.modules, "sgdcore._cuda", fake_ext)
    # `from ... import _cuda` reads the package attribute first (set where the real
    # extension was imported, as on a GPU machine)
    mp.setattr(sgdcore, "_cuda", fake_ext, raising=False)
    for k in saved_modules:
        mp.delitem(sys.modules, k)
    _backend._LOADED.pop("cuda", None)
    try:
        assert _backend.backend_status("cuda") == (True, "")
        cp_fake = sys.modules["cupy"]
        yield cp_fake
    finally:
        for k in [k for k in sys.modules if k.startswith("sgdcore.kernels._cuda")]:
            del sys.modules[k]
        mp.undo()
        sys.modules.update(saved_modules)
        _backend._KERNELS.clear()
        _backend._KERNELS.update(saved_kernels)
        _backend._LOADED.clear()
        _backend._LOADED.update(saved_loaded)
    # the registry is as it was: no kernel over the stand-ins is left behind
    _backend.registry()
    assert _backend._KERNELS == saved_kernels
    assert sys.modules.get("cupy") is not cp_fake


# ------------------------------------------------------------------------- tests


EXPECTED = {  # quantity -> the kernels of sgdcore._cuda its call must have launched
    "loss_and_grad": {"output_residual"},
    "per_example_grad_norms": {"output_residual", "layer_sqnorms"},
    "hvp": set(),
}


@params
@dtypes
def test_every_quantity_through_the_public_api(fake_gpu, net, fp):
    def ran(quantity):
        want = set(EXPECTED[quantity])
        if quantity == "hvp":
            want.add("logistic_hvp" if net.kind == "logistic_binary" else "output_curvature")
        if net.kind == "mlp" and quantity != "hvp":
            want |= {"bias_relu", "relu_mask"}
        assert want <= set(CALLS), f"{quantity}: {sorted(want - set(CALLS))} did not run"
        CALLS.clear()

    CALLS.clear()
    check_public_api(net, fp, ran)


@params
def test_gradient_noise_every_field(fake_gpu, net):
    CALLS.clear()
    check_gradient_noise(net)
    assert {"layer_sqnorms", "row_dot_add", "scale_rows"} <= set(CALLS)


@params
@dtypes
def test_device_arrays_in_give_device_arrays_out(fake_gpu, net, fp):
    check_device_kernels(net, fp, _dev, np.asarray, DevArray)


def test_mixed_and_non_contiguous_inputs_are_refused_by_name(fake_gpu):
    from sgdcore.kernels._cuda import loss_and_grad

    net = MODELS[0]
    theta, X, y = data(net)
    with pytest.raises(ValueError, match="X is a NumPy array but theta is a CuPy array"):
        loss_and_grad.loss_and_grad(net, _dev(theta), X, y, None)
    with pytest.raises(ValueError, match="X is a non-contiguous CuPy array"):
        loss_and_grad.loss_and_grad(net, _dev(theta), _dev(np.asfortranarray(X)), _dev(y), None)


@params
def test_operators_lanczos_and_evidence_through_the_public_api(fake_gpu, net):
    CALLS.clear()
    check_operators_and_evidence(net)
    assert "output_residual" in CALLS  # the fits and products ran on the backend
