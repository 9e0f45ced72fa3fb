"""What a kernel of each quantity must be: its name, its parameters, what it computes, and
the flags a kernel may carry.

Every backend's kernel for a quantity has the same parameters, by name and in order; the
Python layer (``losses``, ``grads``, ``curvature``, ``training``) has already checked
dtypes, shapes and contiguity and allocated every output, so a kernel only computes.
:func:`sgdcore._backend.register` checks a kernel against its contract when its module is
imported and refuses one that does not match.

Threads (``threads=`` of :func:`~sgdcore._backend.register`, required): how the kernel
uses the cores, so that :func:`~sgdcore._backend.get_kernel` hands it back already inside
the right BLAS limits and no call site decides it:

* ``"own"``: the kernel runs its own thread team over the whole call (OpenMP, Numba's
  ``prange``), or its BLAS calls are too small for threads to pay: BLAS runs on one
  thread during the call, so BLAS's workers never spin on the cores the team needs.
* ``"blas"``: the kernel's parallel work is its BLAS calls: it runs with the BLAS
  threads as the caller set them.
* :class:`OwnWhen`: ``"own"`` on the calls where a rule of the arguments holds, else
  ``"blas"`` (e.g. a first layer taken on the inputs' non-zeros by the kernel's own
  team, dense inputs by threaded GEMMs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

__all__ = ["CONTRACTS", "FLAGS", "THREADS", "Contract", "OwnWhen", "TrainJob"]

MODEL_KINDS = ("logistic_binary", "logistic_softmax", "mlp")
LOGISTIC_KINDS = ("logistic_binary", "logistic_softmax")

#: The thread policies a kernel may declare by name.
THREADS = {
    "own": "runs its own thread team over the whole call; BLAS on one thread",
    "blas": "its parallel work is BLAS's; BLAS threads as the caller set them",
}

#: The capability flags a kernel may carry.
FLAGS = {
    "checks_finite": (
        "returns False when it wrote NaN or inf (every input entry reaches an output), so "
        "the caller may skip its own pass over X"
    ),
}


@dataclass(frozen=True)
class OwnWhen:
    """Thread policy decided per call: ``"own"`` when ``rule(*args, **kwargs)`` holds, else
    ``"blas"``.

    Attributes
    ----------
    rule : callable
        Called with the kernel's arguments (positional and keyword); returns a bool.
    keyword : str or None
        When set, the rule's answer is also passed to the kernel under this keyword
        (which the kernel then takes as a keyword-only parameter), so the kernel does not
        decide a second time.
    """

    rule: Callable[..., bool]
    keyword: str | None = None


@dataclass(frozen=True)
class Contract:
    """The contract of one quantity.

    Attributes
    ----------
    name : str
        The quantity, as registered.
    params : tuple of str
        The kernel's positional parameters, in order.
    computes : str
        What it computes and writes (the Python layer adds L2 terms and reductions).
    kinds : tuple of str
        The model kinds the quantity is defined for.
    keywords : tuple of str
        The kernel's optional keyword-only parameters (passed by name, never found by
        position).
    """

    name: str
    params: tuple[str, ...]
    computes: str
    kinds: tuple[str, ...] = MODEL_KINDS
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainJob:
    """One group of K models trained together with SGD: what ``train`` kernels take.

    Built once by :func:`sgdcore.train` from checked inputs; every backend's ``train``
    kernel takes it whole. Arrays are C-contiguous.

    Attributes
    ----------
    model : LogisticRegression or MLP
    X : ndarray (N, D)
        Training inputs, of the parameters' dtype.
    Y : ndarray of int64 (K, N)
        Each model's training labels.
    X_test : ndarray (M, D)
    y_test : ndarray of int64 (M,)
    thetas : ndarray (K, P)
        Initial parameters, trained in place.
    seeds : ndarray of uint64 (K,)
        Each model's Philox key (:mod:`sgdcore.philox`).
    n_train : ndarray of int64 (K,)
        Model k trains on the first ``n_train[k]`` rows.
    lr, momentum, l2 : ndarray of float64 (K,)
    batch_size : int
        B, shared by the group.
    steps : int
    evals : ndarray of int64 (E,)
        Sorted steps at which the models are evaluated.
    progress : callable or None
        Called as ``progress(steps_done)``.
    """

    model: object
    X: object
    Y: object
    X_test: object
    y_test: object
    thetas: object
    seeds: object
    n_train: object
    lr: object
    momentum: object
    l2: object
    batch_size: int
    steps: int
    evals: object
    progress: Callable[[int], object] | None = None

    def positional(self) -> tuple:
        """The fields in the order above (no copies), for engines whose inner functions
        take them one by one.
        """
        return tuple(getattr(self, f.name) for f in fields(self))


_PRODUCTS = (
    "writes ``out[j] = sum_i G_i Vt[j]`` for the k rows of ``Vt [k, P]``, with ``G_i`` "
    "the {what} of ``CE_i``; keyword ``state`` is None or ``(A, Pm)`` from "
    "``curvature_state``"
)

#: Every quantity a backend may provide.
CONTRACTS = {
    c.name: c
    for c in (
        Contract(
            "loss_and_grad",
            ("model", "theta", "X", "y", "grad"),
            "returns the summed cross-entropy ``sum_i CE_i`` as a float; when ``grad`` "
            "[P] is not None writes its gradient there",
        ),
        Contract(
            "predict_proba",
            ("model", "theta", "X"),
            "returns the class probabilities [N, n_classes]",
        ),
        Contract(
            "per_example_grads",
            ("model", "theta", "X", "y", "out"),
            "writes ``g_i = dCE_i/dtheta`` into row i of ``out [N, P]``",
        ),
        Contract(
            "per_example_grad_norms",
            ("model", "theta", "X", "y", "out"),
            "writes ``|g_i|^2`` into ``out [N]``, without forming the g_i",
        ),
        Contract(
            "gradient_noise",
            ("model", "theta", "X", "y", "grad", "sqnorms"),
            "writes ``sum_i g_i`` into ``grad [P]`` and ``|g_i|^2`` into ``sqnorms [N]``; "
            "returns ``|sum_i g_i|^2`` as a float (float64 accumulation)",
        ),
        Contract(
            "cov_matvec",
            ("model", "theta", "X", "y", "Vt", "shift", "out", "ssum"),
            "with ``s_ij = g_i . Vt[j] - shift[j]``, writes ``out[j] = sum_i s_ij g_i`` "
            "and ``ssum[j] = sum_i s_ij`` (float64)",
        ),
        Contract(
            "grad_gram",
            ("model", "theta", "X", "y", "out"),
            "writes the Gram matrix ``out[i, l] = g_i . g_l`` [N, N]",
        ),
        Contract(
            "hvp",
            ("model", "theta", "X", "y", "Vt", "out"),
            _PRODUCTS.format(what="Hessian"),
            keywords=("state",),
        ),
        Contract(
            "ggn_vp",
            ("model", "theta", "X", "y", "Vt", "out"),
            _PRODUCTS.format(what="Gauss-Newton part ``J_i^T H_out,i J_i``"),
            keywords=("state",),
        ),
        Contract(
            "curvature_state",
            ("model", "theta", "X"),
            "returns ``(A, Pm)``: the MLP's hidden activations [N, H] (None for logistic "
            "models) and the output probabilities [N, K] (K = 1, the sigmoid, for the "
            "binary model)",
        ),
        Contract(
            "hessian",
            ("model", "theta", "X", "out"),
            "writes the cross-entropy Hessian ``sum_i J_i^T H_out,i J_i`` into ``out [P, P]``",
            kinds=LOGISTIC_KINDS,
        ),
        Contract(
            "train",
            ("job",),
            "trains ``job.thetas`` in place (a :class:`TrainJob`); returns ``(metrics "
            "[K, E, 3] float64: test accuracy, test and training cross-entropy (means) at "
            "each evaluation, div_step [K] int64: the first step with a non-finite "
            "mini-batch loss, -1 if none)``",
        ),
    )
}
