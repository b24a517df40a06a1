// march_rays: the CUDA binding (device guard, stream, launch checks); kernels are in march_rays_cuda.cu.
#include <torch/library.h>

#include "cuda_launch.h"
#include "march_rays/march_rays_torch.h"

namespace fastnerf {

std::tuple<at::Tensor, at::Tensor, at::Tensor> march_rays_cuda_op(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const at::Tensor& aabb, const at::Tensor& occupied, double step_size, const c10::optional<at::Tensor>& offsets,
    const c10::optional<c10::string_view> contraction, double cone_angle, const c10::optional<double> max_step,
    double disparity_step) {
  const c10::cuda::CUDAGuard guard(rays_o.device());
  return march_rays_impl(
      rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets, contraction, cone_angle, max_step,
      disparity_step,
      [](const MarchArgs& args) { check_launch(march_rays_count_cuda(args, current_stream()), "march_rays count"); },
      [](const MarchArgs& args) { check_launch(march_rays_fill_cuda(args, current_stream()), "march_rays fill"); });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) { m.impl("march_rays", &march_rays_cuda_op); }

}  // namespace fastnerf
