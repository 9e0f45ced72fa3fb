"""sgdcore: fast, exact kernels and sweeps for studying how the noise of stochastic
gradient descent shapes generalization (Smith & Le, ICLR 2018).

The public API is re-exported here. Every function takes a model from
:mod:`sgdcore.models`, a flat parameter vector ``theta`` and data ``(X, y)``, and a
``backend`` (``"auto"``, ``"numpy"``, ``"numba"``, ``"cpp"``; see :mod:`sgdcore._backend`).
"""

from importlib.metadata import PackageNotFoundError, version

from . import curvature, data, evidence, models, sample, stationary, sweep, theory
from ._backend import BackendUnavailable, available_backends, backend_status
from .curvature import ggn_vp, hessian, hvp
from .grads import (
    GradientNoise,
    GradientNoiseResult,
    MemoryBudgetError,
    gradient_noise,
    memory_budget,
    per_example_grad_norms,
    per_example_grads,
    per_example_projections,
    set_memory_budget,
)
from .losses import accuracy, loss, loss_and_grad, predict_proba
from .training import train
from .tuning import tune

try:
    __version__ = version("sgdcore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BackendUnavailable",
    "__version__",
    "accuracy",
    "available_backends",
    "backend_status",
    "data",
    "loss",
    "loss_and_grad",
    "models",
    "predict_proba",
    "GradientNoise",
    "GradientNoiseResult",
    "MemoryBudgetError",
    "gradient_noise",
    "memory_budget",
    "per_example_grad_norms",
    "per_example_grads",
    "per_example_projections",
    "set_memory_budget",
    "train",
    "curvature",
    "evidence",
    "ggn_vp",
    "hessian",
    "hvp",
    "sweep",
    "theory",
    "tune",
    "sample",
    "stationary",
]
