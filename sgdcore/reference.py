"""Plain NumPy float64 oracle for every quantity sgdcore computes.

Slow and obvious on purpose: a loop over examples wherever that makes the
mathematics plain, an explicit ``P x P`` covariance, a dense Hessian. Every backend
is tested against these functions, and these functions are tested against torch
autograd and central finite differences (``tests/test_reference.py``).

Conventions (``DESIGN.md``):

* ``theta`` is the flat parameter vector of ``model`` (see :mod:`sgdcore.models`);
  ``X`` is ``[N, D]``, ``y`` is ``[N]`` integer class labels in ``[0, C)``.
  Everything is computed and returned in float64, whatever the input dtype.
* Logits ``z`` per example: binary logistic ``z = x . w + b`` (one output,
  ``P(y=1) = sigmoid(z)``); softmax logistic ``z = W x + b``; MLP
  ``a = W1 x + b1``, ``h = relu(a)``, ``z = W2 h + b2``. ``relu'(0) = 0``.
* Cost ``C(theta) = sum_i CE_i + (l2 / 2) |theta|^2`` (biases included in the L2
  term). ``reduction="sum"`` gives ``C``; ``reduction="mean"`` gives ``C / N``,
  so the mean gradient is ``mean_i g_i + (l2 / N) theta`` -- the step SGD takes.
  The same holds for gradients, Hessian(-vector) products and Gauss-Newton products.
* Per-example gradients ``g_i`` are gradients of ``CE_i`` alone (no L2 term).
* Gradient-noise statistics over ``N`` examples: ``G = (1/N) sum_i g_i``,
  ``F = (1/N) sum_i g_i g_i^T - G G^T``, ``tr F``, ``|G|^2`` and
  ``B_simple = tr F / |G|^2``.
"""

from __future__ import annotations

import numpy as np

from ._validate import check_int

__all__ = [
    "accuracy",
    "ggn",
    "ggn_vp",
    "grad",
    "gradient_noise",
    "hessian",
    "hvp",
    "loss",
    "minibatch_cov_trace",
    "per_example_grad_norms",
    "per_example_grads",
    "per_example_losses",
    "predict_proba",
]

_KINDS = ("logistic_binary", "logistic_softmax", "mlp")


# --------------------------------------------------------------------------- checks


def _check_model(model) -> None:
    if getattr(model, "kind", None) not in _KINDS:
        raise TypeError(f"model must be a LogisticRegression or an MLP, got {model!r}")


def _as_theta(model, theta) -> np.ndarray:
    _check_model(model)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (model.n_params,):
        raise ValueError(
            f"theta must have shape ({model.n_params},) for {model!r}, got {theta.shape}"
        )
    return theta


def _as_X(model, X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != model.n_features:
        raise ValueError(f"X must have shape (N, {model.n_features}), got {X.shape}")
    return X


def _as_Xy(model, X, y) -> tuple[np.ndarray, np.ndarray]:
    X = _as_X(model, X)
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    if y.dtype.kind not in "iub":
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= model.n_classes):
        raise ValueError(f"labels must lie in [0, {model.n_classes}), got {y.min()}..{y.max()}")
    return X, y


def _check_reduction(reduction: str, n: int) -> None:
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if reduction == "mean" and n == 0:
        raise ValueError("reduction='mean' needs at least one example")


def _as_problem(model, theta, X, y, reduction: str):
    """``theta``, ``X`` and ``y`` checked and converted, and ``reduction`` checked."""
    theta = _as_theta(model, theta)
    X, y = _as_Xy(model, X, y)
    _check_reduction(reduction, X.shape[0])
    return theta, X, y


def _as_vectors(model, v) -> tuple[np.ndarray, bool]:
    """``v`` as ``[P, k]`` float64, and whether it came in as one ``[P]`` vector."""
    v = np.asarray(v, dtype=np.float64)
    P = model.n_params
    if v.ndim == 1 and v.shape[0] == P:
        return v[:, None], True
    if v.ndim == 2 and v.shape[0] == P:
        return v, False
    raise ValueError(f"v must have shape ({P},) or ({P}, k), got {v.shape}")


