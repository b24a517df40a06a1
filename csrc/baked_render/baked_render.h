// Baked rendering: march, trilinear lookup in a sparse vertex grid and compositing, fused per ray.
// The per-ray math shared by the CPU and CUDA kernels (spec: fastnerf/reference/baked_render.py).
//
// Samples are march_rays' (march_ray in march_rays/march_rays.h: the same float32 operations, so
// the same samples bitwise). At a kept sample's midpoint p the vertex grid is interpolated:
//   u_a = clamp((p_a - lo_a) * vscale_a, 0, G_a - 1),  i_a = min(int(u_a), G_a - 2),  f_a = u_a - i_a
//   b_k = (w_x * w_y) * w_z (w = f at the upper vertex, 1 - f at the lower),  v = sum_k b_k values[row_k]
// (a corner whose row is outside [0, V) adds nothing); sigma = max(v_0, 0), feature = v[1:], and
//   alpha = 1 - exp(-sigma dt),  w = T alpha,  T <- T (1 - alpha)
// composited while T >= early_stop_eps (T = 0 stops too: nothing after it has weight).
//
// Backward, with g_i = dL/dw_i = <grad_features, feature_i> + grad_opacity + grad_depth * mid_i:
//   dL/dsigma_k = dt_k (T_{k+1} g_k - sum_{i>k} w_i g_i),   dL/dfeature_i = w_i grad_features
// and sum_i w_i g_i = <grad_features, features> + grad_opacity * opacity + grad_depth * depth from
// the forward's outputs, so the suffix sum is that total minus a running prefix (as in
// composite_backward_ray). dL/dv_0 = dL/dsigma where v_0 >= 0 (torch's clamp passes the
// gradient at 0); each corner row k gets b_k dL/dv.
//
// Neither pass makes a per-sample buffer: the weights b_k fold into the row reads, so a sample
// costs its 8 row reads (and, backward, 8 row scatters) whatever C is.
#pragma once

#include <type_traits>

#include "common.h"
#include "march_rays/march_rays.h"

