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

#include "baked_render/empty_space_march.h"

namespace fastnerf {

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

// The cell of the point p (the lower vertex per axis) and its fractions f.
template <typename scalar_t>
BAKED_HD void corners_locate(const BakedRenderArgs<scalar_t>& a, const VertexCorners& v, const float* p,
                             int32_t* cell, float* f) {
  for (int axis = 0; axis < 3; ++axis) {
    float u = mul_rn(sub_rn(p[axis], v.lo[axis]), v.scale[axis]);
    u = u > 0.f ? u : 0.f;  // NaN -> 0 as well
    u = u < v.upper[axis] ? u : v.upper[axis];
    const int32_t i = int32_t(u);
    cell[axis] = i < a.vertices[axis] - 2 ? i : a.vertices[axis] - 2;
    f[axis] = sub_rn(u, float(cell[axis]));
  }
}

BAKED_HD bool same_cell(const VertexCorners& v, const int32_t* cell) {
  return cell[0] == v.cell[0] && cell[1] == v.cell[1] && cell[2] == v.cell[2];
}

// Where corner k's row number lies in `index`.
template <typename scalar_t>
BAKED_HD const int32_t* corner_entry(const BakedRenderArgs<scalar_t>& a, const int32_t* cell, int k) {
  const int64_t gy = a.vertices[1], gz = a.vertices[2];
  const int64_t x = cell[0] + (k >> 2), y = cell[1] + ((k >> 1) & 1), z = cell[2] + (k & 1);
  return a.index + (x * gy + y) * gz + z;
}

// v's rows for the cell.
template <typename scalar_t>
BAKED_HD void corners_fetch(const BakedRenderArgs<scalar_t>& a, const int32_t* cell, VertexCorners& v) {
  v.any = false;
  for (int k = 0; k < 8; ++k) {
    const int32_t row = *corner_entry(a, cell, k);
    const bool present = row >= 0 && row < a.n_values;
    v.rows[k] = present ? row : -1;
    v.any = v.any || present;
  }
  for (int axis = 0; axis < 3; ++axis) v.cell[axis] = cell[axis];
}

BAKED_HD void corners_weigh(const float* f, VertexCorners& v) {
  for (int k = 0; k < 8; ++k) {
    const float wx = (k & 4) ? f[0] : sub_rn(1.f, f[0]);
    const float wy = (k & 2) ? f[1] : sub_rn(1.f, f[1]);
    const float wz = (k & 1) ? f[2] : sub_rn(1.f, f[2]);
    v.weights[k] = mul_rn(mul_rn(wx, wy), wz);
  }
}

// Fills v's weights (and rows, if the cell changed) for the point p.
template <typename scalar_t>
BAKED_HD void corners_at(const BakedRenderArgs<scalar_t>& a, const float* p, VertexCorners& v) {
  int32_t cell[3];
  float f[3];
  corners_locate(a, v, p, cell, f);
  if (!same_cell(v, cell)) corners_fetch(a, cell, v);
  corners_weigh(f, v);
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

// One ray's forward state: the composited sums so far.
template <int kChannels, typename scalar_t>
struct ForwardSums {
  static constexpr int kAcc = kChannels > 1 ? kChannels - 1 : 1;
  scalar_t acc[kAcc];  // the features, when C is known (else they accumulate in the output row)
  scalar_t* out;       // the ray's output row of features
  scalar_t transmittance, opacity, depth;
  // (a method, not a pointer member: a copied state must not point into the original's acc)
  BAKED_HD scalar_t* sum() { return kChannels > 0 ? acc : out; }
};

template <int kChannels, typename scalar_t>
BAKED_HD void forward_begin(const BakedRenderArgs<scalar_t>& a, int64_t ray, ForwardSums<kChannels, scalar_t>& s) {
  const int64_t F = (kChannels > 0 ? kChannels : a.channels) - 1;
  s.out = a.features + ray * F;
  scalar_t* sum = s.sum();
  for (int64_t c = 0; c < F; ++c) sum[c] = scalar_t(0);
  s.transmittance = scalar_t(1);
  s.opacity = scalar_t(0);
  s.depth = scalar_t(0);
}

// Composites the sample whose corners v hold; returns whether the ray goes on.
template <int kChannels, typename scalar_t>
BAKED_HD bool forward_visit(const BakedRenderArgs<scalar_t>& a, const VertexCorners& v, float start, float end,
                            float mid, ForwardSums<kChannels, scalar_t>& s) {
  const int64_t C = kChannels > 0 ? kChannels : a.channels, F = C - 1;
  if (!v.any) return true;
  const scalar_t density = corner_density(a, v, C);
  if (!(density > scalar_t(0))) return true;  // sigma = 0: weight 0, T unchanged
  const scalar_t neg_alpha = fn_expm1(-density * scalar_t(sub_rn(end, start)));
  const scalar_t w = -s.transmittance * neg_alpha;
  scalar_t* sum = s.sum();
  for (int k = 0; k < 8; ++k) {
    if (v.rows[k] < 0) continue;
    const scalar_t wk = w * scalar_t(v.weights[k]);
    const scalar_t* row = a.values + v.rows[k] * C + 1;
    for (int64_t c = 0; c < F; ++c) sum[c] += wk * row[c];
  }
  s.opacity += w;
  s.depth += w * scalar_t(mid);
  s.transmittance *= scalar_t(1) + neg_alpha;
  return s.transmittance >= a.early_stop_eps && s.transmittance > scalar_t(0);
}

template <int kChannels, typename scalar_t>
BAKED_HD void forward_end(const BakedRenderArgs<scalar_t>& a, int64_t ray, const ForwardSums<kChannels, scalar_t>& s) {
  if (kChannels > 0) {
    for (int64_t c = 0; c < kChannels - 1; ++c) s.out[c] = s.acc[c];
  }
  a.opacity[ray] = s.opacity;
  a.depth[ray] = s.depth;
}

// kChannels > 0: C is that compile-time constant and the features accumulate in registers;
// 0: any C, accumulated in the output row.
template <int kChannels, typename scalar_t>
FASTNERF_HD void baked_forward_ray(const BakedRenderArgs<scalar_t>& a, int64_t ray) {
  ForwardSums<kChannels, scalar_t> s;
  forward_begin(a, ray, s);
  const MarchRay r = march_setup(a.march, ray);
  VertexCorners v;
  corners_setup(a, v);
  auto visit = [&](float start, float end, float mid, const float* p) -> bool {
    corners_at(a, p, v);
    return forward_visit(a, v, start, end, mid, s);
  };
  march_ray_until(a.march, a.space, r, visit);
  forward_end(a, ray, s);
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
