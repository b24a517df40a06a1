// composite: schemas and the CPU kernel (one task per ray, at::parallel_for).
#include <torch/library.h>

#include "composite/composite_torch.h"
#include "cpu_loops.h"

namespace fastnerf {

constexpr int kBlock = 64;  // samples whose alphas are computed in one vectorised loop

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_cpu(
    const at::Tensor& sigmas, const at::Tensor& values, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& packed_info) {
  return composite_forward_impl(sigmas, values, t_starts, t_ends, packed_info, [](const auto& args) {
    dispatch_channels(args.channels, [&](auto channels) {
      for_each_ray_cpu(args.packed_info, args.n_rays, args.n_samples,
                       [&](int64_t ray) { composite_forward_ray<decltype(channels)::value, kBlock>(args, ray); });
    });
  });
}

std::tuple<at::Tensor, at::Tensor> composite_bwd_cpu(
    const at::Tensor& grad_out, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& grad_weights, const at::Tensor& sigmas, const at::Tensor& values,
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& packed_info, const at::Tensor& out,
    const at::Tensor& opacity, const at::Tensor& depth, const at::Tensor& weights) {
  return composite_backward_impl(
      grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values, t_starts, t_ends, packed_info, out,
      opacity, depth, weights, [](const auto& args) {
        dispatch_channels(args.fwd.channels, [&](auto channels) {
          for_each_ray_cpu(args.fwd.packed_info, args.fwd.n_rays, args.fwd.n_samples,
                           [&](int64_t ray) { composite_backward_ray<decltype(channels)::value, kBlock>(args, ray); });
        });
      });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def(
      "composite(Tensor sigmas, Tensor values, Tensor t_starts, Tensor t_ends, Tensor packed_info)"
      " -> (Tensor out, Tensor opacity, Tensor depth, Tensor weights)");
  m.def(
      "composite_bwd(Tensor grad_out, Tensor grad_opacity, Tensor grad_depth, Tensor grad_weights,"
      " Tensor sigmas, Tensor values, Tensor t_starts, Tensor t_ends, Tensor packed_info,"
      " Tensor out, Tensor opacity, Tensor depth, Tensor weights) -> (Tensor grad_sigmas, Tensor grad_values)");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("composite", &composite_cpu);
  m.impl("composite_bwd", &composite_bwd_cpu);
}

}  // namespace fastnerf
