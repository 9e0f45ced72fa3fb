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
from sgdcore import _backend

# ------------------------------------------------------------------ the stand-ins


#: Host <-> device copies made through the stand-in: (direction, shape).
COPIES: list[tuple[str, tuple]] = []
#: The current device of the stand-in (``cupy.cuda.Device(i)`` as a context sets it).
CURRENT = [0]


def _plain(a) -> bool:
    return isinstance(a, np.ndarray) and not isinstance(a, DevArray)


def _refuse_host(values, what):
    """CuPy refuses NumPy arrays as operands: so does the stand-in."""
    for a in values:
        if isinstance(a, (list, tuple)):
            _refuse_host(a, what)
        elif _plain(a):
            raise TypeError(f"{what}: a NumPy array met a device array (no implicit copy)")


class DevArray(np.ndarray):
    """A NumPy array standing in for a CuPy array: it lives on device ``_dev_id`` (0 by
    default), has CuPy's flags (no ``writeable``), refuses NumPy operands as CuPy does,
    and its ``get()`` counts as a device -> host copy.
    """

    _dev_id = 0

    def __array_finalize__(self, obj):
        self._dev_id = getattr(obj, "_dev_id", 0)

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self)

    @property
    def device(self):
        return types.SimpleNamespace(id=self._dev_id)

    @property
    def flags(self):
        f = self.view(np.ndarray).flags
        return types.SimpleNamespace(
            c_contiguous=f.c_contiguous, f_contiguous=f.f_contiguous, owndata=f.owndata
        )

    def get(self, out=None):
        COPIES.append(("to_host", self.shape))
        if out is None:
            return np.array(self.view(np.ndarray))
        assert _plain(out) and out.dtype == self.dtype and out.shape == self.shape
        out[...] = self.view(np.ndarray)
        return out

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host(inputs + tuple(kwargs.get("out", ())), ufunc.__name__)
        args = [_host_view(a) for a in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_host_view(o) for o in kwargs["out"])
        return _on_dev(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host(list(args) + list(kwargs.values()), func.__name__)
        return super().__array_function__(func, types_, args, kwargs)

    def __setitem__(self, key, value):
        if _plain(value) and value.ndim and key not in (slice(None), Ellipsis):
            raise TypeError("setitem: a NumPy array value (CuPy takes one only for [:])")
        super().__setitem__(key, value)

    def __bool__(self):
        return bool(self.view(np.ndarray))


def _host_view(a):
    return a.view(np.ndarray) if isinstance(a, DevArray) else a


def _dev(a, dev_id=None):
    d = np.asarray(a).view(DevArray)
    if dev_id is not None:
        d._dev_id = dev_id
    return d


def _to_dev(a, dtype=None):
    """The stand-in of a host -> device copy (counted)."""
    a = np.asarray(a, dtype=dtype)
    COPIES.append(("to_device", a.shape))
    return _dev(np.array(a))


def _on_dev(result):
    if isinstance(result, tuple):
        return tuple(_on_dev(r) for r in result)
    return _dev(result) if _plain(result) else result


class _FakeCupy(types.ModuleType):
    """``cupy``: NumPy's functions on device arrays, answering device arrays; NumPy
    arrays are refused except by the copying functions."""

    def __getattr__(self, name):
        f = getattr(np, name)
        if isinstance(f, type) or not callable(f):
            return f

        def call(*args, **kwargs):
            _refuse_host(list(args) + list(kwargs.values()), f"cupy.{name}")
            return _on_dev(f(*args, **kwargs))

        return call


def _fake_cupy():
    cp = _FakeCupy("cupy")
    cp.ndarray = DevArray

    def asarray(a, dtype=None):
        if isinstance(a, DevArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        return _to_dev(a, dtype)

    def ascontiguousarray(a, dtype=None):
        if isinstance(a, DevArray):
            return _dev(np.ascontiguousarray(a.view(np.ndarray), dtype=dtype), a._dev_id)
        return _to_dev(np.ascontiguousarray(a), dtype)

    def asnumpy(a):
        return a.get() if isinstance(a, DevArray) else np.asarray(a)

    cp.asarray, cp.ascontiguousarray, cp.asnumpy = asarray, ascontiguousarray, asnumpy
    cp.linalg = _fake_linalg()
    stream = types.SimpleNamespace(ptr=12345)

    class Device:
        def __init__(self, i=None):
            self.id = CURRENT[0] if i is None else i

        def __enter__(self):
            self._saved, CURRENT[0] = CURRENT[0], self.id
            return self

        def __exit__(self, *exc):
            CURRENT[0] = self._saved

    cp.cuda = types.SimpleNamespace(
        get_current_stream=lambda: stream,
        Device=Device,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 2, CUDARuntimeError=RuntimeError),
    )
    return cp


def _fake_linalg():
    def wrap(f):
        def call(*args, **kwargs):
            _refuse_host(args, f.__name__)
            return _on_dev(f(*args, **kwargs))

        return call

    def cholesky(H):
        CALLS.append("cholesky")
        return wrap(np.linalg.cholesky)(H)

    names = ("eigh", "eigvalsh", "qr", "norm", "slogdet")
    linalg = {n: wrap(getattr(np.linalg, n)) for n in names}
    return types.SimpleNamespace(cholesky=cholesky, **linalg)


def _fake_cupyx():
    """``cupyx`` and ``cupyx.scipy.linalg`` (triangular solves) over SciPy."""
    import scipy.linalg

    def solve_triangular(a, b, trans=0, lower=False):
        CALLS.append("solve_triangular")
        _refuse_host((a, b), "solve_triangular")
        return _on_dev(scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower))

    linalg = types.ModuleType("cupyx.scipy.linalg")
    linalg.solve_triangular = solve_triangular
    sp = types.ModuleType("cupyx.scipy")
    sp.linalg = linalg
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = sp
    return {"cupyx": cupyx, "cupyx.scipy": sp, "cupyx.scipy.linalg": linalg}


