// march_rays' torch-side pieces shared by the CPU and CUDA bindings: checks, allocation and
// count-then-fill. The device parts are the `count(args)` and `fill(args)` callbacks.

// The schema both bindings implement (march_rays.cpp defines it).
#define FASTNERF_MARCH_RAYS_SCHEMA                                                                      \
  "march_rays(Tensor rays_o, Tensor rays_d, Tensor t_near, Tensor t_far, Tensor aabb, Tensor occupied," \
  " float step_size, Tensor? offsets=None, str? contraction=None, float cone_angle=0.0,"              \
  " float? max_step=None, float disparity_step=0.0) -> (Tensor packed_info, Tensor t_starts, Tensor t_ends)"
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include <cmath>
#include <tuple>

#include "checks.h"
#include "march_rays/march_rays.h"

namespace fastnerf {

template <typename Count, typename Fill>
std::tuple<at::Tensor, at::Tensor, at::Tensor> march_rays_impl(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const at::Tensor& aabb, const at::Tensor& occupied, double step_size, const c10::optional<at::Tensor>& offsets,
    const c10::optional<c10::string_view>& contraction, double cone_angle, const c10::optional<double>& max_step,
    double disparity_step, const Count& count, const Fill& fill) {
  const auto device = rays_o.device();
  const int64_t N = rays_o.size(0);
  check_tensor(rays_o, "rays_o", 2, device);
  check_tensor(rays_d, "rays_d", 2, device);
  check_tensor(t_near, "t_near", 1, device);
  check_tensor(t_far, "t_far", 1, device);
  check_tensor(aabb, "aabb", 1, device);
  check_tensor(occupied, "occupied", 3, device);
  for (const auto* t : {&rays_o, &rays_d, &t_near, &t_far, &aabb}) check_float(*t, "rays, t and aabb", at::kFloat);
  TORCH_CHECK(occupied.scalar_type() == at::kBool, "occupied must be bool, got ", occupied.scalar_type());
  check_size(rays_o, "rays_o", 1, 3);
  check_size(rays_d, "rays_d", 0, N);
  check_size(rays_d, "rays_d", 1, 3);
  check_size(t_near, "t_near", 0, N);
  check_size(t_far, "t_far", 0, N);
  check_size(aabb, "aabb", 0, 6);
  TORCH_CHECK(step_size > 0, "step_size must be > 0, got ", step_size);
  TORCH_CHECK(!contraction.has_value() || *contraction == "mipnerf360",
              "contraction must be None or \"mipnerf360\", got \"", contraction.value_or(""), "\"");
  TORCH_CHECK(cone_angle >= 0 && std::isfinite(cone_angle), "cone_angle must be finite and >= 0, got ", cone_angle);
  TORCH_CHECK(!max_step.has_value() || *max_step >= step_size, "max_step must be >= step_size (", step_size,
              "), got ", max_step.value_or(0.0));
  TORCH_CHECK(disparity_step >= 0 && std::isfinite(disparity_step), "disparity_step must be finite and >= 0, got ",
              disparity_step);
  TORCH_CHECK(disparity_step == 0 || cone_angle > 0, "disparity_step (", disparity_step,
              ") needs cone stepping: give cone_angle > 0 too");
  at::Tensor offsets_c;
  if (offsets.has_value()) {
    check_tensor(*offsets, "offsets", 1, device);
    check_float(*offsets, "offsets", at::kFloat);
    check_size(*offsets, "offsets", 0, N);
    offsets_c = offsets->contiguous();
  }
  const at::Tensor o = rays_o.contiguous(), d = rays_d.contiguous(), tn = t_near.contiguous(),
                   tf = t_far.contiguous(), box = aabb.contiguous(), occ = occupied.contiguous();

  auto counts = at::zeros({N}, o.options().dtype(at::kLong));
  MarchArgs args{o.data_ptr<float>(), d.data_ptr<float>(), tn.data_ptr<float>(), tf.data_ptr<float>(),
                 offsets_c.defined() ? offsets_c.data_ptr<float>() : nullptr, box.data_ptr<float>(),
                 occ.data_ptr<bool>(), {occ.size(0), occ.size(1), occ.size(2)}, N, float(step_size),
                 counts.data_ptr<int64_t>(), nullptr, 0, nullptr, nullptr};
  args.contracted = contraction.has_value();
  args.cone = cone_angle > 0;
  args.cone_angle = float(cone_angle);
  if (max_step.has_value()) args.max_step = float(*max_step);
  args.disparity_step = float(disparity_step);
  if (N > 0) count(args);
  const at::Tensor starts = at::cumsum(counts, 0) - counts;
  const at::Tensor packed_info = at::stack({starts, counts}, 1).contiguous();
  const int64_t S = N > 0 ? (starts[N - 1] + counts[N - 1]).item<int64_t>() : 0;  // one device sync
  auto t_starts = at::empty({S}, o.options());
  auto t_ends = at::empty({S}, o.options());
  if (S > 0) {
    args.packed_info = packed_info.data_ptr<int64_t>();
    args.n_samples = S;
    args.t_starts = t_starts.data_ptr<float>();
    args.t_ends = t_ends.data_ptr<float>();
    fill(args);
  }
  return {packed_info, t_starts, t_ends};
}

}  // namespace fastnerf