namespace fastnerf {

// The per-sample helpers are small and hot: on the host, inline them whatever GCC's size
// heuristics say (they decline, and each call then costs a spill of the ray's state).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define BAKED_HD FASTNERF_HD
#else
#define BAKED_HD inline __attribute__((always_inline))
#endif

// ---- the occupancy grid in bricks, with empty-space levels ----------------------------------------

// The march reads `occupied` [Rx, Ry, Rz] (one byte a cell, x-major) through a copy made per call
// by a prepare pass: bricks of 4^3 cells, one 64-bit word each (bit 16 (x&3) + 4 (y&3) + (z&3)),
// so that the cells a ray crosses share cache lines; and per brick an empty-space level: 0 where
// the brick has an occupied cell, else how many of the aligned blocks of 4, 16 and 64 cells
// around it are empty (nested, so that is the largest empty one).
constexpr int kBrickShift = 2;  // bricks of 2^2 = 4 cells a side
constexpr int kLevels = 3;      // blocks of 4, 16 and 64 cells a side

struct EmptySpace {
  uint64_t* bricks;              // [B0x, B0y, B0z], B0_a = ceil(R_a / 4)
  uint8_t* levels;               // [B0x, B0y, B0z]
  uint8_t* any[kLevels - 1];     // any[l - 1] [Blx, Bly, Blz]: whether block l (4^(l+1) cells) has an occupied cell
  int32_t res[kLevels][3];       // res[l] = ceil(R / 4^(l+1))
  bool ready;                    // built by an earlier call on the same `occupied`: skip the prepare pass
};

FASTNERF_HD int64_t flat_index(const int32_t* res, int64_t x, int64_t y, int64_t z) {
  return (x * res[1] + y) * res[2] + z;
}

// Prepare pass, step 1 (per brick): bricks[brick] from `occupied`.
FASTNERF_HD void build_brick(const MarchArgs& a, const EmptySpace& e, int64_t brick) {
  const int32_t* res = e.res[0];
  const int64_t bx = brick / (int64_t(res[1]) * res[2]), by = brick / res[2] % res[1], bz = brick % res[2];
  uint64_t bits = 0;
  for (int i = 0; i < 64; ++i) {
    const int64_t x = (bx << kBrickShift) + (i >> 4), y = (by << kBrickShift) + ((i >> 2) & 3),
                  z = (bz << kBrickShift) + (i & 3);
    if (x < a.res[0] && y < a.res[1] && z < a.res[2] && a.occupied[(x * a.res[1] + y) * a.res[2] + z]) {
      bits |= uint64_t(1) << i;
    }
  }
  e.bricks[brick] = bits;
}

// Step 2, for l = 1 .. kLevels - 1 in turn (per block of level l): any[l - 1][block].
FASTNERF_HD void build_any(const EmptySpace& e, int l, int64_t block) {
  const int32_t *res = e.res[l], *fine = e.res[l - 1];
  const int64_t bx = block / (int64_t(res[1]) * res[2]), by = block / res[2] % res[1], bz = block % res[2];
  uint8_t any = 0;
  for (int i = 0; i < 64; ++i) {
    const int64_t x = (bx << 2) + (i >> 4), y = (by << 2) + ((i >> 2) & 3), z = (bz << 2) + (i & 3);
    if (x < fine[0] && y < fine[1] && z < fine[2]) {
      const int64_t child = flat_index(fine, x, y, z);
      any |= l == 1 ? uint8_t(e.bricks[child] != 0) : e.any[l - 2][child];
    }
  }
  e.any[l - 1][block] = any;
}

// Step 3 (per brick): levels[brick].
FASTNERF_HD void build_level(const EmptySpace& e, int64_t brick) {
  const int32_t* res = e.res[0];
  const int64_t bx = brick / (int64_t(res[1]) * res[2]), by = brick / res[2] % res[1], bz = brick % res[2];
  int level = 0;
  if (e.bricks[brick] == 0) {
    level = 1;
    for (int l = 1; l < kLevels; ++l) {
      const int shift = 2 * l;
      level += !e.any[l - 1][flat_index(e.res[l], bx >> shift, by >> shift, bz >> shift)];
    }
  }
  e.levels[brick] = uint8_t(level);
}

// Raw pointers to contiguous tensors; N rays, a Gx x Gy x Gz vertex grid, V stored rows of C.
template <typename scalar_t>
struct BakedRenderArgs {
  MarchArgs march;         // rays_o, rays_d, t_near, t_far, offsets, aabb, occupied [Rx,Ry,Rz], step
  EmptySpace space;        // `occupied` in bricks, made by the prepare pass
  const int32_t* index;    // [Gx, Gy, Gz], x-major: row of `values` per vertex, -1 where none
  int32_t vertices[3];     // Gx, Gy, Gz (each >= 2)
  const scalar_t* values;  // [V, C]: density, then F = C - 1 features
  int64_t n_values;        // V
  int64_t channels;        // C >= 2
  scalar_t early_stop_eps;
  scalar_t* features;  // [N, F]  forward output; read by the backward
  scalar_t* opacity;   // [N]
  scalar_t* depth;     // [N]
};

template <typename scalar_t>
struct BakedRenderBackwardArgs {
  BakedRenderArgs<scalar_t> fwd;  // inputs and (read-only here) the forward's outputs
  const scalar_t* grad_features;  // [N, F]
  const scalar_t* grad_opacity;   // [N]
  const scalar_t* grad_depth;     // [N]
  scalar_t* grad_values;          // [V, C], accumulated into (zeroed by the caller)
};

// ---- the march: march_ray's samples, skipping empty space, stoppable ----------------------------

// One ray's march state: march_ray's per-ray constants, computed with the same operations, plus
// what the skipping needs.
struct MarchRay {
  float o[3], d[3], lo[3], scale[3];
  float rate[3];  // d * scale: cells per unit of t, for guesses only
  float res[3];   // float(R_a)
  float t0, t_far;
  bool finite;    // t_near and t_far are
  bool can_skip;  // every scale is finite and > 0, so cells move monotonically with t
};

BAKED_HD MarchRay march_setup(const MarchArgs& a, int64_t ray) {
  MarchRay r;
  r.can_skip = true;
  for (int axis = 0; axis < 3; ++axis) {
    r.o[axis] = a.rays_o[3 * ray + axis];
    r.d[axis] = a.rays_d[3 * ray + axis];
    r.lo[axis] = a.aabb[axis];
    r.res[axis] = float(a.res[axis]);
    r.scale[axis] = div_rn(r.res[axis], sub_rn(a.aabb[3 + axis], r.lo[axis]));
    r.rate[axis] = r.d[axis] * r.scale[axis];
    r.can_skip = r.can_skip && r.scale[axis] > 0.f && is_finite(r.scale[axis]);
  }
  const float t_near = a.t_near[ray];
  r.t_far = a.t_far[ray];
  r.finite = is_finite(t_near) && is_finite(r.t_far);
  r.t0 = a.offsets ? add_rn(t_near, mul_rn(a.offsets[ray], a.step)) : t_near;
  return r;
}

// Candidate interval m of the ray: march_ray's start, end and midpoint, the point p = o + d * mid
// and its grid coordinates c (occupied_at's operations: the cell is int(c) where 0 <= c < R).
struct Candidate {
  float start, end, mid, p[3], c[3];
};

BAKED_HD float interval_start(const MarchArgs& a, const MarchRay& r, int64_t m) {
  return add_rn(r.t0, mul_rn(float(m), a.step));
}

BAKED_HD void candidate_at(const MarchArgs& a, const MarchRay& r, int64_t m, float start, Candidate& k) {
  k.start = start;
  const float next = interval_start(a, r, m + 1);
  k.end = next < r.t_far ? next : r.t_far;  // fminf(next, t_far) as march_ray: both are finite
  k.mid = mul_rn(add_rn(k.start, k.end), 0.5f);
  for (int axis = 0; axis < 3; ++axis) {
    k.p[axis] = add_rn(r.o[axis], mul_rn(r.d[axis], k.mid));
    k.c[axis] = mul_rn(sub_rn(k.p[axis], r.lo[axis]), r.scale[axis]);
  }
}

BAKED_HD bool inside_grid(const MarchRay& r, const float* c) {
  return c[0] >= 0.f && c[0] < r.res[0] && c[1] >= 0.f && c[1] < r.res[1] && c[2] >= 0.f && c[2] < r.res[2];
}

// Why skipping is exact: start_m, end_m and mid_m never decrease with m, and every operation from
// mid to c_a is a correctly rounded, monotone function of it (increasing or decreasing with the
// sign of d_a, as scale_a > 0). So for m1 < m < m2, c_a(m) lies between c_a(m1) and c_a(m2) on
// every axis: if candidates m1 and m2 fall in the same empty block, or on the same outer side of
// the grid on one axis, every candidate between them does too and is rejected without a look.
// The guesses of how far to jump are plain float arithmetic; each one is checked by evaluating
// candidate m2 exactly, and halved until the check holds.

// How many candidates after m may be rejected unseen, knowing candidate m (`k`) is rejected;
// -1: every later candidate is outside the grid. `block` < 0: k lies outside the grid.
template <typename SameRegion>
BAKED_HD int64_t confirmed_skip(const MarchArgs& a, const MarchRay& r, int64_t m, float distance,
                                   const SameRegion& same_region) {
  // Candidates m + j, j >= 1, have midpoints near mid_m + j step: those before `distance` are
  // guessed to stay in the region.
  float guess = distance / a.step - 0.01f;
  const float left = (r.t_far - r.t0) / a.step - float(m);  // about how many candidates remain
  guess = guess < left ? guess : left;
  const float most = float(kMaxIntervals - 2 - m);
  guess = guess < most ? guess : most;
  if (!(guess >= 2.f)) return 0;  // (NaN too) one or no candidate: not worth a check
  for (int64_t j = int64_t(guess); j >= 2; j >>= 1) {
    const float start = interval_start(a, r, m + j);
    if (!(start < r.t_far)) continue;
    Candidate k;
    candidate_at(a, r, m + j, start, k);
    if (same_region(k.c)) return j;
  }
  return 0;
}

template <typename Visit>
BAKED_HD void march_ray_until(const MarchArgs& a, const EmptySpace& e, const MarchRay& r, Visit& visit) {
  if (!r.finite) return;
  const bool skipping = r.can_skip;
  int64_t m = 0;
  float start = interval_start(a, r, 0);
  while (m < kMaxIntervals && start < r.t_far) {
    Candidate k;
    candidate_at(a, r, m, start, k);
    int64_t skip = 0;
    if (inside_grid(r, k.c)) {
      const int32_t cell[3] = {int32_t(k.c[0]), int32_t(k.c[1]), int32_t(k.c[2])};
      const int64_t brick = flat_index(e.res[0], cell[0] >> kBrickShift, cell[1] >> kBrickShift, cell[2] >> kBrickShift);
      const uint64_t bits = e.bricks[brick];
      if ((bits >> (((cell[0] & 3) << 4) | ((cell[1] & 3) << 2) | (cell[2] & 3))) & 1) {
        if (!visit(k.start, k.end, k.mid, k.p)) return;
      } else if (skipping && bits == 0) {  // an empty brick: leave its largest empty block
        const int shift = kBrickShift * e.levels[brick];
        int32_t block[3];
        float distance = INFINITY;  // t from mid to the block's exit, along the ray
        for (int axis = 0; axis < 3; ++axis) {
          block[axis] = cell[axis] >> shift;
          const float rate = r.rate[axis];
          float boundary = float(block[axis] << shift);
          if (rate > 0.f) {
            const float upper = float((block[axis] + 1) << shift);
            boundary = upper < r.res[axis] ? upper : r.res[axis];
          }
          const float t = rate != 0.f ? (boundary - k.c[axis]) / rate : INFINITY;
          distance = t < distance ? t : distance;
        }
        skip = confirmed_skip(a, r, m, distance, [&](const float* c) {
          return inside_grid(r, c) && (int32_t(c[0]) >> shift) == block[0] && (int32_t(c[1]) >> shift) == block[1] &&
                 (int32_t(c[2]) >> shift) == block[2];
        });
      }
    } else if (skipping) {
      // Outside: on some axis below 0 or at/above R. Moving away (or not moving) on that axis,
      // the ray never comes back; moving towards the grid, it stays out until it crosses.
      int side_axis = -1;
      bool below = false;
      float distance = -INFINITY;
      for (int axis = 0; axis < 3; ++axis) {
        const float c = k.c[axis];
        if (c >= 0.f && c < r.res[axis]) continue;
        if (c != c) return;  // NaN: o or d is not finite; nothing here is ever inside
        const bool is_below = c < 0.f;
        if (is_below ? !(r.d[axis] > 0.f) : !(r.d[axis] < 0.f)) return;
        const float t = ((is_below ? 0.f : r.res[axis]) - c) / r.rate[axis];
        if (t > distance) {
          distance = t;
          side_axis = axis;
          below = is_below;
        }
      }
      skip = confirmed_skip(a, r, m, distance, [&](const float* c) {
        return below ? c[side_axis] < 0.f : c[side_axis] >= r.res[side_axis];
      });
    }
    m += 1 + skip;
    start = interval_start(a, r, m);
  }
}

// ---- the vertex grid ---------------------------------------------------------------------------

// The vertex grid of one ray, and the 8 corners of its latest sample. Rows are looked up again
// only when a sample falls in another cell than the one before (consecutive samples share cells).
struct VertexCorners {
  float lo[3], scale[3], upper[3];  // upper = G_a - 1
  int32_t cell[3];                  // lower corner of the current cell; -1: none yet
  int32_t rows[8];                  // corner k = 4 dx + 2 dy + dz; -1 where missing (or out of range)
  float weights[8];
  bool any;  // some corner is present
};

template <typename scalar_t>
BAKED_HD void corners_setup(const BakedRenderArgs<scalar_t>& a, VertexCorners& v) {
  for (int axis = 0; axis < 3; ++axis) {
    v.lo[axis] = a.march.aabb[axis];
    v.upper[axis] = float(a.vertices[axis] - 1);
    v.scale[axis] = div_rn(v.upper[axis], sub_rn(a.march.aabb[3 + axis], v.lo[axis]));
    v.cell[axis] = -1;
  }
  for (int k = 0; k < 8; ++k) v.rows[k] = -1;
  v.any = false;
}

// Fills v's weights (and rows, if the cell changed) for the point p.
template <typename scalar_t>
BAKED_HD void corners_at(const BakedRenderArgs<scalar_t>& a, const float* p, VertexCorners& v) {
  int32_t cell[3];
  float f[3];
  for (int axis = 0; axis < 3; ++axis) {
    float u = mul_rn(sub_rn(p[axis], v.lo[axis]), v.scale[axis]);
    u = u > 0.f ? u : 0.f;  // NaN -> 0 as well
    u = u < v.upper[axis] ? u : v.upper[axis];
    const int32_t i = int32_t(u);
    cell[axis] = i < a.vertices[axis] - 2 ? i : a.vertices[axis] - 2;
    f[axis] = sub_rn(u, float(cell[axis]));
  }
  if (cell[0] != v.cell[0] || cell[1] != v.cell[1] || cell[2] != v.cell[2]) {
    const int64_t gy = a.vertices[1], gz = a.vertices[2];
    v.any = false;
    for (int k = 0; k < 8; ++k) {
      const int64_t x = cell[0] + (k >> 2), y = cell[1] + ((k >> 1) & 1), z = cell[2] + (k & 1);
      const int32_t row = a.index[(x * gy + y) * gz + z];
      const bool present = row >= 0 && row < a.n_values;
      v.rows[k] = present ? row : -1;
      v.any = v.any || present;
    }
    for (int axis = 0; axis < 3; ++axis) v.cell[axis] = cell[axis];
  }
  for (int k = 0; k < 8; ++k) {
    const float wx = (k & 4) ? f[0] : sub_rn(1.f, f[0]);
    const float wy = (k & 2) ? f[1] : sub_rn(1.f, f[1]);
    const float wz = (k & 1) ? f[2] : sub_rn(1.f, f[2]);
    v.weights[k] = mul_rn(mul_rn(wx, wy), wz);
  }
}

// v_0 = sum_k b_k values[row_k, 0]: the density before max(., 0).
template <typename scalar_t>
BAKED_HD scalar_t corner_density(const BakedRenderArgs<scalar_t>& a, const VertexCorners& v, int64_t C) {
  scalar_t density = scalar_t(0);
  for (int k = 0; k < 8; ++k) {
    if (v.rows[k] >= 0) density += scalar_t(v.weights[k]) * a.values[v.rows[k] * C];
  }
  return density;
}

// ---- forward -----------------------------------------------------------------------------------

// kChannels > 0: C is that compile-time constant and the features accumulate in registers;
// 0: any C, accumulated in the output row.
template <int kChannels, typename scalar_t>
FASTNERF_HD void baked_forward_ray(const BakedRenderArgs<scalar_t>& a, int64_t ray) {
  const int64_t C = kChannels > 0 ? kChannels : a.channels, F = C - 1;
  constexpr int kAcc = kChannels > 1 ? kChannels - 1 : 1;
  scalar_t acc[kAcc];
  scalar_t* out = a.features + ray * F;
  scalar_t* sum = kChannels > 0 ? acc : out;
  for (int64_t c = 0; c < F; ++c) sum[c] = scalar_t(0);
  scalar_t transmittance = scalar_t(1), opacity = scalar_t(0), depth = scalar_t(0);

  const MarchRay r = march_setup(a.march, ray);
  VertexCorners v;
  corners_setup(a, v);
  auto visit = [&](float start, float end, float mid, const float* p) -> bool {
    corners_at(a, p, v);
    if (!v.any) return true;
    const scalar_t density = corner_density(a, v, C);
    if (!(density > scalar_t(0))) return true;  // sigma = 0: weight 0, T unchanged
    const scalar_t neg_alpha = fn_expm1(-density * scalar_t(sub_rn(end, start)));
    const scalar_t w = -transmittance * neg_alpha;
    for (int k = 0; k < 8; ++k) {
      if (v.rows[k] < 0) continue;
      const scalar_t wk = w * scalar_t(v.weights[k]);
      const scalar_t* row = a.values + v.rows[k] * C + 1;
      for (int64_t c = 0; c < F; ++c) sum[c] += wk * row[c];
    }
    opacity += w;
    depth += w * scalar_t(mid);
    transmittance *= scalar_t(1) + neg_alpha;
    return transmittance >= a.early_stop_eps && transmittance > scalar_t(0);
  };
  march_ray_until(a.march, a.space, r, visit);
  if (kChannels > 0) {
    for (int64_t c = 0; c < F; ++c) out[c] = acc[c];
  }
  a.opacity[ray] = opacity;
  a.depth[ray] = depth;
}

// ---- backward ----------------------------------------------------------------------------------

// Add::add(scalar_t* ptr, scalar_t value) adds to grad_values: an atomic add where rays run in
// parallel (CUDA atomicAdd, std::atomic_ref on the CPU).
template <int kChannels, typename Add, typename scalar_t>
FASTNERF_HD void baked_backward_ray(const BakedRenderBackwardArgs<scalar_t>& b, int64_t ray) {
  const BakedRenderArgs<scalar_t>& a = b.fwd;
  const int64_t C = kChannels > 0 ? kChannels : a.channels, F = C - 1;
  const scalar_t* grad_features = b.grad_features + ray * F;
  const scalar_t grad_opacity = b.grad_opacity[ray], grad_depth = b.grad_depth[ray];
  constexpr int kGrad = kChannels > 1 ? kChannels - 1 : 1;
  scalar_t grad_f[kGrad];  // grad_features in registers when C is known
  const scalar_t* gf = kChannels > 0 ? grad_f : grad_features;
  scalar_t total = grad_opacity * a.opacity[ray] + grad_depth * a.depth[ray];
  for (int64_t c = 0; c < F; ++c) {
    if (kChannels > 0) grad_f[c] = grad_features[c];
    total += grad_features[c] * a.features[ray * F + c];
  }

  scalar_t transmittance = scalar_t(1), prefix = scalar_t(0);
  const MarchRay r = march_setup(a.march, ray);
  VertexCorners v;
  corners_setup(a, v);
  auto visit = [&](float start, float end, float mid, const float* p) -> bool {
    corners_at(a, p, v);
    if (!v.any) return true;  // nowhere to send a gradient, and T unchanged
    const scalar_t density = corner_density(a, v, C);
    if (density < scalar_t(0) || density != density) return true;  // max(v_0, 0) = 0 there: no gradient
    const scalar_t dt = scalar_t(sub_rn(end, start));
    const scalar_t neg_alpha = fn_expm1(-density * dt);
    const scalar_t w = -transmittance * neg_alpha;
    scalar_t dot = scalar_t(0);  // <grad_features, feature>
    for (int k = 0; k < 8; ++k) {
      if (v.rows[k] < 0) continue;
      const scalar_t* row = a.values + v.rows[k] * C + 1;
      scalar_t row_dot = scalar_t(0);
      for (int64_t c = 0; c < F; ++c) row_dot += gf[c] * row[c];
      dot += scalar_t(v.weights[k]) * row_dot;
    }
    const scalar_t g = dot + grad_opacity + grad_depth * scalar_t(mid);
    prefix += w * g;
    transmittance *= scalar_t(1) + neg_alpha;  // now T_{k+1}
    const scalar_t grad_density = dt * (transmittance * g - (total - prefix));
    for (int k = 0; k < 8; ++k) {
      if (v.rows[k] < 0) continue;
      const scalar_t bk = scalar_t(v.weights[k]);
      scalar_t* grad_row = b.grad_values + v.rows[k] * C;
      Add::add(grad_row, bk * grad_density);
      if (w == scalar_t(0)) continue;
      const scalar_t wk = bk * w;
      for (int64_t c = 0; c < F; ++c) Add::add(grad_row + 1 + c, wk * gf[c]);
    }
    return transmittance >= a.early_stop_eps && transmittance > scalar_t(0);
  };
  march_ray_until(a.march, a.space, r, visit);
}

// Calls fn(std::integral_constant<int, K>) with K = C for the channel counts worth a
// specialisation (density + RGB; SNeRG's density + 3 colours + 4 features; 1 + 15), else K = 0.
template <typename Fn>
inline void dispatch_baked_channels(int64_t channels, const Fn& fn) {
  switch (channels) {
    case 4: fn(std::integral_constant<int, 4>()); break;
    case 8: fn(std::integral_constant<int, 8>()); break;
    case 16: fn(std::integral_constant<int, 16>()); break;
    default: fn(std::integral_constant<int, 0>()); break;
  }
}

// CUDA launchers (baked_render_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
template <typename scalar_t>
int baked_render_forward_cuda(const BakedRenderArgs<scalar_t>& args, void* stream);
template <typename scalar_t>
int baked_render_backward_cuda(const BakedRenderBackwardArgs<scalar_t>& args, void* stream);

}  // namespace fastnerf
