// The one macro that makes a function callable from host and device code: under nvcc
// (__CUDACC__) it marks the function __host__ __device__, elsewhere it leaves a plain
// inline function. The formulas in this folder use it so the CPU build compiles and tests
// the same lines the CUDA kernels run.
#pragma once

#if defined(__CUDACC__)
#define SGD_HD __host__ __device__ inline
#else
#define SGD_HD inline
#endif
