"""The ``cuda`` backend: CuPy arrays, cuBLAS GEMMs through CuPy, and the fused kernels of
the extension ``sgdcore._cuda`` (``csrc/cuda/``) on the caller's current stream.
"""