CALLS: list[str] = []


def _arr(a, f64, size, name):
    """Check one array argument as the CUDA kernels need it."""
    assert isinstance(a, DevArray), f"{name}: not a device array"
    assert a.flags.c_contiguous, f"{name}: not contiguous"
    if f64 is not None:
        assert a.dtype == (np.float64 if f64 else np.float32), f"{name}: dtype {a.dtype}"
    assert a.size == size, f"{name}: {a.size} elements, expected {size}"
    assert a.device.id == CURRENT[0], f"{name}: on device {a.device.id}, not the current one"
    return a.view(np.ndarray)  # the kernel's memory, as the host computes on it


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
    for name, module in _fake_cupyx().items():
        mp.setitem(sys.modules, name, module)
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


# ------------------------------------------------- device arrays through the public API


def _host(a):
    assert isinstance(a, DevArray), f"{type(a).__name__} is not a device array"
    return np.array(a.view(np.ndarray))


@params
@dtypes
def test_device_arrays_through_the_public_api(fake_gpu, net, fp):
    CALLS.clear()
    check_device_public_api(net, fp, _dev, _host, DevArray)
    assert "output_residual" in CALLS  # auto ran the cuda kernels on device arrays


@params
def test_gradient_noise_on_device_arrays(fake_gpu, net):
    check_device_noise(net, _dev, _host, DevArray)


@params
def test_estimates_over_a_device_operator_make_no_copy_per_product(fake_gpu, net):
    """After the operator is built, Lanczos, Hutchinson and SLQ move no vector of length
    P between host and device per product: only the seeded start vectors and probes go
    up (once per run, per probe for SLQ), and only scalars come back."""
    op = check_device_estimates(net, _dev)
    P = net.n_params

    def vectors():  # the copies of arrays with a side of length P
        return [c for c in COPIES if P in c[1]]

    COPIES.clear()
    before = op.n_products
    res = sgdcore.curvature.top_eigenvalues(op, 2, tol=1e-10, ncv=min(P, 12))
    assert op.n_products - before >= min(P, 12)
    # the start vector goes up; an operator with P <= ncv is diagonalised densely instead
    assert vectors() == ([("to_host", (P, P))] if P <= 12 else [("to_device", (P,))])
    COPIES.clear()
    sgdcore.curvature.trace(op, n_products=30, method="hutchinson", seed=0)
    # the probes go up as one block; P <= 30 is traced exactly: I up, the diagonal back
    exact = [("to_device", (P, P)), ("to_host", (P,))]
    assert vectors() == ([("to_device", (P, 30))] if P > 30 else exact)
    COPIES.clear()
    sgdcore.curvature.slq(op, np.square, n_probes=3, steps=6, seed=0)  # 6 < P
    assert vectors() == [("to_device", (P,))] * 3  # one start vector per probe
    assert np.all(np.isfinite(res.eigenvalues))


