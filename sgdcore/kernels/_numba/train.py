"""Numba training engine: compiled loops over models and steps, ``np.dot`` for GEMMs.

Python only splits the run at evaluation steps; between two evaluations one compiled call
runs every model through its steps, the models in parallel over Numba's threads (each
model's steps stay on one thread, so its parameters stay in that core's cache) with
single-threaded BLAS. The Philox batch schedule is the one of ``csrc/common/philox.h`` and
``sgdcore/philox.py``, written again here with ``uint64`` arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..._backend import register
from ...models import KIND_LOGISTIC_BINARY, KIND_MLP
from ...philox import STREAM_BATCHES
from ..formulas import ce_row, relu, residual_row
from .passes import views

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_STREAM = np.uint64(STREAM_BATCHES)
_SH = np.uint64(32)
_TWO32 = np.uint64(1 << 32)


@njit(cache=True)
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of one counter; every argument and result is a uint64 < 2**32."""
    for r in range(10):
        if r > 0:
            k0 = (k0 + _W0) & _MASK
            k1 = (k1 + _W1) & _MASK
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _SH) ^ c1 ^ k0, p1 & _MASK, (p0 >> _SH) ^ c3 ^ k1, p0 & _MASK
    return c0, c1, c2, c3


@njit(cache=True)
def _uniform_below(s, i, epoch, k0, k1):
    """Exactly uniform integer in [0, s) for Fisher-Yates position i (uint64 args)."""
    threshold = (_TWO32 - s) % s
    attempt = np.uint64(0)
    while True:
        w0, w1, w2, w3 = philox4x32_10(i, epoch, _STREAM, attempt, k0, k1)
        for w in (w0, w1, w2, w3):
            m = w * s
            if (m & _MASK) >= threshold:
                return np.int64(m >> _SH)
        attempt += np.uint64(1)


@njit(cache=True)
def swap_partners(seed, epoch, positions):
    """Fisher-Yates partner of each position (as :func:`sgdcore.philox.swap_partners`)."""
    s64 = np.uint64(seed)
    out = np.empty(positions.shape[0], dtype=np.int64)
    for q in range(positions.shape[0]):
        i = np.uint64(positions[q])
        out[q] = _uniform_below(i + np.uint64(1), i, np.uint64(epoch), s64 & _MASK, s64 >> _SH)
    return out


@njit(cache=True)
def epoch_permutation(seed, n, epoch, perm):
    """Write epoch ``epoch``'s permutation of range(n) into perm[:n] (seed: uint64)."""
    k0 = seed & _MASK
    k1 = seed >> _SH
    for i in range(n):
        perm[i] = i
    e = np.uint64(epoch)
    for i in range(n - 1, 0, -1):
        j = _uniform_below(np.uint64(i + 1), np.uint64(i), e, k0, k1)
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


@njit(cache=True)
def _next_batch(perm, state, seed, n, B, idx):
    """The next B indices of the stream; state = [epoch, position] (int64, updated)."""
    for j in range(B):
        if state[1] == n:
            state[0] += 1
            state[1] = 0
            epoch_permutation(seed, n, state[0], perm)
        idx[j] = perm[state[1]]
        state[1] += 1


@njit(cache=True)
def batch_indices(seed, n, B, steps):
    """Same as :func:`sgdcore.philox.batch_indices` (for tests)."""
    perm = np.empty(n, dtype=np.int64)
    epoch_permutation(np.uint64(seed), n, 0, perm)
    state = np.zeros(2, dtype=np.int64)
    out = np.empty((steps, B), dtype=np.int64)
    for t in range(steps):
        _next_batch(perm, state, np.uint64(seed), n, B, out[t])
    return out


