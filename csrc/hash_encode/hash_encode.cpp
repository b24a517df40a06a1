// hash_encode: schemas and the CPU kernels.
//   forward:     points in parallel blocks; inside a block, level by level (one level's table
//                rows stay in cache across the block).
//   table grad:  levels in parallel: each thread owns whole levels of grad_table, so the
//                scatter-add needs no atomics and is deterministic.
//   x grad:      points in parallel (each point's 3 sums are its own).
#include <torch/library.h>

#include <algorithm>

#include "cpu_loops.h"
#include "hash_encode/hash_encode_torch.h"

namespace fastnerf {

namespace {
constexpr int64_t kPointBlock = 512;

template <typename scalar_t>
void hash_forward_cpu(const HashEncodeArgs<scalar_t>& args, scalar_t* out) {
  dispatch_features(args.features, [&](auto features) {
    constexpr int kF = decltype(features)::value;
    at::parallel_for(0, args.n_points, kPointBlock, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; block += kPointBlock) {
        const int64_t block_end = std::min(end, block + kPointBlock);
        for (int level = 0; level < args.n_levels; ++level) {
          for (int64_t p = block; p < block_end; ++p) hash_forward_point_level<kF>(args, p, level, out);
        }
      }
    });
  });
}

template <typename scalar_t>
void hash_backward_cpu(const HashEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_table,
                       scalar_t* grad_x) {
  dispatch_features(args.features, [&](auto features) {
    constexpr int kF = decltype(features)::value;
    at::parallel_for(0, args.n_levels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t level = begin; level < end; ++level) {
        for (int64_t p = 0; p < args.n_points; ++p) {
          hash_backward_table_point_level<kF, PlainAdd>(args, grad_out, p, int(level), grad_table);
        }
      }
    });
    if (grad_x == nullptr) return;
    at::parallel_for(0, args.n_points, kPointBlock, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        scalar_t sum[3] = {scalar_t(0), scalar_t(0), scalar_t(0)};
        for (int level = 0; level < args.n_levels; ++level) hash_backward_x_point_level<kF>(args, grad_out, p, level, sum);
        for (int d = 0; d < 3; ++d) grad_x[3 * p + d] = sum[d];
      }
    });
  });
}
}  // namespace

at::Tensor hash_encode_cpu(const at::Tensor& x, const at::Tensor& table, at::IntArrayRef resolutions) {
  return hash_encode_forward_impl(x, table, resolutions,
                                  [](const auto& args, auto* out) { hash_forward_cpu(args, out); });
}

std::tuple<at::Tensor, at::Tensor> hash_encode_bwd_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                       const at::Tensor& table, at::IntArrayRef resolutions,
                                                       bool x_requires_grad) {
  return hash_encode_backward_impl(grad_out, x, table, resolutions, x_requires_grad,
                                   [](const auto& args, const auto* grad_out_ptr, auto* grad_table, auto* grad_x) {
                                     hash_backward_cpu(args, grad_out_ptr, grad_table, grad_x);
                                   });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("hash_encode(Tensor x, Tensor table, int[] resolutions) -> Tensor");
  m.def(
      "hash_encode_bwd(Tensor grad_out, Tensor x, Tensor table, int[] resolutions, bool x_requires_grad)"
      " -> (Tensor grad_x, Tensor grad_table)");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("hash_encode", &hash_encode_cpu);
  m.impl("hash_encode_bwd", &hash_encode_bwd_cpu);
}

}  // namespace fastnerf
