// ray_aabb: the CUDA binding (device guard, stream, launch check); the kernel is in ray_aabb_cuda.cu.
#include <torch/library.h>

#include "cuda_launch.h"
#include "ray_aabb/ray_aabb_torch.h"

namespace fastnerf {

std::tuple<at::Tensor, at::Tensor, at::Tensor> ray_aabb_cuda_op(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                                const at::Tensor& aabb) {
  const c10::cuda::CUDAGuard guard(rays_o.device());
  return ray_aabb_impl(rays_o, rays_d, aabb, [](const RayAabbArgs& args) {
    check_launch(ray_aabb_cuda(args, current_stream()), "ray_aabb");
  });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) { m.impl("ray_aabb", &ray_aabb_cuda_op); }

}  // namespace fastnerf
