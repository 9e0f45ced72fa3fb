"""Numba kernels: ``njit(cache=True)`` leaf functions, GEMMs through ``np.dot`` (SciPy's
BLAS), element-wise loops fused by hand.
"""