@njit(cache=True)
def _logits_into(theta, X, n, kind, D, H, C, A, Z):
    """Z[:n] = logits of X[:n]; for the MLP also A[:n] = ReLU activations."""
    W1, b1, W2, b2 = views(theta, kind, D, H, C)
    if kind == KIND_MLP:
        np.dot(X[:n], W1.T, A[:n])
        for i in range(n):
            for j in range(H):
                A[i, j] = relu(A[i, j] + b1[j])
        np.dot(A[:n], W2.T, Z[:n])
        for i in range(n):
            for c in range(C):
                Z[i, c] += b2[c]
    else:
        np.dot(X[:n], W1.T, Z[:n])
        for i in range(n):
            for c in range(Z.shape[1]):
                Z[i, c] += b1[c]


@njit(cache=True)
def _residual(Z, labels, idx, n, kind):
    """Summed CE of Z[:n] (labels[idx]); writes dCE/dz into Z. Returns float64."""
    binary = kind == KIND_LOGISTIC_BINARY
    total = 0.0
    for i in range(n):
        y = labels[idx[i]]
        total += ce_row(Z[i], y, binary)
        residual_row(Z[i], y, binary)
    return total


@njit(cache=True)
def _colsum(M, n, out):
    out[:] = 0.0
    for i in range(n):
        for c in range(M.shape[1]):
            out[c] += M[i, c]


@njit(cache=True)
def _model_steps(
    k, X, Y, thetas, vel, seeds, n_train, coef, B, t0, t1, kind, D, H, C, perm, state, div_step
):
    """Steps [t0, t1) of model k; its scratch is allocated here, once per segment."""
    dt = X.dtype
    theta = thetas[k]
    v = vel[k]
    n = n_train[k]
    grad = np.empty_like(theta)
    idx = np.empty(B, dtype=np.int64)
    Xb = np.empty((B, D), dtype=dt)
    A = np.empty((B, max(H, 1)), dtype=dt)
    Z = np.empty((B, 1 if kind == KIND_LOGISTIC_BINARY else C), dtype=dt)
    dA = np.empty((B, max(H, 1)), dtype=dt)
    W1, b1, W2, b2 = views(theta, kind, D, H, C)
    gW1, gb1, gW2, gb2 = views(grad, kind, D, H, C)
    eps, m, decay, bsize = coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3]
    for t in range(t0, t1):
        _next_batch(perm[k], state[k], seeds[k], n, B, idx)
        for j in range(B):
            Xb[j, :] = X[idx[j], :]
        _logits_into(theta, Xb, B, kind, D, H, C, A, Z)
        ce = _residual(Z, Y[k], idx, B, kind)
        if not np.isfinite(ce):
            div_step[k] = t
            return
        if kind == KIND_MLP:
            np.dot(Z.T, A, gW2)
            _colsum(Z, B, gb2)
            np.dot(Z, W2, dA)
            for i in range(B):
                for j in range(H):
                    if not A[i, j] > 0:
                        dA[i, j] = 0.0
            np.dot(dA.T, Xb, gW1)
            _colsum(dA, B, gb1)
        else:
            np.dot(Z.T, Xb, gW1)
            _colsum(Z, B, gb1)
        for p in range(theta.shape[0]):
            g = grad[p] / bsize + decay * theta[p]
            v[p] = m * v[p] - eps * g
            theta[p] += v[p]


@njit(cache=True, parallel=True)
def train_segment(
    X, Y, thetas, vel, seeds, n_train, coef, B, t0, t1, kind, D, H, C, perm, state, div_step
):
    """Run steps [t0, t1) of every live model, models in parallel (thetas, vel, state
    updated in place). ``coef[k] = (lr, momentum, l2 / n_k, B)`` in the parameters' dtype.
    """
    for k in prange(thetas.shape[0]):
        if div_step[k] < 0:
            _model_steps(
                k,
                X,
                Y,
                thetas,
                vel,
                seeds,
                n_train,
                coef,
                B,
                t0,
                t1,
                kind,
                D,
                H,
                C,
                perm,
                state,
                div_step,
            )


