"""Curvature of the paper's cost: exact Hessian-vector products, Gauss-Newton products,
the dense Hessian, matrix-free operators and what is estimated from them.

* :func:`hvp`, :func:`ggn_vp`, :func:`hessian` -- products and the dense matrix
  (kernels on every backend; the MLP's HVP is Pearlmutter's R-operator, exact).
* :class:`HessianOperator`, :class:`GGNOperator` -- ``scipy.sparse.linalg``
  ``LinearOperator`` objects over a data set, evaluated in chunks of rows.
* :func:`top_eigenvalues` -- Lanczos with full reorthogonalisation and thick restarts.
* :func:`trace` (Hutchinson, Hutch++), :func:`logdet` and :func:`slq` (stochastic
  Lanczos quadrature), :func:`spectral_density` -- seeded, with standard errors.

Conventions: the cost is ``C = sum_i CE_i + (l2/2)|theta|^2``; ``reduction="mean"``
divides every matrix (L2 term included) by ``N``.
"""

from ._lanczos import ConvergenceError, EigenResult, top_eigenvalues
from ._operators import GGNOperator, HessianOperator
from ._products import ggn_vp, hessian, hvp
from ._stochastic import Estimate, SpectralDensity, logdet, slq, spectral_density, trace

__all__ = [
    "ConvergenceError",
    "EigenResult",
    "Estimate",
    "GGNOperator",
    "HessianOperator",
    "SpectralDensity",
    "ggn_vp",
    "hessian",
    "hvp",
    "logdet",
    "slq",
    "spectral_density",
    "top_eigenvalues",
    "trace",
]
