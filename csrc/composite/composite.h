// Volume compositing of packed samples: the per-ray math shared by the CPU and CUDA kernels.
//
//   alpha_i = 1 - exp(-sigma_i * dt_i),  T_i = prod_{j<i} (1 - alpha_j),  w_i = T_i * alpha_i
//   out = sum w_i v_i,  opacity = sum w_i,  depth = sum w_i * (t_start_i + t_end_i) / 2
//
// Backward, with g_i = dL/dw_i = grad_w_i + <grad_out, v_i> + grad_opacity + grad_depth * mid_i:
//   dL/dv_i     = w_i * grad_out
//   dL/dsigma_k = dt_k * (T_{k+1} g_k - sum_{i>k} w_i g_i)
// sum_i w_i g_i is known from the forward outputs (<grad_out, out> + grad_opacity * opacity +
// grad_depth * depth + sum_i w_i grad_w_i), so the suffix sum is that total minus a running
// prefix: the backward reads each value row once and stores nothing beyond the outputs.
#pragma once

#include <type_traits>

#include "common.h"

namespace fastnerf {

// Raw pointers to contiguous tensors; S samples, C channels, N rays.
template <typename scalar_t, typename index_t>
struct CompositeForwardArgs {
  const index_t* packed_info;  // [N, 2] (start, count)
  int64_t n_rays, n_samples, channels;
  const scalar_t* sigmas;    // [S]
  const scalar_t* values;    // [S, C]
  const scalar_t* t_starts;  // [S]
  const scalar_t* t_ends;    // [S]
  scalar_t* out;             // [N, C]
  scalar_t* opacity;         // [N]
  scalar_t* depth;           // [N]
  scalar_t* weights;         // [S]
};

template <typename scalar_t, typename index_t>
struct CompositeBackwardArgs {
  CompositeForwardArgs<scalar_t, index_t> fwd;  // inputs and (read-only here) forward outputs
  const scalar_t* grad_out;      // [N, C]
  const scalar_t* grad_opacity;  // [N]
  const scalar_t* grad_depth;    // [N]
  const scalar_t* grad_weights;  // [S]
  scalar_t* grad_sigmas;         // [S]
  scalar_t* grad_values;         // [S, C]
};

// A ray whose samples leave [0, S) is never read: kernels check bounds even after validation.
template <typename index_t>
FASTNERF_HD bool ray_in_bounds(const index_t* packed_info, int64_t ray, int64_t n_samples) {
  const int64_t start = packed_info[2 * ray], count = packed_info[2 * ray + 1];
  return start >= 0 && count >= 0 && start + count <= n_samples;
}

// -alpha_i = expm1(-sigma_i dt_i) for samples block..block+n-1, in a loop of its own so the CPU
// compiler vectorises it (expm1 keeps small alphas exact); the serial scan follows.
template <typename scalar_t, typename index_t>
FASTNERF_HD void block_neg_alphas(const CompositeForwardArgs<scalar_t, index_t>& a, int64_t block, int64_t n,
                                  scalar_t* neg_alphas) {
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = block + j;
    neg_alphas[j] = fn_expm1(-a.sigmas[i] * (a.t_ends[i] - a.t_starts[i]));
  }
}

