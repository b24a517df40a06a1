// ray_aabb: schema and the CPU kernel (at::parallel_for over rays).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ray_aabb/ray_aabb_torch.h"

namespace fastnerf {

std::tuple<at::Tensor, at::Tensor, at::Tensor> ray_aabb_cpu(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                            const at::Tensor& aabb) {
  return ray_aabb_impl(rays_o, rays_d, aabb, [](const RayAabbArgs& args) {
    at::parallel_for(0, args.n_rays, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) ray_aabb_ray(args, ray);
    });
  });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("ray_aabb(Tensor rays_o, Tensor rays_d, Tensor aabb) -> (Tensor t_near, Tensor t_far, Tensor hit)");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) { m.impl("ray_aabb", &ray_aabb_cpu); }

}  // namespace fastnerf
