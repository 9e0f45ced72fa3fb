"""The reference training engine in NumPy: plain loops over steps and models.

Every other engine is tested against this one. Per step and model: draw the batch from
the model's Philox stream, take the summed gradient of the batch from the shared
forward/residual/backward passes, then the heavy-ball update of DESIGN.md. Evaluation is
batched over the models (one stacked matmul per chunk of examples).
"""

from __future__ import annotations

import numpy as np

from ..._backend import register
from ...philox import BatchStream
from ..contracts import OwnWhen
from ..formulas import binary_ce, log_softmax, relu
from .passes import backward, forward, residual

#: Elements of the largest [K, rows, width] activation block of one evaluation chunk.
EVAL_BLOCK = 1 << 22


def _logits(model, thetas, X):
    """Logits of every model on ``X``: shape (K, n, n_outputs)."""
    K = thetas.shape[0]
    offs = model.offsets()
    if model.kind == "mlp":
        D, H, C = model.n_features, model.n_hidden, model.n_classes
        W1 = thetas[:, offs["W1"]].reshape(K, H, D)
        b1 = thetas[:, offs["b1"]]
        W2 = thetas[:, offs["W2"]].reshape(K, C, H)
        b2 = thetas[:, offs["b2"]]
        A = relu(np.matmul(X, W1.transpose(0, 2, 1)) + b1[:, None, :])
        return np.matmul(A, W2.transpose(0, 2, 1)) + b2[:, None, :]
    name = "w" if model.kind == "logistic_binary" else "W"
    W = thetas[:, offs[name]].reshape(K, model.n_outputs, model.n_features)
    b = thetas[:, offs["b"]]
    return np.matmul(X, W.transpose(0, 2, 1)) + b[:, None, :]


def _cross_entropy(model, Z, labels):
    """Per-example cross-entropy (K, n) of logits Z (K, n, ·) and labels (K, n) or (n,)."""
    labels = np.broadcast_to(labels, Z.shape[:2])
    if model.kind == "logistic_binary":
        return binary_ce(Z[..., 0], labels)
    return -np.take_along_axis(log_softmax(Z.copy()), labels[..., None], axis=2)[..., 0]


def _predictions(model, Z):
    """Most probable class (K, n); ties go to the lowest class, as argmax does."""
    if model.kind == "logistic_binary":
        return (Z[..., 0] > 0).astype(np.int64)
    return np.argmax(Z, axis=2)


def evaluate(model, thetas, X, Y, Xte, yte, n_train):
    """``(test_accuracy, test_ce, train_ce)``, each shape (K,), float64 (means).

    ``Y`` holds each model's training labels (K, N); model k's training loss is over its
    first ``n_train[k]`` rows.
    """
    K = thetas.shape[0]
    width = max(getattr(model, "n_hidden", 0), model.n_outputs)
    rows = max(1, EVAL_BLOCK // (K * width))
    correct = np.zeros(K)
    test_ce = np.zeros(K)
    for s in range(0, Xte.shape[0], rows):
        Z = _logits(model, thetas, Xte[s : s + rows])
        yc = yte[s : s + rows]
        test_ce += _cross_entropy(model, Z, yc).sum(axis=1, dtype=np.float64)
        correct += (_predictions(model, Z) == yc).sum(axis=1)
    train_ce = np.zeros(K)
    for s in range(0, int(n_train.max()), rows):
        Z = _logits(model, thetas, X[s : s + rows])
        ce = _cross_entropy(model, Z, Y[:, s : s + rows])
        inside = (s + np.arange(Z.shape[1]))[None, :] < n_train[:, None]
        train_ce += np.where(inside, ce, 0.0).sum(axis=1, dtype=np.float64)
    M = Xte.shape[0]
    return correct / M, test_ce / M, train_ce / n_train


def _small_batch(job) -> bool:
    """Below B = 64 the GEMMs are too small for BLAS threads to pay (and on a busy
    machine they spin): BLAS then runs on one thread.
    """
    return job.batch_size < 64


@register("train", "numpy", threads=OwnWhen(_small_batch))
def train(job):
    """Train ``job.thetas`` (K, P) in place; return ``(metrics (K, E, 3), div_step (K,))``.

    Overflow and NaN are expected when a model diverges (it is then frozen), so
    floating-point warnings are silenced inside the run.
    """
    with np.errstate(all="ignore"):
        return _train(*job.positional())


def _train(
    model, X, Y, Xte, yte, thetas, seeds, n_train, lr, momentum, l2, B, steps, evals, progress
):
    K, P = thetas.shape
    dtype = thetas.dtype.type
    streams = [BatchStream(int(seeds[k]), int(n_train[k])) for k in range(K)]
    velocity = np.zeros_like(thetas)
    grad = np.empty(P, dtype=thetas.dtype)
    metrics = np.full((K, evals.shape[0], 3), np.nan)
    div_step = np.full(K, -1, dtype=np.int64)
    e = 0
    for t in range(steps + 1):
        if e < evals.shape[0] and evals[e] == t:
            live = np.flatnonzero(div_step < 0)
            acc, test_ce, train_ce = evaluate(
                model, thetas[live], X, Y[live], Xte, yte, n_train[live]
            )
            row = np.stack([acc, test_ce, train_ce], axis=1)
            # Non-finite parameters: NaN metrics (the row is flagged); only a non-finite
            # mini-batch loss stops a model, so evaluations never change a run.
            row[~np.isfinite(thetas[live]).all(axis=1)] = np.nan
            metrics[live, e] = row
            e += 1
            if progress is not None:
                progress(t)
        if t == steps:
            break
        for k in range(K):
            idx = streams[k].next(B)  # drawn even when frozen: streams stay aligned
            if div_step[k] >= 0:
                continue
            theta, Xb = thetas[k], X[idx]
            A, Z = forward(model, theta, Xb)
            ce, R = residual(model, Z, Y[k, idx])
            if not np.isfinite(ce):
                div_step[k] = t
                continue
            backward(model, theta, Xb, A, R, grad)
            g = grad / dtype(B) + dtype(l2[k] / n_train[k]) * theta
            velocity[k] = dtype(momentum[k]) * velocity[k] - dtype(lr[k]) * g
            theta += velocity[k]
    if progress is not None and evals[-1] != steps:
        progress(steps)
    return metrics, div_step
