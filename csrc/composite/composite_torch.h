// composite's torch-side pieces shared by the CPU and CUDA bindings: checks, allocation, type
// dispatch and argument packing. The device part is the `launch(args)` callback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <tuple>

#include "checks.h"
#include "composite/composite.h"

namespace fastnerf {

struct CompositeInputs {
  at::Tensor sigmas, values, t_starts, t_ends, packed_info;  // contiguous
};

inline CompositeInputs check_composite_inputs(const at::Tensor& sigmas, const at::Tensor& values,
                                              const at::Tensor& t_starts, const at::Tensor& t_ends,
                                              const at::Tensor& packed_info) {
  const auto device = sigmas.device();
  check_tensor(sigmas, "sigmas", 1, device);
  check_tensor(values, "values", 2, device);
  check_tensor(t_starts, "t_starts", 1, device);
  check_tensor(t_ends, "t_ends", 1, device);
  check_packed_info(packed_info, device);
  const auto dtype = sigmas.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "sigmas must be float32 or float64, got ", dtype);
  check_float(values, "values", dtype);
  check_float(t_starts, "t_starts", dtype);
  check_float(t_ends, "t_ends", dtype);
  const int64_t S = sigmas.size(0);
  check_size(values, "values", 0, S);
  check_size(t_starts, "t_starts", 0, S);
  check_size(t_ends, "t_ends", 0, S);
  return {sigmas.contiguous(), values.contiguous(), t_starts.contiguous(), t_ends.contiguous(),
          packed_info.contiguous()};
}

// packed_info [N, 2] on the CPU: do rays 0..N-1 cover samples 0..S-1 exactly, back to back?
inline bool rays_tile_samples(const at::Tensor& packed_info, int64_t n_samples) {
  bool tiled = true;
  AT_DISPATCH_INDEX_TYPES(packed_info.scalar_type(), "rays_tile_samples", [&] {
    const index_t* info = packed_info.data_ptr<index_t>();
    int64_t next = 0;
    for (int64_t ray = 0; ray < packed_info.size(0) && tiled; ++ray) {
      tiled = info[2 * ray] == next && info[2 * ray + 1] >= 0;
      next += info[2 * ray + 1];
    }
    tiled = tiled && next == n_samples;
  });
  return tiled;
}

template <typename scalar_t, typename index_t>
CompositeForwardArgs<scalar_t, index_t> composite_args(const CompositeInputs& in, const at::Tensor& out,
                                                       const at::Tensor& opacity, const at::Tensor& depth,
                                                       const at::Tensor& weights) {
  return {in.packed_info.data_ptr<index_t>(), in.packed_info.size(0), in.sigmas.size(0), in.values.size(1),
          in.sigmas.data_ptr<scalar_t>(),     in.values.data_ptr<scalar_t>(),
          in.t_starts.data_ptr<scalar_t>(),   in.t_ends.data_ptr<scalar_t>(),
          out.data_ptr<scalar_t>(),           opacity.data_ptr<scalar_t>(),
          depth.data_ptr<scalar_t>(),         weights.data_ptr<scalar_t>()};
}

// launch: a generic callable taking `const CompositeForwardArgs<scalar_t, index_t>&`.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_forward_impl(
    const at::Tensor& sigmas, const at::Tensor& values, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& packed_info, const Launch& launch) {
  const auto in = check_composite_inputs(sigmas, values, t_starts, t_ends, packed_info);
  const int64_t N = in.packed_info.size(0), C = in.values.size(1);
  auto out = at::empty({N, C}, in.values.options());
  auto opacity = at::empty({N}, in.sigmas.options());
  auto depth = at::empty({N}, in.sigmas.options());
  // Samples no ray covers keep weight 0. When the rays tile [0, S) in order (the usual pack, and
  // cheap to check on the CPU) the kernel writes every weight: skip the zero fill.
  const bool tiled = in.packed_info.device().is_cpu() && rays_tile_samples(in.packed_info, in.sigmas.size(0));
  auto weights = tiled ? at::empty_like(in.sigmas) : at::zeros_like(in.sigmas);
  if (N == 0) return {out, opacity, depth, weights};
  AT_DISPATCH_FLOATING_TYPES(in.sigmas.scalar_type(), "composite", [&] {
    AT_DISPATCH_INDEX_TYPES(in.packed_info.scalar_type(), "composite", [&] {
      launch(composite_args<scalar_t, index_t>(in, out, opacity, depth, weights));
    });
  });
  return {out, opacity, depth, weights};
}

// launch: a generic callable taking `const CompositeBackwardArgs<scalar_t, index_t>&`.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor> composite_backward_impl(
    const at::Tensor& grad_out, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& grad_weights, const at::Tensor& sigmas, const at::Tensor& values,
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& packed_info, const at::Tensor& out,
    const at::Tensor& opacity, const at::Tensor& depth, const at::Tensor& weights, const Launch& launch) {
  const auto in = check_composite_inputs(sigmas, values, t_starts, t_ends, packed_info);
  const int64_t N = in.packed_info.size(0), C = in.values.size(1), S = in.sigmas.size(0);
  const auto dtype = in.sigmas.scalar_type();
  const auto device = in.sigmas.device();
  auto per_ray = [&](const at::Tensor& t, const char* name, at::IntArrayRef shape) -> at::Tensor {
    TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
    TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
    check_float(t, name, dtype);
    return t.contiguous();
  };
  const at::Tensor grad_out_c = per_ray(grad_out, "grad_out", {N, C});
  const at::Tensor grad_opacity_c = per_ray(grad_opacity, "grad_opacity", {N});
  const at::Tensor grad_depth_c = per_ray(grad_depth, "grad_depth", {N});
  const at::Tensor grad_weights_c = per_ray(grad_weights, "grad_weights", {S});
  const at::Tensor out_c = per_ray(out, "out", {N, C});
  const at::Tensor opacity_c = per_ray(opacity, "opacity", {N});
  const at::Tensor depth_c = per_ray(depth, "depth", {N});
  const at::Tensor weights_c = per_ray(weights, "weights", {S});
  auto grad_sigmas = at::zeros_like(in.sigmas);
  auto grad_values = at::zeros_like(in.values);
  if (N == 0) return {grad_sigmas, grad_values};
  AT_DISPATCH_FLOATING_TYPES(dtype, "composite_bwd", [&] {
    AT_DISPATCH_INDEX_TYPES(in.packed_info.scalar_type(), "composite_bwd", [&] {
      const CompositeBackwardArgs<scalar_t, index_t> args{
          composite_args<scalar_t, index_t>(in, out_c, opacity_c, depth_c, weights_c),
          grad_out_c.data_ptr<scalar_t>(), grad_opacity_c.data_ptr<scalar_t>(),
          grad_depth_c.data_ptr<scalar_t>(), grad_weights_c.data_ptr<scalar_t>(),
          grad_sigmas.data_ptr<scalar_t>(), grad_values.data_ptr<scalar_t>()};
      launch(args);
    });
  });
  return {grad_sigmas, grad_values};
}

}  // namespace fastnerf