def _flat(model, blocks: dict[str, np.ndarray]) -> np.ndarray:
    """Concatenate named tensors into one flat vector in the model's layout."""
    return np.concatenate([np.ravel(blocks[name]) for name, _ in model.shapes])


def _reduce(total, theta_term, l2: float, reduction: str, n: int):
    """``(total + l2 * theta_term)``, divided by ``n`` for the mean reduction."""
    out = total + float(l2) * theta_term
    return out / n if reduction == "mean" else out


# ------------------------------------------------------------------ output layer


def _log_sigmoid(z):
    """``log sigmoid(z) = -log(1 + exp(-z))``, stable for either sign of ``z``."""
    return -np.logaddexp(0.0, -z)


def _sigmoid(z):
    return np.exp(_log_sigmoid(z))


def _log_softmax(z):
    """``z - logsumexp(z)`` along the last axis, shifted by the maximum."""
    z = z - np.max(z, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def _out_loss(kind: str, z: np.ndarray, y: int) -> float:
    """Cross-entropy of one example from its logits ``z`` ([1] binary, [C] softmax)."""
    if kind == "logistic_binary":
        # -log P(y) with P(1) = sigmoid(z), P(0) = sigmoid(-z).
        return float(-_log_sigmoid(z[0] if y == 1 else -z[0]))
    return float(-_log_softmax(z)[y])


def _out_grad(kind: str, z: np.ndarray, y: int) -> np.ndarray:
    """``dCE/dz``: ``[sigmoid(z) - y]`` (binary) or ``softmax(z) - e_y``."""
    if kind == "logistic_binary":
        return np.array([_sigmoid(z[0]) - y])
    delta = np.exp(_log_softmax(z))
    delta[y] -= 1.0
    return delta


def _out_hess(kind: str, z: np.ndarray) -> np.ndarray:
    """``d2CE/dz2``: ``[[p (1 - p)]]`` (binary) or ``diag(p) - p p^T`` (softmax)."""
    if kind == "logistic_binary":
        return np.array([[_sigmoid(z[0]) * _sigmoid(-z[0])]])
    p = np.exp(_log_softmax(z))
    return np.diag(p) - np.outer(p, p)


# ----------------------------------------------------------------- forward pass


def _hidden(params, x):
    """MLP hidden layer of one example: pre-activation ``a``, ReLU mask, ``h``."""
    a = params["W1"] @ x + params["b1"]
    mask = (a > 0).astype(np.float64)  # relu'(a); 0 at a == 0
    return a, mask, a * mask


def _logits(model, params, x) -> np.ndarray:
    """Logits of one example: ``[1]`` for the binary model, else ``[C]``."""
    if model.kind == "logistic_binary":
        return np.array([x @ params["w"] + params["b"][0]])
    if model.kind == "logistic_softmax":
        return params["W"] @ x + params["b"]
    _, _, h = _hidden(params, x)
    return params["W2"] @ h + params["b2"]


def _example_grad(model, params, x, y) -> np.ndarray:
    """Gradient of ``CE`` for one example by backpropagation, flat ``[P]``."""
    z = _logits(model, params, x)
    delta = _out_grad(model.kind, z, y)  # dCE/dz
    if model.kind == "logistic_binary":
        return _flat(model, {"w": delta[0] * x, "b": delta})
    if model.kind == "logistic_softmax":
        return _flat(model, {"W": np.outer(delta, x), "b": delta})
    _, mask, h = _hidden(params, x)
    da = mask * (params["W2"].T @ delta)  # dCE/da
    return _flat(model, {"W1": np.outer(da, x), "b1": da, "W2": np.outer(delta, h), "b2": delta})


def _example_jacobian(model, params, x) -> np.ndarray:
    """Jacobian ``J = dz/dtheta`` of one example's logits, ``[K, P]``."""
    if model.kind == "logistic_binary":
        return _flat(model, {"w": x, "b": np.ones(1)})[None, :]
    C = model.n_classes
    rows = []
    for k in range(C):
        e_k = np.eye(C)[k]
        if model.kind == "logistic_softmax":
            # dz_k/dW[c, d] = [c == k] x_d,  dz_k/db[c] = [c == k]
            rows.append(_flat(model, {"W": np.outer(e_k, x), "b": e_k}))
        else:
            # dz_k/dW1[j, d] = W2[k, j] relu'(a_j) x_d,  dz_k/db1[j] = W2[k, j] relu'(a_j),
            # dz_k/dW2[c, j] = [c == k] h_j,            dz_k/db2[c] = [c == k]
            _, mask, h = _hidden(params, x)
            da = params["W2"][k] * mask
            rows.append(
                _flat(model, {"W1": np.outer(da, x), "b1": da, "W2": np.outer(e_k, h), "b2": e_k})
            )
    return np.stack(rows)


def _mlp_example_hvp(model, params, x, y, v) -> np.ndarray:
    """Exact ``H_i v`` for one MLP example by Pearlmutter's R-operator.

    ``R(.)`` is the directional derivative along ``v = (V1, c1, V2, c2)``. Forward:
    ``R(a) = V1 x + c1``, ``R(h) = relu'(a) R(a)``, ``R(z) = W2 R(h) + V2 h + c2``.
    Backward, from ``delta = dCE/dz``, ``dh = W2^T delta``, ``da = relu'(a) dh``:
    ``R(delta) = H_out R(z)``, ``R(dW2) = R(delta) h^T + delta R(h)^T``,
    ``R(db2) = R(delta)``, ``R(dh) = W2^T R(delta) + V2^T delta`` (the cross term),
    ``R(da) = relu'(a) R(dh)`` (``relu'' = 0`` a.e.), ``R(dW1) = R(da) x^T``,
    ``R(db1) = R(da)``.
    """
    V = model.unflatten(v)
    W2 = params["W2"]
    _, mask, h = _hidden(params, x)
    z = W2 @ h + params["b2"]
    delta = _out_grad(model.kind, z, y)
    # forward R-pass
    Ra = V["W1"] @ x + V["b1"]
    Rh = mask * Ra
    Rz = W2 @ Rh + V["W2"] @ h + V["b2"]
    # backward R-pass
    Rdelta = _out_hess(model.kind, z) @ Rz
    Rdh = W2.T @ Rdelta + V["W2"].T @ delta
    Rda = mask * Rdh
    return _flat(
        model,
        {
            "W1": np.outer(Rda, x),
            "b1": Rda,
            "W2": np.outer(Rdelta, h) + np.outer(delta, Rh),
            "b2": Rdelta,
        },
    )


def _hvp_sum(model, params, X, y, v) -> np.ndarray:
    """``sum_i H_i v`` (cross-entropy only) for one direction ``v`` of shape ``[P]``."""
    if model.kind == "logistic_binary":
        # X~^T (p (1 - p) * (X~ v)) with X~ = [X, 1]
        Xt = np.hstack([X, np.ones((X.shape[0], 1))])
        z = Xt @ _flat(model, params)
        s = _sigmoid(z) * _sigmoid(-z)
        return Xt.T @ (s * (Xt @ v))
    out = np.zeros(model.n_params)
    if model.kind == "logistic_softmax":
        V = model.unflatten(v)
        for x_i in X:
            # (diag p - p p^T)(V x + c), pulled back through z = W x + b
            u = _out_hess(model.kind, _logits(model, params, x_i)) @ (V["W"] @ x_i + V["b"])
            out += _flat(model, {"W": np.outer(u, x_i), "b": u})
        return out
    for x_i, y_i in zip(X, y, strict=True):
        out += _mlp_example_hvp(model, params, x_i, y_i, v)
    return out


def _hvp_total(model, params, X, y, V) -> np.ndarray:
    """``sum_i H_i V``, one column of ``V`` at a time."""
    total = np.zeros_like(V)
    for j in range(V.shape[1]):
        total[:, j] = _hvp_sum(model, params, X, y, V[:, j])
    return total


def _ggn_total(model, params, X, y, V) -> np.ndarray:
    """``sum_i J_i^T H_out,i J_i V``, one example at a time."""
    total = np.zeros_like(V)
    for x_i in X:
        J = _example_jacobian(model, params, x_i)
        total += J.T @ (_out_hess(model.kind, _logits(model, params, x_i)) @ (J @ V))
    return total


def _product(total_of, model, theta, X, y, v, reduction: str, l2) -> np.ndarray:
    """``(total_of(...) + l2 v)``, reduced, for one vector ``v`` or its columns."""
    theta, X, y = _as_problem(model, theta, X, y, reduction)
    V, single = _as_vectors(model, v)
    total = total_of(model, model.unflatten(theta), X, y, V)
    out = _reduce(total, V, l2, reduction, X.shape[0])
    return out[:, 0] if single else out


# ------------------------------------------------------------------- public API


def predict_proba(model, theta, X) -> np.ndarray:
    """Class probabilities.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
        Flat parameters.
    X : array_like, shape (N, D)

    Returns
    -------
    ndarray, shape (N, C), float64
        ``softmax(z)`` row-wise; for the binary model the columns are
        ``[1 - sigmoid(z), sigmoid(z)]`` (each computed stably).
    """
    theta = _as_theta(model, theta)
    X = _as_X(model, X)
    params = model.unflatten(theta)
    out = np.empty((X.shape[0], model.n_classes))
    for i, x_i in enumerate(X):
        z = _logits(model, params, x_i)
        if model.kind == "logistic_binary":
            out[i] = [_sigmoid(-z[0]), _sigmoid(z[0])]
        else:
            out[i] = np.exp(_log_softmax(z))
    return out


def accuracy(model, theta, X, y) -> float:
    """Fraction of examples whose most probable class is ``y``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)

    Returns
    -------
    float
        ``mean_i [argmax_c p_ic == y_i]`` (ties go to the lower class index).
    """
    X, y = _as_Xy(model, X, y)
    if X.shape[0] == 0:
        raise ValueError("accuracy needs at least one example")
    pred = np.argmax(predict_proba(model, theta, X), axis=1)
    return float(np.mean(pred == y))


def per_example_losses(model, theta, X, y) -> np.ndarray:
    """Cross-entropy of each example, ``CE_i = -log p_{i, y_i}`` (no L2 term).

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)

    Returns
    -------
    ndarray, shape (N,), float64
        Binary: ``log(1 + exp(z)) - y z``; softmax: ``logsumexp(z) - z_y``.
    """
    theta = _as_theta(model, theta)
    X, y = _as_Xy(model, X, y)
    params = model.unflatten(theta)
    out = np.zeros(X.shape[0])
    for i, (x_i, y_i) in enumerate(zip(X, y, strict=True)):
        out[i] = _out_loss(model.kind, _logits(model, params, x_i), y_i)
    return out


def loss(model, theta, X, y, reduction="sum", l2=0.0) -> float:
    """The cost ``C(theta) = sum_i CE_i + (l2 / 2) |theta|^2``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    reduction : {"sum", "mean"}
        ``"sum"`` returns ``C``; ``"mean"`` returns ``C / N``
        (``mean_i CE_i + (l2 / (2 N)) |theta|^2``).
    l2 : float
        L2 coefficient ``lambda`` (applies to all parameters, biases included).

    Returns
    -------
    float

    Examples
    --------
    At ``theta = 0`` every binary prediction is 1/2, so ``C = N log 2``:

    >>> import numpy as np
    >>> from sgdcore.models import LogisticRegression
    >>> m = LogisticRegression(3)
    >>> X, y = np.ones((4, 3)), np.array([0, 1, 1, 0])
    >>> bool(np.isclose(loss(m, np.zeros(4), X, y), 4 * np.log(2)))
    True
    """
    theta = _as_theta(model, theta)
    ce = per_example_losses(model, theta, X, y)
    _check_reduction(reduction, ce.shape[0])
    return float(_reduce(np.sum(ce), 0.5 * (theta @ theta), l2, reduction, ce.shape[0]))


def per_example_grads(model, theta, X, y) -> np.ndarray:
    """Gradient of each example's cross-entropy, ``g_i = dCE_i/dtheta`` (no L2).

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)

    Returns
    -------
    ndarray, shape (N, P), float64
        Row ``i`` is ``J_i^T delta_i`` in the flat layout, with ``delta = dCE/dz``
        (``sigmoid(z) - y`` or ``softmax(z) - e_y``) backpropagated: logistic
        ``(delta x^T, delta)``; MLP ``da = relu'(a) * (W2^T delta)``,
        ``(da x^T, da, delta h^T, delta)``.
    """
    theta = _as_theta(model, theta)
    X, y = _as_Xy(model, X, y)
    params = model.unflatten(theta)
    out = np.zeros((X.shape[0], model.n_params))
    for i, (x_i, y_i) in enumerate(zip(X, y, strict=True)):
        out[i] = _example_grad(model, params, x_i, y_i)
    return out


def per_example_grad_norms(model, theta, X, y, squared=False) -> np.ndarray:
    """Euclidean norm of each per-example gradient.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    squared : bool
        Return ``|g_i|^2`` instead of ``|g_i|``.

    Returns
    -------
    ndarray, shape (N,), float64
    """
    g = per_example_grads(model, theta, X, y)
    sq = np.sum(g * g, axis=1)
    return sq if squared else np.sqrt(sq)


def grad(model, theta, X, y, reduction="sum", l2=0.0) -> np.ndarray:
    """Gradient of the cost, ``sum_i g_i + l2 theta``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    reduction : {"sum", "mean"}
        ``"mean"`` divides everything by ``N``: ``mean_i g_i + (l2 / N) theta``.
    l2 : float

    Returns
    -------
    ndarray, shape (P,), float64
    """
    theta = _as_theta(model, theta)
    g = per_example_grads(model, theta, X, y)
    _check_reduction(reduction, g.shape[0])
    return _reduce(np.sum(g, axis=0), theta, l2, reduction, g.shape[0])


def gradient_noise(model, theta, X, y) -> dict:
    """Mean and covariance of the per-example gradients over ``N`` examples.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)

    Returns
    -------
    dict
        ``mean_grad`` : ndarray (P,), ``G = (1/N) sum_i g_i``.
        ``cov`` : ndarray (P, P), ``F = (1/N) sum_i g_i g_i^T - G G^T`` (computed as
        ``(1/N) sum_i (g_i - G)(g_i - G)^T``, the same matrix).
        ``trace_cov`` : float, ``tr F = (1/N) sum_i |g_i - G|^2``.
        ``grad_norm_sq`` : float, ``|G|^2``.
        ``b_simple`` : float, ``tr F / |G|^2`` (``inf`` when ``G = 0 != tr F``,
        ``nan`` when both vanish).
        ``n`` : int, ``N``.
    """
    g = per_example_grads(model, theta, X, y)
    n, P = g.shape
    if n == 0:
        raise ValueError("gradient_noise needs at least one example")
    G = np.sum(g, axis=0) / n
    cov = np.zeros((P, P))
    trace_cov = 0.0
    for g_i in g:
        d = g_i - G
        cov += np.outer(d, d)
        trace_cov += d @ d
    cov /= n
    trace_cov /= n
    grad_norm_sq = float(G @ G)
    if grad_norm_sq > 0:
        b_simple = trace_cov / grad_norm_sq
    else:
        b_simple = np.inf if trace_cov > 0 else np.nan
    return {
        "mean_grad": G,
        "cov": cov,
        "trace_cov": float(trace_cov),
        "grad_norm_sq": grad_norm_sq,
        "b_simple": float(b_simple),
        "n": int(n),
    }


def minibatch_cov_trace(trace_cov, n, batch_size) -> float:
    """Trace of the covariance of a mini-batch's mean gradient.

    For a batch of ``B`` examples drawn uniformly without replacement from ``N``,
    ``Cov(mean_batch g) = (N - B) / (B (N - 1)) F``, so the trace is
    ``(N - B) / (B (N - 1)) tr F`` (``tr F`` at ``B = 1``, zero at ``B = N``).

    Parameters
    ----------
    trace_cov : float
        ``tr F`` over the ``N`` examples (``gradient_noise(...)["trace_cov"]``).
    n : int
        ``N``, the number of examples.
    batch_size : int
        ``B``, with ``1 <= B <= N``.

    Returns
    -------
    float
    """
    n, batch_size = check_int("n", n), check_int("batch_size", batch_size)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must satisfy 1 <= batch_size <= n = {n}, got {batch_size}")
    if batch_size == n:
        return 0.0
    return float(trace_cov) * (n - batch_size) / (batch_size * (n - 1))


def hvp(model, theta, X, y, v, reduction="sum", l2=0.0) -> np.ndarray:
    """Exact Hessian-vector product ``(sum_i H_i + l2 I) v``.

    ``H_i`` is the Hessian of ``CE_i``. Logistic: ``X~^T (p (1 - p) * (X~ v))`` with
    ``X~ = [X, 1]`` (binary), or per example ``(diag p - p p^T)(V x + c)`` pulled back
    through ``z = W x + b`` (softmax). MLP: Pearlmutter's R-operator per example, a
    forward R-pass and a backward R-pass including the cross term from ``W2``
    (``relu''`` is zero almost everywhere).

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    v : array_like, shape (P,) or (P, k)
        One direction, or ``k`` directions as columns.
    reduction : {"sum", "mean"}
        ``"mean"`` divides everything, the ``l2 v`` term included, by ``N``.
    l2 : float

    Returns
    -------
    ndarray, shape of ``v``, float64
    """
    return _product(_hvp_total, model, theta, X, y, v, reduction, l2)


def hessian(model, theta, X, y, reduction="sum", l2=0.0) -> np.ndarray:
    """Dense Hessian of the cost, ``sum_i H_i + l2 I``.

    Binary logistic in closed form, ``X~^T diag(p (1 - p)) X~ + l2 I`` with
    ``X~ = [X, 1]``; otherwise ``hvp`` applied to the columns of the identity.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    reduction : {"sum", "mean"}
        ``"mean"`` divides everything, the ``l2 I`` term included, by ``N``.
    l2 : float

    Returns
    -------
    ndarray, shape (P, P), float64
    """
    theta, X, y = _as_problem(model, theta, X, y, reduction)
    P = model.n_params
    if model.kind != "logistic_binary":
        return hvp(model, theta, X, y, np.eye(P), reduction=reduction, l2=l2)
    Xt = np.hstack([X, np.ones((X.shape[0], 1))])
    z = Xt @ theta
    s = _sigmoid(z) * _sigmoid(-z)
    return _reduce(Xt.T @ (s[:, None] * Xt), np.eye(P), l2, reduction, X.shape[0])


def ggn(model, theta, X, y, reduction="sum", l2=0.0) -> np.ndarray:
    """Dense generalised Gauss-Newton matrix ``sum_i J_i^T H_out,i J_i + l2 I``.

    ``J_i = dz_i/dtheta`` is the ``[K, P]`` Jacobian of example ``i``'s logits and
    ``H_out,i = d2CE_i/dz2`` (``p (1 - p)`` binary, ``diag p - p p^T`` softmax). For
    logistic regression the GGN equals the Hessian; for the ReLU MLP it drops the
    ``sum_k delta_k d2z_k/dtheta2`` term, which lives only in the ``W2 x (W1, b1)``
    blocks.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    reduction : {"sum", "mean"}
        ``"mean"`` divides everything, the ``l2 I`` term included, by ``N``.
    l2 : float

    Returns
    -------
    ndarray, shape (P, P), float64
    """
    theta, X, y = _as_problem(model, theta, X, y, reduction)
    params = model.unflatten(theta)
    P = model.n_params
    total = np.zeros((P, P))
    for x_i in X:
        J = _example_jacobian(model, params, x_i)
        total += J.T @ _out_hess(model.kind, _logits(model, params, x_i)) @ J
    return _reduce(total, np.eye(P), l2, reduction, X.shape[0])


def ggn_vp(model, theta, X, y, v, reduction="sum", l2=0.0) -> np.ndarray:
    """Gauss-Newton-vector product ``(sum_i J_i^T H_out,i J_i + l2 I) v``.

    Parameters
    ----------
    model : LogisticRegression or MLP
    theta : array_like, shape (P,)
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    v : array_like, shape (P,) or (P, k)
    reduction : {"sum", "mean"}
        ``"mean"`` divides everything, the ``l2 v`` term included, by ``N``.
    l2 : float

    Returns
    -------
    ndarray, shape of ``v``, float64

    See Also
    --------
    ggn : the dense matrix and the definitions of ``J_i`` and ``H_out,i``.
    """
    return _product(_ggn_total, model, theta, X, y, v, reduction, l2)
