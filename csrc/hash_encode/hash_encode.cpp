// hash_encode: schemas and the CPU kernels (block kernels in hash_encode_cpu.h).
//   forward:     points in parallel ranges; inside a range, level by level.
//   table grad:  levels in parallel: each thread owns whole levels of grad_table, so the
//                scatter-add needs no atomics and is deterministic (points in index order, the
//                same sums whatever the thread count). Skipped when the table needs no gradient.
//   x grad:      points in parallel ranges (each point's 3 sums are its own).
// hash_encode_cpu.h is compiled twice: for the baseline x86-64 (SSE2) and, where the compiler
// can, for AVX2, picked at run time by what the CPU supports. Neither copy uses FMA: results are
// bitwise those of the scalar math in hash_encode.h on every machine.
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "cpu_loops.h"
#include "hash_encode/hash_encode.h"
#include "hash_encode/hash_encode_cpu_common.h"
#include "hash_encode/hash_encode_torch.h"

#define FASTNERF_CPU_CAPABILITY baseline
#include "hash_encode/hash_encode_cpu.h"
#undef FASTNERF_CPU_CAPABILITY

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FASTNERF_HASH_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2")
#define FASTNERF_CPU_CAPABILITY avx2
#include "hash_encode/hash_encode_cpu.h"
#undef FASTNERF_CPU_CAPABILITY
#pragma GCC pop_options
#endif

namespace fastnerf {

namespace {

bool cpu_has_avx2() {
#ifdef FASTNERF_HASH_AVX2
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

// FASTNERF_HASH_CALL(fn, args...): the AVX2 copy of fn where the CPU has it, else the baseline.
#ifdef FASTNERF_HASH_AVX2
#define FASTNERF_HASH_CALL(fn, ...) (cpu_has_avx2() ? avx2::fn(__VA_ARGS__) : baseline::fn(__VA_ARGS__))
#else
#define FASTNERF_HASH_CALL(fn, ...) baseline::fn(__VA_ARGS__)
#endif

template <typename scalar_t>
void hash_forward_cpu(const HashEncodeArgs<scalar_t>& args, scalar_t* out) {
  dispatch_features(args.features, [&](auto features) {
    constexpr int kF = decltype(features)::value;
    at::parallel_for(0, args.n_points, kHashBlock, [&](int64_t begin, int64_t end) {
      FASTNERF_HASH_CALL(hash_forward_range<kF>, args, begin, end, out);
    });
  });
}

template <typename scalar_t>
void hash_backward_cpu(const HashEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_table,
                       scalar_t* grad_x) {
  dispatch_features(args.features, [&](auto features) {
    constexpr int kF = decltype(features)::value;
    if (grad_table != nullptr) {
      at::parallel_for(0, args.n_levels, 1, [&](int64_t level_begin, int64_t level_end) {
        FASTNERF_HASH_CALL(hash_backward_table_levels<kF>, args, grad_out, level_begin, level_end, grad_table);
      });
    }
    if (grad_x != nullptr) {
      at::parallel_for(0, args.n_points, kHashBlock, [&](int64_t begin, int64_t end) {
        FASTNERF_HASH_CALL(hash_backward_x_range<kF>, args, grad_out, begin, end, grad_x);
      });
    }
  });
}
}  // namespace

at::Tensor hash_encode_cpu(const at::Tensor& x, const at::Tensor& table, at::IntArrayRef resolutions) {
  return hash_encode_forward_impl(x, table, resolutions,
                                  [](const auto& args, auto* out) { hash_forward_cpu(args, out); });
}

std::tuple<at::Tensor, at::Tensor> hash_encode_bwd_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                       const at::Tensor& table, at::IntArrayRef resolutions,
                                                       bool x_requires_grad, bool table_requires_grad) {
  return hash_encode_backward_impl(grad_out, x, table, resolutions, x_requires_grad, table_requires_grad,
                                   [](const auto& args, const auto* grad_out_ptr, auto* grad_table, auto* grad_x) {
                                     hash_backward_cpu(args, grad_out_ptr, grad_table, grad_x);
                                   });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("hash_encode(Tensor x, Tensor table, int[] resolutions) -> Tensor");
  m.def(
      "hash_encode_bwd(Tensor grad_out, Tensor x, Tensor table, int[] resolutions, bool x_requires_grad,"
      " bool table_requires_grad=True) -> (Tensor grad_x, Tensor grad_table)");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("hash_encode", &hash_encode_cpu);
  m.impl("hash_encode_bwd", &hash_encode_bwd_cpu);
}

}  // namespace fastnerf
