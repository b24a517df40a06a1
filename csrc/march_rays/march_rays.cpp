// march_rays: schema and the CPU kernels (count pass, then fill pass; at::parallel_for over rays).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>

#include "march_rays/march_rays_torch.h"

namespace fastnerf {

std::tuple<at::Tensor, at::Tensor, at::Tensor> march_rays_cpu(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const at::Tensor& aabb, const at::Tensor& occupied, double step_size, const c10::optional<at::Tensor>& offsets,
    const c10::optional<c10::string_view> contraction, double cone_angle, const c10::optional<double> max_step,
    double disparity_step) {
  auto count = [](const MarchArgs& args) {
    std::atomic<bool> non_finite{false};
    at::parallel_for(0, args.n_rays, 64, [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) {
        if (!is_finite(args.t_near[ray]) || !is_finite(args.t_far[ray])) non_finite.store(true);
        march_count_ray(args, ray);
      }
    });
    TORCH_CHECK(!non_finite.load(), "march_rays: t_near and t_far must be finite");
  };
  auto fill = [](const MarchArgs& args) {
    at::parallel_for(0, args.n_rays, 64, [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) march_fill_ray(args, ray);
    });
  };
  return march_rays_impl(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets, contraction, cone_angle,
                         max_step, disparity_step, count, fill);
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def(FASTNERF_MARCH_RAYS_SCHEMA);
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) { m.impl("march_rays", &march_rays_cpu); }

}  // namespace fastnerf
