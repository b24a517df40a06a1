// Ray / axis-aligned box intersection (slab method): the per-ray math shared by CPU and CUDA.
// Same float32 operations as fastnerf/reference/ray_aabb.py, so every backend agrees bitwise.
// Also holds the correctly rounded float32 helpers that march_rays uses for the same reason.
#pragma once

#include "common.h"

namespace fastnerf {

// One float32 operation each, rounded to nearest even, never fused into an FMA nor replaced by
// an approximation: nvcc contracts a * b + c and --use_fast_math approximates division, so device
// code names the IEEE intrinsics. Host code is plain arithmetic (x86-64 builds without -mfma do
// not contract). Under --use_fast_math CUDA flushes subnormals (|x| < 1.2e-38) to zero: inputs
// that small are the one place CUDA may differ from the other backends.
FASTNERF_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FASTNERF_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FASTNERF_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FASTNERF_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
FASTNERF_HD bool is_finite(float x) {
#ifdef __CUDA_ARCH__
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

// fminf / fmaxf (a NaN argument gives the other one). Without -ffinite-math-only GCC makes the
// libm calls out of line (measured: two fifths of ray_aabb's CPU time); these inline them.
FASTNERF_HD float min_num(float a, float b) {
#ifdef __CUDA_ARCH__
  return fminf(a, b);
#else
  return (a < b || b != b) ? a : b;
#endif
}
FASTNERF_HD float max_num(float a, float b) {
#ifdef __CUDA_ARCH__
  return fmaxf(a, b);
#else
  return (a > b || b != b) ? a : b;
#endif
}

// Raw pointers to contiguous float32 tensors; N rays.
struct RayAabbArgs {
  const float* rays_o;  // [N, 3]
  const float* rays_d;  // [N, 3]
  const float* aabb;    // [6] (xmin, ymin, zmin, xmax, ymax, zmax)
  int64_t n_rays;
  float* t_near;  // [N]
  float* t_far;   // [N]
  bool* hit;      // [N]
};

// Per axis: d != 0 gives the slab's entry/exit (lo - o) / d, (hi - o) / d; d == 0 never divides:
// inside the slab it constrains nothing, outside it is a miss. t_near = max(0, entries),
// t_far = min(exits); hit iff all inputs finite, t_far finite and t_far > t_near. Missed: 0, 0.
FASTNERF_HD void ray_aabb_ray(const RayAabbArgs& a, int64_t ray) {
  float t_enter = 0.f, t_exit = INFINITY;
  bool finite = true;
  for (int axis = 0; axis < 3; ++axis) {
    const float o = a.rays_o[3 * ray + axis], d = a.rays_d[3 * ray + axis];
    const float lo = a.aabb[axis], hi = a.aabb[3 + axis];
    finite = finite && is_finite(o) && is_finite(d);
    if (d == 0.f) {
      if (!(lo <= o && o <= hi)) t_exit = -INFINITY;
      continue;
    }
    const float t_lo = div_rn(sub_rn(lo, o), d), t_hi = div_rn(sub_rn(hi, o), d);
    t_enter = max_num(t_enter, min_num(t_lo, t_hi));
    t_exit = min_num(t_exit, max_num(t_lo, t_hi));
  }
  const bool hit = finite && is_finite(t_exit) && t_exit > t_enter;
  a.t_near[ray] = hit ? t_enter : 0.f;
  a.t_far[ray] = hit ? t_exit : 0.f;
  a.hit[ray] = hit;
}

// CUDA launcher (ray_aabb_cuda.cu); `stream` is a cudaStream_t. Returns 0 or a cudaError_t.
int ray_aabb_cuda(const RayAabbArgs& args, void* stream);

}  // namespace fastnerf
