// project_features: schemas and the CPU kernels (at::parallel_for).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "project_features/project_features_torch.h"

namespace fastnerf {

namespace {
constexpr int64_t kChannelBlock = 16;  // channels one backward task owns (no two tasks share a texel)

template <typename scalar_t>
void forward_cpu(const ProjectFeaturesArgs<scalar_t>& a) {
  at::parallel_for(0, a.n_views * a.n_points, 256, [&](int64_t begin, int64_t end) {
    int64_t offsets[4];
    scalar_t weights[4];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t view = item / a.n_points, point = item % a.n_points;
      project_taps(a, view, point, offsets, weights);
      scalar_t* out = a.out + item * a.channels;
      for (int tap = 0; tap < 4; ++tap) {
        if (weights[tap] == scalar_t(0)) continue;
        const scalar_t* texel = a.features + offsets[tap];
        const scalar_t w = weights[tap];
        for (int64_t c = 0; c < a.channels; ++c) out[c] += w * texel[c * a.stride_channel];
      }
    }
  });
}

// Each task owns one (view, channel block): it scatters every point's gradient into its own
// channels, so no two tasks write the same element and no atomics are needed.
template <typename scalar_t>
void backward_cpu(const ProjectFeaturesArgs<scalar_t>& a) {
  const int64_t blocks = (a.channels + kChannelBlock - 1) / kChannelBlock;
  at::parallel_for(0, a.n_views * blocks, 1, [&](int64_t begin, int64_t end) {
    int64_t offsets[4];
    scalar_t weights[4];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t view = task / blocks, c_begin = (task % blocks) * kChannelBlock;
      const int64_t c_end = c_begin + kChannelBlock < a.channels ? c_begin + kChannelBlock : a.channels;
      for (int64_t point = 0; point < a.n_points; ++point) {
        project_taps(a, view, point, offsets, weights);
        const scalar_t* grad = a.grad_out + (view * a.n_points + point) * a.channels;
        for (int tap = 0; tap < 4; ++tap) {
          if (weights[tap] == scalar_t(0)) continue;
          scalar_t* texel = a.grad_features + offsets[tap];
          for (int64_t c = c_begin; c < c_end; ++c) texel[c * a.stride_channel] += weights[tap] * grad[c];
        }
      }
    }
  });
}
}  // namespace

at::Tensor project_features_cpu(const at::Tensor& points, const at::Tensor& c2w, const at::Tensor& intrinsics,
                                const at::Tensor& features) {
  return project_features_forward_impl(points, c2w, intrinsics, features, [](const auto& args) { forward_cpu(args); });
}

at::Tensor project_features_bwd_cpu(const at::Tensor& grad_out, const at::Tensor& points, const at::Tensor& c2w,
                                    const at::Tensor& intrinsics, const at::Tensor& features) {
  return project_features_backward_impl(grad_out, points, c2w, intrinsics, features,
                                        [](const auto& args) { backward_cpu(args); });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("project_features(Tensor points, Tensor c2w, Tensor intrinsics, Tensor features) -> Tensor");
  m.def(
      "project_features_bwd(Tensor grad_out, Tensor points, Tensor c2w, Tensor intrinsics, Tensor features)"
      " -> Tensor");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("project_features", &project_features_cpu);
  m.impl("project_features_bwd", &project_features_bwd_cpu);
}

}  // namespace fastnerf
