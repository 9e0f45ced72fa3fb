"""Models, data and tolerances shared by the GPU backend's tests (on a device, and on the
host over stand-ins)."""

from __future__ import annotations

import numpy as np
import pytest

from sgdcore.models import MLP, LogisticRegression

MODELS = [LogisticRegression(7), LogisticRegression(6, n_classes=4), MLP(8, 9, 3)]
#: float64 to 1e-10; float32 to 1e-5 relative (TF32 off).
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-5, atol=1e-5)}
params = pytest.mark.parametrize("net", MODELS, ids=lambda m: m.kind)
dtypes = pytest.mark.parametrize("fp", [np.float64, np.float32])


def data(model, n=53, dtype=np.float64, seed=0):
    """Seeded ``(theta, X, y)`` away from the initialisation's symmetries."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, model.n_features)).astype(dtype)
    y = rng.integers(0, model.n_classes, n)
    theta = (model.init(seed) + 0.2 * rng.standard_normal(model.n_params)).astype(dtype)
    return theta, X, y