@params
def test_numpy_inputs_with_backend_cuda_are_copied_once(fake_gpu, net):
    theta, X, y = data(net)
    v = np.random.default_rng(1).standard_normal((net.n_params, 3))
    COPIES.clear()
    got = sgdcore.hvp(net, theta, X, y, v, backend="cuda")
    assert type(got) is np.ndarray
    assert sorted(COPIES) == sorted(
        [("to_device", a.shape) for a in (theta, X, y, v)] + [("to_host", v.shape)]
    )
    np.testing.assert_allclose(
        got, sgdcore.hvp(net, theta, X, y, v, backend="numpy"), rtol=1e-10, atol=1e-10
    )
    # an operator built on NumPy data for the cuda backend keeps it on the device
    op = sgdcore.curvature.HessianOperator(net, theta, X, y, backend="cuda")
    assert isinstance(op.X, DevArray)
    COPIES.clear()
    for j in range(3):
        op @ v[:, j]
    P = net.n_params
    assert COPIES == [("to_device", (1, P)), ("to_host", (1, P))] * 3
    # results come back in kind, `out` written on the host
    out = np.empty((X.shape[0],))
    r = sgdcore.per_example_grad_norms(net, theta, X, y, out=out, backend="cuda")
    assert r is out
    np.testing.assert_allclose(out, sgdcore.per_example_grad_norms(net, theta, X, y), rtol=1e-10)
    blocks = sgdcore.per_example_grads(net, theta, X, y, chunk_size=25, backend="cuda")
    G = sgdcore.per_example_grads(net, theta, X, y, backend="numpy")
    for s, b in blocks:
        assert type(b) is np.ndarray
        np.testing.assert_allclose(b, G[s : s + b.shape[0]], rtol=1e-10, atol=1e-12)
    noise = sgdcore.gradient_noise(net, theta, X, y, backend="cuda")
    assert type(noise.mean_grad) is np.ndarray
    assert type(noise.cov_matvec(v)) is np.ndarray
    assert type(noise.top_eigenvalues(2, method="lanczos")) is np.ndarray


@pytest.mark.parametrize("net", MODELS[:2], ids=lambda m: m.kind)
def test_logistic_evidence_on_device_arrays(fake_gpu, net):
    CALLS.clear()
    check_device_evidence(net, _dev)
    # the Newton steps and the evidence factor the Hessian on the device
    assert {"cholesky", "solve_triangular"} <= set(CALLS)


def test_auto_picks_cuda_for_device_arrays_only(fake_gpu):
    net = MODELS[2]
    theta, X, y = data(net)
    assert _backend.resolve("auto", arrays=(_dev(theta), _dev(X))) == "cuda"
    assert _backend.resolve("auto", arrays=(theta, X)) != "cuda"
    CALLS.clear()
    sgdcore.loss(net, theta, X, y)
    assert CALLS == []  # NumPy inputs never reach the cuda kernels under auto
    sgdcore.loss(net, _dev(theta), _dev(X), _dev(y))
    assert "output_residual" in CALLS


def test_bad_device_arguments_are_named_at_the_public_api(fake_gpu):
    net = MODELS[1]
    theta, X, y = data(net)
    td, Xd, yd = _dev(theta), _dev(X), _dev(y)
    v = np.ones(net.n_params)
    with pytest.raises(ValueError, match="^y is a NumPy array but theta is a CuPy array"):
        sgdcore.loss_and_grad(net, td, Xd, y)
    with pytest.raises(ValueError, match="^v is a NumPy array but theta is a CuPy array"):
        sgdcore.hvp(net, td, Xd, yd, v)
    with pytest.raises(ValueError, match="^out is a NumPy array but theta is a CuPy array"):
        sgdcore.per_example_grad_norms(net, td, Xd, yd, out=np.empty(X.shape[0]))
    with pytest.raises(ValueError, match="^X lives on GPU 1 but the current device is GPU 0"):
        sgdcore.per_example_grads(net, td, _dev(X, dev_id=1), yd)
    with pytest.raises(ValueError, match="^X is a non-contiguous CuPy array"):
        sgdcore.gradient_noise(net, td, _dev(np.asfortranarray(X)), yd)
    with pytest.raises(ValueError, match="^X is a NumPy array but theta is a CuPy array"):
        sgdcore.curvature.HessianOperator(net, td, X, y)
    op = sgdcore.curvature.HessianOperator(net, td, Xd, yd)
    with pytest.raises(ValueError, match="^x lives on GPU 1"):
        op @ _dev(v, dev_id=1)
    with pytest.raises(ValueError, match=rf"^x must have shape \({net.n_params},\) or"):
        op @ _dev(v[1:])
    with sys.modules["cupy"].cuda.Device(1):
        with pytest.raises(ValueError, match="^theta lives on GPU 0 but the current device"):
            sgdcore.loss(net, td, Xd, yd)
