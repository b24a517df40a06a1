// project_features: project world points into source views and sample their feature maps
// bilinearly. The per-(view, point) math shared by the CPU and CUDA kernels; the spec is
// fastnerf/reference/project_features.py.
//
// Cameras are OpenGL camera-to-world (looking along -Z, +Y up). A point p of view v lies at
// camera coordinates q = R^T (p - t); depth = -q.z; it projects to feature-map pixel coordinates
// u = fx q.x / depth + cx, w = cy - fy q.y / depth (texel (i, j) has its centre at (i + 0.5,
// j + 0.5): grid_sample's align_corners=False). The four texels around (u - 0.5, w - 0.5) are
// blended bilinearly; texels outside the map count as zero, and points with depth <= kMinDepth
// (behind or at the camera) or non-finite coordinates get zero features.
#pragma once

#include "common.h"

namespace fastnerf {

constexpr double kProjectMinDepth = 1e-6;

template <typename scalar_t>
struct ProjectFeaturesArgs {
  const scalar_t* points;      // [S, 3] world
  const scalar_t* c2w;         // [V, 4, 4] row-major camera-to-world
  const scalar_t* intrinsics;  // [V, 4] (fx, fy, cx, cy) in feature-map pixels
  const scalar_t* features;    // [V, C, h, w] at the strides below (forward input)
  scalar_t* grad_features;     // same layout as features (backward output), or nullptr
  const scalar_t* grad_out;    // [V, S, C] contiguous (backward input), or nullptr
  scalar_t* out;               // [V, S, C] contiguous (forward output), or nullptr
  int64_t n_views, n_points, channels, height, width;
  int64_t stride_view, stride_channel, stride_row, stride_col;  // of features and grad_features
};

// The four bilinear taps of point s in view v: element offsets (channel 0) and weights.
// A tap outside the map, or any tap of a point that does not project, has weight 0 and offset
// of the view's first texel, so callers may read it unconditionally.
template <typename scalar_t>
FASTNERF_HD void project_taps(const ProjectFeaturesArgs<scalar_t>& a, int64_t view, int64_t point,
                              int64_t offsets[4], scalar_t weights[4]) {
  const scalar_t* m = a.c2w + 16 * view;
  const scalar_t* k = a.intrinsics + 4 * view;
  const scalar_t dx = a.points[3 * point] - m[3];
  const scalar_t dy = a.points[3 * point + 1] - m[7];
  const scalar_t dz = a.points[3 * point + 2] - m[11];
  const scalar_t qx = m[0] * dx + m[4] * dy + m[8] * dz;
  const scalar_t qy = m[1] * dx + m[5] * dy + m[9] * dz;
  const scalar_t depth = -(m[2] * dx + m[6] * dy + m[10] * dz);
  const int64_t base = view * a.stride_view;
  for (int tap = 0; tap < 4; ++tap) {
    offsets[tap] = base;
    weights[tap] = scalar_t(0);
  }
  if (!(depth > scalar_t(kProjectMinDepth))) return;  // behind the camera, or NaN
  const scalar_t x = k[0] * qx / depth + k[2] - scalar_t(0.5);
  const scalar_t y = k[3] - k[1] * qy / depth - scalar_t(0.5);
  // Every tap lies outside (also for NaN / inf): nothing to sample, and no huge float -> int.
  if (!(x > scalar_t(-1) && x < scalar_t(a.width) && y > scalar_t(-1) && y < scalar_t(a.height))) return;
  const scalar_t x0f = floor(x), y0f = floor(y);
  const int64_t x0 = int64_t(x0f), y0 = int64_t(y0f);
  const scalar_t ax = x - x0f, ay = y - y0f;
  const scalar_t tap_weights[4] = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
  for (int tap = 0; tap < 4; ++tap) {
    const int64_t col = x0 + (tap & 1), row = y0 + (tap >> 1);
    if (col >= 0 && col < a.width && row >= 0 && row < a.height) {
      offsets[tap] = base + row * a.stride_row + col * a.stride_col;
      weights[tap] = tap_weights[tap];
    }
  }
}

// CUDA launchers (project_features_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
template <typename scalar_t>
int project_features_forward_cuda(const ProjectFeaturesArgs<scalar_t>& args, void* stream);
template <typename scalar_t>
int project_features_backward_cuda(const ProjectFeaturesArgs<scalar_t>& args, void* stream);

}  // namespace fastnerf
