"""The ``cuda`` backend: CuPy arrays, cuBLAS GEMMs through CuPy, and the fused kernels of
the extension ``sgdcore._cuda`` (``csrc/cuda/``) on the caller's current stream.

Its kernels register with ``threads="blas"``: their work runs on the device, and ``"blas"``
is the policy that sets no limits on the host's BLAS threads.
"""
