// Ray marching through an occupancy grid: the per-ray math shared by the CPU and CUDA kernels.
// Same float32 operations, in the same order, as fastnerf/reference/march_rays.py (correctly
// rounded, never fused: see add_rn & co. in ray_aabb.h), so counts agree exactly and t bitwise:
//
//   t0 = t_near + offset * step;  start_m = t0 + float(m) * step  (m = 0, 1, ... while start_m < t_far)
//   end_m = min(start_{m+1}, t_far);  mid = (start_m + end_m) * 0.5;  p = o + d * mid
//   c_a = (p_a - lo_a) * scale_a with scale_a = float(R_a) / (hi_a - lo_a); kept iff every
//   0 <= c_a < R_a and occupied[int(c_x), int(c_y), int(c_z)]  (a face belongs to the cell above).
//
// Count-then-fill: the count pass runs march_ray with an emitter that only counts, the fill pass
// with one that writes at packed_info's start; both see the same intervals.
#pragma once

#include "common.h"
#include "ray_aabb/ray_aabb.h"

namespace fastnerf {

// float(m) is exact below 2^24; the reference and the Python checks use the same bound.
constexpr int64_t kMaxIntervals = int64_t(1) << 24;

// Raw pointers to contiguous tensors; N rays, S samples, an Rx x Ry x Rz grid.
struct MarchArgs {
  const float* rays_o;   // [N, 3]
  const float* rays_d;   // [N, 3]
  const float* t_near;   // [N]
  const float* t_far;    // [N]
  const float* offsets;  // [N] or nullptr (no jitter)
  const float* aabb;     // [6]
  const bool* occupied;  // [Rx, Ry, Rz], x-major
  int64_t res[3];
  int64_t n_rays;
  float step;
  int64_t* counts;             // [N] count pass output
  const int64_t* packed_info;  // [N, 2] fill pass input
  int64_t n_samples;
  float* t_starts;  // [S] fill pass output
  float* t_ends;    // [S]
};

// Whether the point o + d * mid lies in an occupied cell (outside the grid: no).
FASTNERF_HD bool occupied_at(const MarchArgs& a, const float* o, const float* d, const float* lo,
                             const float* scale, float mid) {
  int64_t cell[3];
  for (int axis = 0; axis < 3; ++axis) {
    const float p = add_rn(o[axis], mul_rn(d[axis], mid));
    const float c = mul_rn(sub_rn(p, lo[axis]), scale[axis]);
    if (!(c >= 0.f && c < float(a.res[axis]))) return false;  // NaN is outside too
    cell[axis] = int64_t(c);
  }
  return a.occupied[(cell[0] * a.res[1] + cell[1]) * a.res[2] + cell[2]];
}

// Walks ray `ray`'s intervals in order, calling emit(k, start, end) for the k-th kept one;
// returns how many were kept. Non-finite t_near / t_far give no intervals.
template <typename Emit>
FASTNERF_HD int64_t march_ray(const MarchArgs& a, int64_t ray, const Emit& emit) {
  float o[3], d[3], lo[3], scale[3];
  for (int axis = 0; axis < 3; ++axis) {
    o[axis] = a.rays_o[3 * ray + axis];
    d[axis] = a.rays_d[3 * ray + axis];
    lo[axis] = a.aabb[axis];
    scale[axis] = div_rn(float(a.res[axis]), sub_rn(a.aabb[3 + axis], lo[axis]));
  }
  const float t_near = a.t_near[ray], t_far = a.t_far[ray];
  if (!is_finite(t_near) || !is_finite(t_far)) return 0;
  const float t0 = a.offsets ? add_rn(t_near, mul_rn(a.offsets[ray], a.step)) : t_near;
  int64_t kept = 0;
  float start = add_rn(t0, mul_rn(0.f, a.step));
  for (int64_t m = 0; m < kMaxIntervals && start < t_far; ++m) {
    const float next = add_rn(t0, mul_rn(float(m + 1), a.step));
    const float end = fminf(next, t_far);
    if (occupied_at(a, o, d, lo, scale, mul_rn(add_rn(start, end), 0.5f))) {
      emit(kept, start, end);
      ++kept;
    }
    start = next;
  }
  return kept;
}

struct CountOnly {
  FASTNERF_HD void operator()(int64_t, float, float) const {}
};

FASTNERF_HD void march_count_ray(const MarchArgs& a, int64_t ray) { a.counts[ray] = march_ray(a, ray, CountOnly()); }

// Writes ray `ray`'s samples at packed_info[ray].start; never past its count nor past S.
struct FillAt {
  const MarchArgs* a;
  int64_t start, count;
  FASTNERF_HD void operator()(int64_t k, float t_start, float t_end) const {
    if (k < count && start + k < a->n_samples) {
      a->t_starts[start + k] = t_start;
      a->t_ends[start + k] = t_end;
    }
  }
};

FASTNERF_HD void march_fill_ray(const MarchArgs& a, int64_t ray) {
  const int64_t start = a.packed_info[2 * ray], count = a.packed_info[2 * ray + 1];
  if (start < 0 || count <= 0) return;
  march_ray(a, ray, FillAt{&a, start, count});
}

// CUDA launchers (march_rays_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
int march_rays_count_cuda(const MarchArgs& args, void* stream);
int march_rays_fill_cuda(const MarchArgs& args, void* stream);

}  // namespace fastnerf
