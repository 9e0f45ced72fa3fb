"""Vectorised NumPy kernels (float32 and float64; BLAS through ``@``)."""
