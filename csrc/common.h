// Shared by every op: host+device qualifiers and small helpers usable from CPU and CUDA code.
// No torch headers here, so .cu files can include it without pulling PyTorch into nvcc.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FASTNERF_HD __host__ __device__ __forceinline__
#else
#define FASTNERF_HD inline
#endif

#ifdef __CUDACC__
#include <math.h>
#else
#include <cmath>
#endif

namespace fastnerf {

FASTNERF_HD float fn_expm1(float x) { return expm1f(x); }
FASTNERF_HD double fn_expm1(double x) { return expm1(x); }
FASTNERF_HD float fn_exp(float x) { return expf(x); }
FASTNERF_HD double fn_exp(double x) { return exp(x); }

}  // namespace fastnerf