@njit(cache=True)
def _evaluate_model(k, thetas, X, Y, Xte, yte, n_train, kind, D, H, C, rows, out):
    dt = X.dtype
    A = np.empty((rows, max(H, 1)), dtype=dt)
    Z = np.empty((rows, 1 if kind == KIND_LOGISTIC_BINARY else C), dtype=dt)
    theta = thetas[k]
    for part in range(2):
        Xs = Xte if part == 0 else X
        ys = yte if part == 0 else Y[k]
        total = Xte.shape[0] if part == 0 else n_train[k]
        ce = 0.0
        correct = 0
        for s in range(0, total, rows):
            n = min(rows, total - s)
            _logits_into(theta, Xs[s : s + n], n, kind, D, H, C, A, Z)
            for i in range(n):
                y = ys[s + i]
                ce += ce_row(Z[i], y, kind == KIND_LOGISTIC_BINARY)
                if kind == KIND_LOGISTIC_BINARY:
                    pred = 1 if Z[i, 0] > 0 else 0
                else:
                    pred = 0
                    for c in range(1, Z.shape[1]):
                        if Z[i, c] > Z[i, pred]:
                            pred = c
                if pred == y:
                    correct += 1
        if part == 0:
            out[k, 0] = correct / total
            out[k, 1] = ce / total
        else:
            out[k, 2] = ce / total


@njit(cache=True, parallel=True)
def evaluate(thetas, live, X, Y, Xte, yte, n_train, kind, D, H, C, rows, out):
    """out[k] = (test accuracy, test CE, train CE) (means) for each k with live[k]."""
    for k in prange(thetas.shape[0]):
        if live[k]:
            _evaluate_model(k, thetas, X, Y, Xte, yte, n_train, kind, D, H, C, rows, out)


@register("train", "numba", threads="own")
def train(job):
    """Models run in parallel (Numba threads), each with single-threaded BLAS (thread
    policy ``"own"``), a lone model too: threaded BLAS rounds differently, and a model's
    numbers must not depend on the size of its group.
    """
    return _train(*job.positional())


def _train(
    model, X, Y, Xte, yte, thetas, seeds, n_train, lr, momentum, l2, B, steps, evals, progress
):
    kind, D, H, C = model.dims
    K = thetas.shape[0]
    dt = thetas.dtype
    perm = np.empty((K, int(n_train.max())), dtype=np.int64)
    for k in range(K):
        epoch_permutation(seeds[k], int(n_train[k]), 0, perm[k])
    state = np.zeros((K, 2), dtype=np.int64)  # (epoch, position) per model
    vel = np.zeros_like(thetas)
    metrics = np.full((K, evals.shape[0], 3), np.nan)
    div_step = np.full(K, -1, dtype=np.int64)
    # Rows per evaluation chunk from the data's sizes alone, not the group's n_train.
    rows = int(max(1, min(256, max(Xte.shape[0], X.shape[0]))))
    coef = np.stack([lr, momentum, l2 / n_train, np.full(K, B)], axis=1).astype(dt)
    out = np.full((K, 3), np.nan)
    args = (X, Y, thetas, vel, seeds, n_train, coef, B)
    t = 0
    for e, t_eval in enumerate(evals.tolist()):
        train_segment(*args, t, t_eval, kind, D, H, C, perm, state, div_step)
        t = t_eval
        live = div_step < 0
        out[:] = np.nan
        evaluate(thetas, live, X, Y, Xte, yte, n_train, kind, D, H, C, rows, out)
        # Non-finite parameters: NaN metrics (the row is flagged); only a non-finite
        # mini-batch loss stops a model, so evaluations never change a run.
        out[live & ~np.isfinite(thetas).all(axis=1)] = np.nan
        metrics[live, e] = out[live]
        if progress is not None:
            progress(t)
    train_segment(*args, t, steps, kind, D, H, C, perm, state, div_step)
    if progress is not None and t != steps:
        progress(steps)
    return metrics, div_step
