// freq_encode's torch-side pieces shared by the CPU and CUDA bindings: checks, allocation, type
// dispatch and argument packing. The device part is the `launch(...)` callback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include "checks.h"
#include "freq_encode/freq_encode.h"

namespace fastnerf {

inline at::Tensor check_freq_encode_inputs(const at::Tensor& x, int64_t n_freqs) {
  check_tensor(x, "x", 2, x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be float32 or float64, got ",
              x.scalar_type());
  TORCH_CHECK(n_freqs >= 0 && n_freqs <= 32, "n_freqs must be in 0..32, got ", n_freqs);
  return x.contiguous();
}

template <typename scalar_t>
FreqEncodeArgs<scalar_t> freq_encode_args(const at::Tensor& x, int64_t n_freqs, bool include_input) {
  return {x.data_ptr<scalar_t>(), x.size(0), x.size(1), n_freqs, include_input};
}

// launch: a generic callable taking `(const FreqEncodeArgs<scalar_t>&, scalar_t* out [N, W])`.
template <typename Launch>
at::Tensor freq_encode_forward_impl(const at::Tensor& x, int64_t n_freqs, bool include_input, const Launch& launch) {
  const at::Tensor xc = check_freq_encode_inputs(x, n_freqs);
  const int64_t width = xc.size(1) * ((include_input ? 1 : 0) + 2 * n_freqs);
  auto out = at::empty({xc.size(0), width}, xc.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "freq_encode", [&] {
    launch(freq_encode_args<scalar_t>(xc, n_freqs, include_input), out.data_ptr<scalar_t>());
  });
  return out;
}

// launch: a generic callable taking `(const FreqEncodeArgs<scalar_t>&, const scalar_t* grad_out,
// scalar_t* grad_x [N, D])`.
template <typename Launch>
at::Tensor freq_encode_backward_impl(const at::Tensor& grad_out, const at::Tensor& x, int64_t n_freqs,
                                     bool include_input, const Launch& launch) {
  const at::Tensor xc = check_freq_encode_inputs(x, n_freqs);
  const int64_t width = xc.size(1) * ((include_input ? 1 : 0) + 2 * n_freqs);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == xc.size(0) && grad_out.size(1) == width,
              "grad_out must have shape [", xc.size(0), ", ", width, "], got ", grad_out.sizes());
  TORCH_CHECK(grad_out.device() == xc.device(), "grad_out must be on ", xc.device());
  check_float(grad_out, "grad_out", xc.scalar_type());
  const at::Tensor grad_out_c = grad_out.contiguous();
  auto grad_x = at::empty_like(xc);
  if (grad_x.numel() == 0) return grad_x;
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "freq_encode_bwd", [&] {
    launch(freq_encode_args<scalar_t>(xc, n_freqs, include_input), grad_out_c.data_ptr<scalar_t>(),
           grad_x.data_ptr<scalar_t>());
  });
  return grad_x;
}

}  // namespace fastnerf
