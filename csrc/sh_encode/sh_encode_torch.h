// sh_encode's torch-side pieces shared by the CPU and CUDA bindings: checks, allocation, type
// dispatch and argument packing. The device part is the `launch(...)` callback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include "checks.h"
#include "sh_encode/sh_encode.h"

namespace fastnerf {

inline at::Tensor check_sh_encode_inputs(const at::Tensor& directions, int64_t degree) {
  check_tensor(directions, "directions", 2, directions.device());
  check_size(directions, "directions", 1, 3);
  TORCH_CHECK(directions.scalar_type() == at::kFloat || directions.scalar_type() == at::kDouble,
              "directions must be float32 or float64, got ", directions.scalar_type());
  TORCH_CHECK(degree >= 1 && degree <= kShMaxDegree, "degree must be in 1..", kShMaxDegree, ", got ", degree);
  return directions.contiguous();
}

template <typename scalar_t>
ShEncodeArgs<scalar_t> sh_encode_args(const at::Tensor& directions, int64_t degree) {
  return {directions.data_ptr<scalar_t>(), directions.size(0), degree};
}

// launch: a generic callable taking `(const ShEncodeArgs<scalar_t>&, scalar_t* out [N, degree^2])`.
template <typename Launch>
at::Tensor sh_encode_forward_impl(const at::Tensor& directions, int64_t degree, const Launch& launch) {
  const at::Tensor dc = check_sh_encode_inputs(directions, degree);
  auto out = at::empty({dc.size(0), degree * degree}, dc.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(dc.scalar_type(), "sh_encode", [&] {
    launch(sh_encode_args<scalar_t>(dc, degree), out.data_ptr<scalar_t>());
  });
  return out;
}

// launch: a generic callable taking `(const ShEncodeArgs<scalar_t>&, const scalar_t* grad_out,
// scalar_t* grad_directions [N, 3])`.
template <typename Launch>
at::Tensor sh_encode_backward_impl(const at::Tensor& grad_out, const at::Tensor& directions, int64_t degree,
                                   const Launch& launch) {
  const at::Tensor dc = check_sh_encode_inputs(directions, degree);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == dc.size(0) && grad_out.size(1) == degree * degree,
              "grad_out must have shape [", dc.size(0), ", ", degree * degree, "], got ", grad_out.sizes());
  TORCH_CHECK(grad_out.device() == dc.device(), "grad_out must be on ", dc.device());
  check_float(grad_out, "grad_out", dc.scalar_type());
  const at::Tensor grad_out_c = grad_out.contiguous();
  auto grad_directions = at::empty_like(dc);
  if (grad_directions.numel() == 0) return grad_directions;
  AT_DISPATCH_FLOATING_TYPES(dc.scalar_type(), "sh_encode_bwd", [&] {
    launch(sh_encode_args<scalar_t>(dc, degree), grad_out_c.data_ptr<scalar_t>(),
           grad_directions.data_ptr<scalar_t>());
  });
  return grad_directions;
}

}  // namespace fastnerf
