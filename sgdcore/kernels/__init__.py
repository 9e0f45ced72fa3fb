"""Kernels, one sub-package per backend (``_numpy``, ``_numba``, ``_cpp``), one module
per operation. Each module registers its kernels with ``sgdcore._backend.register``,
which checks each against its quantity's contract in :mod:`sgdcore.kernels.contracts`
(parameters, model kinds, thread policy, flags); importing a backend's package is what
``_backend`` does when that backend is first used.
"""
