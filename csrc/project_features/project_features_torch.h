// project_features's torch-side pieces shared by the CPU and CUDA bindings: checks, allocation,
// dtype dispatch. The device part is the `launch(args)` callback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include "checks.h"
#include "project_features/project_features.h"

namespace fastnerf {

inline void check_project_inputs(const at::Tensor& points, const at::Tensor& c2w, const at::Tensor& intrinsics,
                                 const at::Tensor& features) {
  const auto device = points.device();
  check_tensor(points, "points", 2, device);
  check_tensor(c2w, "c2w", 3, device);
  check_tensor(intrinsics, "intrinsics", 2, device);
  check_tensor(features, "features", 4, device);
  const auto dtype = points.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "points must be float32 or float64, got ", dtype);
  check_float(c2w, "c2w", dtype);
  check_float(intrinsics, "intrinsics", dtype);
  check_float(features, "features", dtype);
  const int64_t V = features.size(0);
  check_size(points, "points", 1, 3);
  check_size(c2w, "c2w", 0, V);
  check_size(c2w, "c2w", 1, 4);
  check_size(c2w, "c2w", 2, 4);
  check_size(intrinsics, "intrinsics", 0, V);
  check_size(intrinsics, "intrinsics", 1, 4);
}

template <typename scalar_t>
ProjectFeaturesArgs<scalar_t> project_args(const at::Tensor& points, const at::Tensor& c2w,
                                           const at::Tensor& intrinsics, const at::Tensor& features) {
  ProjectFeaturesArgs<scalar_t> args{};
  args.points = points.data_ptr<scalar_t>();
  args.c2w = c2w.data_ptr<scalar_t>();
  args.intrinsics = intrinsics.data_ptr<scalar_t>();
  args.n_views = features.size(0);
  args.n_points = points.size(0);
  args.channels = features.size(1);
  args.height = features.size(2);
  args.width = features.size(3);
  args.stride_view = features.stride(0);
  args.stride_channel = features.stride(1);
  args.stride_row = features.stride(2);
  args.stride_col = features.stride(3);
  return args;
}

// Forward: features may have any strides (channels-last makes each tap one contiguous read).
template <typename Launch>
at::Tensor project_features_forward_impl(const at::Tensor& points, const at::Tensor& c2w,
                                         const at::Tensor& intrinsics, const at::Tensor& features,
                                         const Launch& launch) {
  check_project_inputs(points, c2w, intrinsics, features);
  const at::Tensor p = points.contiguous(), m = c2w.contiguous(), k = intrinsics.contiguous();
  auto out = at::zeros({features.size(0), points.size(0), features.size(1)}, features.options());
  if (out.numel() == 0 || features.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "project_features", [&] {
    auto args = project_args<scalar_t>(p, m, k, features);
    args.features = features.data_ptr<scalar_t>();
    args.out = out.data_ptr<scalar_t>();
    launch(args);
  });
  return out;
}

// Backward: grad_features [V, C, h, w] in the memory format of `features` (channels-last stays so).
template <typename Launch>
at::Tensor project_features_backward_impl(const at::Tensor& grad_out, const at::Tensor& points,
                                          const at::Tensor& c2w, const at::Tensor& intrinsics,
                                          const at::Tensor& features, const Launch& launch) {
  check_project_inputs(points, c2w, intrinsics, features);
  const int64_t V = features.size(0), S = points.size(0), C = features.size(1);
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.size(0) == V && grad_out.size(1) == S && grad_out.size(2) == C,
              "grad_out must have shape [", V, ", ", S, ", ", C, "], got ", grad_out.sizes());
  check_float(grad_out, "grad_out", points.scalar_type());
  TORCH_CHECK(grad_out.device() == points.device(), "grad_out must be on ", points.device());
  const at::Tensor g = grad_out.contiguous(), p = points.contiguous(), m = c2w.contiguous(), k = intrinsics.contiguous();
  auto grad_features = at::zeros_like(features, features.suggest_memory_format());
  if (g.numel() == 0 || features.numel() == 0) return grad_features;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "project_features_bwd", [&] {
    auto args = project_args<scalar_t>(p, m, k, grad_features);
    args.grad_features = grad_features.data_ptr<scalar_t>();
    args.grad_out = g.data_ptr<scalar_t>();
    launch(args);
  });
  return grad_features;
}

}  // namespace fastnerf
