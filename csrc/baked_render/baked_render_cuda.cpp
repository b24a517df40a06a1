// baked_render: the CUDA binding (device guard, stream, launch check); kernels live in baked_render_cuda.cu.
#include <torch/library.h>

#include "baked_render/baked_render_torch.h"
#include "cuda_launch.h"

namespace fastnerf {

std::tuple<at::Tensor, at::Tensor, at::Tensor> baked_render_cuda(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb, const at::Tensor& occupied,
    const at::Tensor& index, const at::Tensor& values, double step_size, double early_stop_eps) {
  const c10::cuda::CUDAGuard guard(rays_o.device());
  return baked_render_forward_impl(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values, step_size,
                                   early_stop_eps, [](const auto& args) {
                                     check_launch(baked_render_forward_cuda(args, current_stream()), "baked_render");
                                   });
}

at::Tensor baked_render_bwd_cuda(const at::Tensor& grad_features, const at::Tensor& grad_opacity,
                                 const at::Tensor& grad_depth, const at::Tensor& rays_o, const at::Tensor& rays_d,
                                 const at::Tensor& t_near, const at::Tensor& t_far,
                                 const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb,
                                 const at::Tensor& occupied, const at::Tensor& index, const at::Tensor& values,
                                 double step_size, double early_stop_eps, const at::Tensor& features,
                                 const at::Tensor& opacity, const at::Tensor& depth) {
  const c10::cuda::CUDAGuard guard(rays_o.device());
  return baked_render_backward_impl(
      grad_features, grad_opacity, grad_depth, rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values,
      step_size, early_stop_eps, features, opacity, depth, [](const auto& args) {
        check_launch(baked_render_backward_cuda(args, current_stream()), "baked_render_bwd");
      });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) {
  m.impl("baked_render", &baked_render_cuda);
  m.impl("baked_render_bwd", &baked_render_bwd_cuda);
}

}  // namespace fastnerf
