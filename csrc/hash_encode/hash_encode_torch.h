// hash_encode's torch-side pieces shared by the CPU and CUDA bindings: checks, allocation, type
// dispatch and argument packing. The device part is the `launch(...)` callback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <tuple>

#include "checks.h"
#include "hash_encode/hash_encode.h"

namespace fastnerf {

struct HashEncodeInputs {
  at::Tensor x, table;  // contiguous
};

inline HashEncodeInputs check_hash_encode_inputs(const at::Tensor& x, const at::Tensor& table,
                                                 at::IntArrayRef resolutions) {
  check_tensor(x, "x", 2, x.device());
  check_size(x, "x", 1, 3);
  check_tensor(table, "table", 3, x.device());
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "x must be float32 or float64, got ", dtype);
  check_float(table, "table", dtype);
  const int64_t L = table.size(0), T = table.size(1);
  TORCH_CHECK(L >= 1 && L <= kHashMaxLevels, "table must have 1..", kHashMaxLevels, " levels, got shape ",
              table.sizes());
  TORCH_CHECK(T > 0 && (T & (T - 1)) == 0 && T <= (int64_t(1) << 31),
              "table.shape[1] must be a power of two <= 2^31, got shape ", table.sizes());
  TORCH_CHECK(table.size(2) >= 1, "table must have >= 1 feature, got shape ", table.sizes());
  TORCH_CHECK(int64_t(resolutions.size()) == L, "resolutions must have one entry per level (", L, "), got ",
              resolutions.size());
  for (const int64_t res : resolutions) {
    TORCH_CHECK(res >= 1 && res <= (int64_t(1) << 20), "resolutions must be in [1, 2^20], got ", res);
  }
  return {x.contiguous(), table.contiguous()};
}

template <typename scalar_t>
HashEncodeArgs<scalar_t> hash_encode_args(const HashEncodeInputs& in, at::IntArrayRef resolutions) {
  HashEncodeArgs<scalar_t> args{};
  args.x = in.x.data_ptr<scalar_t>();
  args.table = in.table.data_ptr<scalar_t>();
  args.n_points = in.x.size(0);
  args.n_levels = in.table.size(0);
  args.table_size = in.table.size(1);
  args.features = in.table.size(2);
  for (int64_t l = 0; l < args.n_levels; ++l) args.resolutions[l] = int32_t(resolutions[l]);
  return args;
}

// launch: a generic callable taking `(const HashEncodeArgs<scalar_t>&, scalar_t* out [N, L*F])`.
template <typename Launch>
at::Tensor hash_encode_forward_impl(const at::Tensor& x, const at::Tensor& table, at::IntArrayRef resolutions,
                                    const Launch& launch) {
  const auto in = check_hash_encode_inputs(x, table, resolutions);
  const int64_t N = in.x.size(0), L = in.table.size(0), F = in.table.size(2);
  auto out = at::empty({N, L * F}, in.table.options());
  if (N == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "hash_encode", [&] {
    launch(hash_encode_args<scalar_t>(in, resolutions), out.data_ptr<scalar_t>());
  });
  return out;
}

// launch: a generic callable taking `(const HashEncodeArgs<scalar_t>&, const scalar_t* grad_out,
// scalar_t* grad_table [L, T, F] (zeroed) or nullptr, scalar_t* grad_x [N, 3] (zeroed) or nullptr)`.
// A gradient that is not required is not computed: grad_x is then zeros, grad_table an empty [0].
template <typename Launch>
std::tuple<at::Tensor, at::Tensor> hash_encode_backward_impl(const at::Tensor& grad_out, const at::Tensor& x,
                                                             const at::Tensor& table, at::IntArrayRef resolutions,
                                                             bool x_requires_grad, bool table_requires_grad,
                                                             const Launch& launch) {
  const auto in = check_hash_encode_inputs(x, table, resolutions);
  const int64_t N = in.x.size(0), L = in.table.size(0), F = in.table.size(2);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == N && grad_out.size(1) == L * F,
              "grad_out must have shape [", N, ", ", L * F, "], got ", grad_out.sizes());
  TORCH_CHECK(grad_out.device() == in.x.device(), "grad_out must be on ", in.x.device());
  check_float(grad_out, "grad_out", in.x.scalar_type());
  const at::Tensor grad_out_c = grad_out.contiguous();
  auto grad_table = table_requires_grad ? at::zeros_like(in.table) : at::empty({0}, in.table.options());
  auto grad_x = at::zeros_like(in.x);
  if (N == 0 || !(x_requires_grad || table_requires_grad)) return {grad_x, grad_table};
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "hash_encode_bwd", [&] {
    launch(hash_encode_args<scalar_t>(in, resolutions), grad_out_c.data_ptr<scalar_t>(),
           table_requires_grad ? grad_table.data_ptr<scalar_t>() : nullptr,
           x_requires_grad ? grad_x.data_ptr<scalar_t>() : nullptr);
  });
  return {grad_x, grad_table};
}

}  // namespace fastnerf
