// project_features: the CUDA binding (device guard, stream, launch check); kernels live in the .cu.
#include <torch/library.h>

#include "cuda_launch.h"
#include "project_features/project_features_torch.h"

namespace fastnerf {

at::Tensor project_features_cuda_op(const at::Tensor& points, const at::Tensor& c2w, const at::Tensor& intrinsics,
                                    const at::Tensor& features) {
  const c10::cuda::CUDAGuard guard(points.device());
  return project_features_forward_impl(points, c2w, intrinsics, features, [](const auto& args) {
    check_launch(project_features_forward_cuda(args, current_stream()), "project_features");
  });
}

at::Tensor project_features_bwd_cuda_op(const at::Tensor& grad_out, const at::Tensor& points, const at::Tensor& c2w,
                                        const at::Tensor& intrinsics, const at::Tensor& features) {
  const c10::cuda::CUDAGuard guard(points.device());
  return project_features_backward_impl(grad_out, points, c2w, intrinsics, features, [](const auto& args) {
    check_launch(project_features_backward_cuda(args, current_stream()), "project_features_bwd");
  });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) {
  m.impl("project_features", &project_features_cuda_op);
  m.impl("project_features_bwd", &project_features_bwd_cuda_op);
}

}  // namespace fastnerf
