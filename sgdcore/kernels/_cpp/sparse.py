"""When the C++ kernels run an MLP's first layer on the inputs' non-zeros.

MNIST-like inputs are mostly zero (MNIST: about 81% of the pixels). The C++ training
engine and curvature kernels then read only the rows of W1 under a row's non-zero pixels
(``csrc/cpu/sparse_inputs.h``) and share that work among their own OpenMP threads; BLAS,
which they still call for the small output-layer products, then stays on one thread
(``sgdcore._blas``).
"""

from __future__ import annotations

from ..._validate import nonzeros
from ..contracts import OwnWhen

#: Largest fraction of non-zero inputs at which an MLP's first layer runs on the
#: non-zeros: measured break-even about 0.3 (784-800-10, float32, AVX-512 GEMMs, B = 16
#: and 1,000); MNIST has about 0.19, Fashion-MNIST about 0.5.
SPARSE_DENSITY = 0.25


def density(X) -> float:
    """Fraction of the entries of ``X`` that are non-zero; the count comes from the pass
    that checked ``X`` for NaN and inf when there was one (:func:`sgdcore._validate.nonzeros`).
    """
    return nonzeros(X) / max(1, X.size)


def sparse_inputs(model, X) -> bool:
    """Whether the kernels take an MLP's first layer on the non-zeros of ``X``."""
    return model.kind == "mlp" and density(X) <= SPARSE_DENSITY


class ForwardState(tuple):
    """The C++ curvature kernels' forward state ``(A, P)`` of one data set, with the
    first layer's path (:func:`sparse_inputs`) decided once for that data, so that the
    products that reuse the state (an operator's, a dense Hessian's blocks) do not count
    the non-zeros of ``X`` again on every call.
    """

    sparse: bool

    def __new__(cls, A, P, sparse: bool):
        state = super().__new__(cls, (A, P))
        state.sparse = bool(sparse)
        return state


def _sparse_call(model, theta, X, *_, state=None):
    # A product given X's forward state (keyword-only in the products' contract) reuses
    # the path decided when the state was made.
    if isinstance(state, ForwardState):
        return state.sparse
    return sparse_inputs(model, X)


#: Thread policy of the kernels that choose their first layer from the inputs: their own
#: OpenMP team on sparse inputs (BLAS on one thread), threaded GEMMs on dense ones; the
#: choice reaches the kernel as ``sparse=``.
SPARSE_OWN = OwnWhen(_sparse_call, keyword="sparse")
