// ray_aabb's torch-side pieces shared by the CPU and CUDA bindings: checks and allocation.
// The device part is the `launch(args)` callback.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "checks.h"
#include "ray_aabb/ray_aabb.h"

namespace fastnerf {

template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor> ray_aabb_impl(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                             const at::Tensor& aabb, const Launch& launch) {
  const auto device = rays_o.device();
  check_tensor(rays_o, "rays_o", 2, device);
  check_tensor(rays_d, "rays_d", 2, device);
  check_tensor(aabb, "aabb", 1, device);
  check_float(rays_o, "rays_o", at::kFloat);
  check_float(rays_d, "rays_d", at::kFloat);
  check_float(aabb, "aabb", at::kFloat);
  const int64_t N = rays_o.size(0);
  check_size(rays_o, "rays_o", 1, 3);
  check_size(rays_d, "rays_d", 0, N);
  check_size(rays_d, "rays_d", 1, 3);
  check_size(aabb, "aabb", 0, 6);
  const at::Tensor o = rays_o.contiguous(), d = rays_d.contiguous(), box = aabb.contiguous();
  auto t_near = at::empty({N}, o.options());
  auto t_far = at::empty({N}, o.options());
  auto hit = at::empty({N}, o.options().dtype(at::kBool));
  if (N > 0) {
    launch(RayAabbArgs{o.data_ptr<float>(), d.data_ptr<float>(), box.data_ptr<float>(), N,
                       t_near.data_ptr<float>(), t_far.data_ptr<float>(), hit.data_ptr<bool>()});
  }
  return {t_near, t_far, hit};
}

}  // namespace fastnerf
