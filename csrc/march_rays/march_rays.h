// Ray marching through an occupancy grid: the per-ray math shared by the CPU and CUDA kernels.
// Same float32 operations, in the same order, as fastnerf/reference/march_rays.py (correctly
// rounded, never fused: see add_rn & co. in ray_aabb.h), so counts agree exactly and t bitwise:
//
//   fixed steps (cone off): t0 = t_near + offset * step;  start_m = t0 + float(m) * step;
//     end_m = min(start_{m+1}, t_far)                       (m = 0, 1, ... while start_m < t_far)
//   cone stepping: dt(t) = min(max(t * max(cone_angle, t * disparity_step), step), max_step);
//     start_0 = t_near + offset * dt(t_near); end_m = min(start_m + dt(start_m), t_far);
//     start_{m+1} = start_m + dt(start_m)  (disparity_step 0: plain cone steps, t * 0 = 0)
//   mid = (start_m + end_m) * 0.5;  p = o + d * mid
//   box grid: c_a = (p_a - lo_a) * scale_a with scale_a = float(R_a) / (hi_a - lo_a)
//   contracted grid (mip-NeRF 360): u = contract(p) (contract_point), c_a = (u_a + 2) * (R_a / 4)
//   kept iff every 0 <= c_a < R_a and occupied[int(c_x), int(c_y), int(c_z)]  (a face belongs to
//   the cell above; NaN is outside).
//
// Count-then-fill: the count pass runs march_ray with an emitter that only counts, the fill pass
// with one that writes at packed_info's start; both see the same intervals.
#pragma once

#include "common.h"
#include "ray_aabb/ray_aabb.h"

namespace fastnerf {

// float(m) is exact below 2^24; the reference and the Python checks use the same bound.
constexpr int64_t kMaxIntervals = int64_t(1) << 24;

// Raw pointers to contiguous tensors; N rays, S samples, an Rx x Ry x Rz grid. The mode fields
// last, with defaults, so callers that fill the others (baked_render) march as before.
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
  bool contracted = false;  // the grid covers mip-NeRF 360's contracted cube [-2, 2]^3
  bool cone = false;        // cone stepping (cone_angle > 0 as given, even if it rounds to 0.f)
  float cone_angle = 0.f;
  float max_step = INFINITY;
  float disparity_step = 0.f;  // far steps of at least disparity_step * t^2 (cone stepping only)
};

// A ray's constants of the kept rule: the box grid's lo and scale, or the contraction's lo,
// hi - lo and R / 4.
struct GridFrame {
  float lo[3], scale[3], size[3], quarter[3], res[3];
};

FASTNERF_HD GridFrame grid_frame(const MarchArgs& a) {
  GridFrame g;
  for (int axis = 0; axis < 3; ++axis) {
    g.lo[axis] = a.aabb[axis];
    g.res[axis] = float(a.res[axis]);
    g.size[axis] = sub_rn(a.aabb[3 + axis], g.lo[axis]);
    g.scale[axis] = div_rn(g.res[axis], g.size[axis]);
    g.quarter[axis] = div_rn(g.res[axis], 4.f);
  }
  return g;
}

// mip-NeRF 360's contraction under the infinity norm, in the box's normalised coordinates:
// u_a = ((p_a - lo_a) * 2) / size_a - 1;  n = max |u_a|;  if n > 1: u_a *= (2 - 1 / n) / n.
FASTNERF_HD void contract_point(const GridFrame& g, const float* p, float* u) {
  for (int axis = 0; axis < 3; ++axis)
    u[axis] = sub_rn(div_rn(mul_rn(sub_rn(p[axis], g.lo[axis]), 2.f), g.size[axis]), 1.f);
  const float n = max_num(max_num(fabsf(u[0]), fabsf(u[1])), fabsf(u[2]));
  if (n > 1.f) {
    const float s = div_rn(sub_rn(2.f, div_rn(1.f, n)), n);
    for (int axis = 0; axis < 3; ++axis) u[axis] = mul_rn(u[axis], s);
  }
}

// Whether the point o + d * mid lies in an occupied cell (outside the grid: no).
FASTNERF_HD bool occupied_at(const MarchArgs& a, const GridFrame& g, const float* o, const float* d, float mid) {
  float p[3], c[3];
  for (int axis = 0; axis < 3; ++axis) p[axis] = add_rn(o[axis], mul_rn(d[axis], mid));
  if (a.contracted) {
    float u[3];
    contract_point(g, p, u);
    for (int axis = 0; axis < 3; ++axis) c[axis] = mul_rn(add_rn(u[axis], 2.f), g.quarter[axis]);
  } else {
    for (int axis = 0; axis < 3; ++axis) c[axis] = mul_rn(sub_rn(p[axis], g.lo[axis]), g.scale[axis]);
  }
  int64_t cell[3];
  for (int axis = 0; axis < 3; ++axis) {
    if (!(c[axis] >= 0.f && c[axis] < g.res[axis])) return false;  // NaN is outside too
    cell[axis] = int64_t(c[axis]);
  }
  return a.occupied[(cell[0] * a.res[1] + cell[1]) * a.res[2] + cell[2]];
}

// Cone stepping's step at t: min(max(t * max(cone_angle, t * disparity_step), step), max_step).
FASTNERF_HD float cone_step(const MarchArgs& a, float t) {
  return min_num(max_num(mul_rn(t, max_num(a.cone_angle, mul_rn(t, a.disparity_step))), a.step), a.max_step);
}

// Walks ray `ray`'s intervals in order, calling emit(k, start, end) for the k-th kept one;
// returns how many were kept. Non-finite t_near / t_far give no intervals.
template <typename Emit>
FASTNERF_HD int64_t march_ray(const MarchArgs& a, int64_t ray, const Emit& emit) {
  float o[3], d[3];
  for (int axis = 0; axis < 3; ++axis) {
    o[axis] = a.rays_o[3 * ray + axis];
    d[axis] = a.rays_d[3 * ray + axis];
  }
  const GridFrame g = grid_frame(a);
  const float t_near = a.t_near[ray], t_far = a.t_far[ray];
  if (!is_finite(t_near) || !is_finite(t_far)) return 0;
  int64_t kept = 0;
  if (a.cone) {  // accumulated steps
    float start = a.offsets ? add_rn(t_near, mul_rn(a.offsets[ray], cone_step(a, t_near))) : t_near;
    for (int64_t m = 0; m < kMaxIntervals && start < t_far; ++m) {
      const float next = add_rn(start, cone_step(a, start));
      const float end = min_num(next, t_far);
      if (occupied_at(a, g, o, d, mul_rn(add_rn(start, end), 0.5f))) emit(kept++, start, end);
      start = next;
    }
    return kept;
  }
  const float t0 = a.offsets ? add_rn(t_near, mul_rn(a.offsets[ray], a.step)) : t_near;
  float start = add_rn(t0, mul_rn(0.f, a.step));
  for (int64_t m = 0; m < kMaxIntervals && start < t_far; ++m) {
    const float next = add_rn(t0, mul_rn(float(m + 1), a.step));
    const float end = min_num(next, t_far);
    if (occupied_at(a, g, o, d, mul_rn(add_rn(start, end), 0.5f))) emit(kept++, start, end);
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
