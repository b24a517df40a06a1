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

#ifndef __CUDA_ARCH__
inline int32_t float_bits(float x) {
  int32_t bits;
  __builtin_memcpy(&bits, &x, sizeof bits);
  return bits;
}
inline float bits_float(int32_t bits) {
  float x;
  __builtin_memcpy(&x, &bits, sizeof x);
  return x;
}
// condition ? a : b on the bits, so that a and b are both computed and the select stays a blend.
inline float select_float(bool condition, float a, float b) {
  const int32_t mask = -int32_t(condition);
  return bits_float((float_bits(a) & mask) | (float_bits(b) & ~mask));
}

// e^x for float on the host without libm and without branches, so loops of it vectorise:
// x = n ln2 + r, |r| <= ln2/2 (Cody-Waite, two parts), cephes' expf polynomial for e^r, times 2^n
// built in the exponent bits. Relative error ~1 ulp. |x| > 87 is clamped to +-87 (e^-87 ~ 1.6e-38
// stands for 0); NaN stays NaN. Conditions are integer compares of the bits: float compares
// may trap, and GCC does not speculate float arithmetic that may trap into vector blends.
inline __attribute__((always_inline)) float fn_exp_poly(float x) {
  const int32_t bits = float_bits(x), abs_bits = bits & 0x7fffffff;
  const bool clamp = (abs_bits > 0x42ae0000) & (abs_bits <= 0x7f800000);  // 87 < |x| <= inf
  x = select_float(clamp, bits_float((bits & int32_t(0x80000000)) | 0x42ae0000), x);
  const float kRound = 12582912.f;  // 1.5 * 2^23: adding then subtracting it rounds to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  const float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
                   1.6666665459e-1f) * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.f;
  return e_r * bits_float((int32_t(n) + 127) << 23);  // times 2^n, n in [-126, 126]
}
#endif

// exp(x) - 1 for float: e^x - 1 plus a Taylor branch near 0, where e^x - 1 would cancel.
// Relative error under ~2e-6 everywhere, and 2-3x cheaper than expm1f on CPUs; on the host it is
// branch-free and libm-free (both sides computed, one selected), so loops of it vectorise.
// Always inlined on the host: GCC otherwise calls it from the per-sample loops (baked_render).
#if defined(__CUDACC__) || defined(__HIPCC__)
FASTNERF_HD float fn_expm1(float x) {
#else
inline __attribute__((always_inline)) float fn_expm1(float x) {
#endif
  const float taylor = x * (1.f + x * (0.5f + x * (1.f / 6.f + x * (1.f / 24.f))));  // rel. error x^4/120
#ifdef __CUDA_ARCH__
  if (fabsf(x) < 1e-2f) return taylor;
  return expf(x) - 1.f;
#else
  const float e_minus_1 = fn_exp_poly(x) - 1.f;
  return select_float((float_bits(x) & 0x7fffffff) < 0x3d4ccccd, taylor, e_minus_1);  // |x| < 0.05
#endif
}
FASTNERF_HD double fn_expm1(double x) { return expm1(x); }
FASTNERF_HD float fn_exp(float x) { return expf(x); }
FASTNERF_HD double fn_exp(double x) { return exp(x); }

}  // namespace fastnerf
