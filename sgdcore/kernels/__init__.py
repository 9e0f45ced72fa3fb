"""Kernels, one sub-package per backend (``_numpy``, ``_numba``, ``_cpp``), one module
per operation. Each module registers its kernels with ``sgdcore._backend.register``;
importing a backend's package is what ``_backend`` does when that backend is first used.

Kernel contract for ``loss_and_grad``: ``fn(model, theta, X, y, grad) -> float``, the
summed cross-entropy of the checked inputs; when ``grad`` (shape (P,)) is not None the
kernel writes the gradient of the summed cross-entropy into it. ``predict_proba``:
``fn(model, theta, X) -> ndarray (N, n_classes)``.
"""