// kChannels > 0: C is that compile-time constant and the accumulators live in registers
// (colour, C = 3, is the hot case); 0: any C, accumulated in the output row.
// kBlock > 1 (CPU): the samples go in blocks of kBlock, first the block's alphas in one loop with
// no dependence between samples (it vectorises: fn_expm1 is branch-free on the host), then the
// serial transmittance scan over the block. CUDA uses kBlock = 1: no buffer, same arithmetic.
template <int kChannels, int kBlock = 1, typename scalar_t, typename index_t>
FASTNERF_HD void composite_forward_ray(const CompositeForwardArgs<scalar_t, index_t>& a, int64_t ray) {
  const int64_t C = kChannels > 0 ? kChannels : a.channels;
  constexpr int kAcc = kChannels > 0 ? kChannels : 1;
  scalar_t acc[kAcc];
  scalar_t* out = a.out + ray * C;
  scalar_t* sum = kChannels > 0 ? acc : out;
  for (int64_t c = 0; c < C; ++c) sum[c] = scalar_t(0);
  const int64_t start = a.packed_info[2 * ray], end = start + a.packed_info[2 * ray + 1];
  scalar_t transmittance = scalar_t(1), opacity = scalar_t(0), depth = scalar_t(0);
  scalar_t neg_alphas[kBlock];  // -alpha_i = expm1(-sigma_i dt_i): expm1 keeps small alphas exact
  for (int64_t block = start; block < end; block += kBlock) {
    const int64_t n = end - block < kBlock ? end - block : kBlock;
    block_neg_alphas(a, block, n, neg_alphas);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = block + j;
      const scalar_t neg_alpha = neg_alphas[j];
      const scalar_t w = -transmittance * neg_alpha;
      a.weights[i] = w;
      const scalar_t* v = a.values + i * C;
      for (int64_t c = 0; c < C; ++c) sum[c] += w * v[c];
      opacity += w;
      depth += w * scalar_t(0.5) * (a.t_starts[i] + a.t_ends[i]);
      transmittance *= scalar_t(1) + neg_alpha;
    }
  }
  if (kChannels > 0) {
    for (int64_t c = 0; c < C; ++c) out[c] = acc[c];
  }
  a.opacity[ray] = opacity;
  a.depth[ray] = depth;
}

template <int kChannels, int kBlock = 1, typename scalar_t, typename index_t>
FASTNERF_HD void composite_backward_ray(const CompositeBackwardArgs<scalar_t, index_t>& b, int64_t ray) {
  const CompositeForwardArgs<scalar_t, index_t>& a = b.fwd;
  const int64_t C = kChannels > 0 ? kChannels : a.channels;
  const int64_t start = a.packed_info[2 * ray], end = start + a.packed_info[2 * ray + 1];
  const scalar_t* grad_out = b.grad_out + ray * C;
  const scalar_t grad_opacity = b.grad_opacity[ray], grad_depth = b.grad_depth[ray];

  scalar_t total = grad_opacity * a.opacity[ray] + grad_depth * a.depth[ray];
  for (int64_t c = 0; c < C; ++c) total += grad_out[c] * a.out[ray * C + c];
  for (int64_t i = start; i < end; ++i) total += a.weights[i] * b.grad_weights[i];

  scalar_t transmittance = scalar_t(1), prefix = scalar_t(0);
  scalar_t neg_alphas[kBlock];  // as in the forward: a vectorised loop, then the serial scan
  for (int64_t block = start; block < end; block += kBlock) {
    const int64_t n = end - block < kBlock ? end - block : kBlock;
    block_neg_alphas(a, block, n, neg_alphas);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = block + j;
      const scalar_t dt = a.t_ends[i] - a.t_starts[i];
      const scalar_t neg_alpha = neg_alphas[j];
      const scalar_t w = -transmittance * neg_alpha;
      const scalar_t* v = a.values + i * C;
      scalar_t* grad_v = b.grad_values + i * C;
      scalar_t dot = scalar_t(0);
      for (int64_t c = 0; c < C; ++c) {
        dot += grad_out[c] * v[c];
        grad_v[c] = w * grad_out[c];
      }
      const scalar_t mid = scalar_t(0.5) * (a.t_starts[i] + a.t_ends[i]);
      const scalar_t g = b.grad_weights[i] + dot + grad_opacity + grad_depth * mid;
      prefix += w * g;
      transmittance *= scalar_t(1) + neg_alpha;  // now T_{i+1}
      b.grad_sigmas[i] = dt * (transmittance * g - (total - prefix));
    }
  }
}

// Calls fn(std::integral_constant<int, K>) with K = C for the channel counts worth a
// specialisation, else K = 0 (any C).
template <typename Fn>
inline void dispatch_channels(int64_t channels, const Fn& fn) {
  switch (channels) {
    case 1: fn(std::integral_constant<int, 1>()); break;
    case 3: fn(std::integral_constant<int, 3>()); break;
    case 4: fn(std::integral_constant<int, 4>()); break;
    default: fn(std::integral_constant<int, 0>()); break;
  }
}

// CUDA launchers (composite_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
template <typename scalar_t, typename index_t>
int composite_forward_cuda(const CompositeForwardArgs<scalar_t, index_t>& args, void* stream);
template <typename scalar_t, typename index_t>
int composite_backward_cuda(const CompositeBackwardArgs<scalar_t, index_t>& args, void* stream);

}  // namespace fastnerf
