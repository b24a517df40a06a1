// Frequency (positional) encoding: the per-point math shared by the CPU and CUDA kernels.
//
//   out = [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(n-1) x), cos(2^(n-1) x)], each block D wide
//   grad_x = [include_input] grad_x_block + sum_k 2^k (grad_sin_k cos(2^k x) - grad_cos_k sin(2^k x))
// The scales 2^k are exact, so 2^k x rounds identically on every backend (sin/cos themselves may
// differ in the last ulp between libm, CUDA and Triton).
#pragma once

#include "common.h"

namespace fastnerf {

// Raw pointers to contiguous tensors; N points of D dims, n_freqs frequencies.
template <typename scalar_t>
struct FreqEncodeArgs {
  const scalar_t* x;  // [N, D]
  int64_t n_points, dims, n_freqs;
  bool include_input;
  int64_t out_dim() const { return dims * ((include_input ? 1 : 0) + 2 * n_freqs); }
};

FASTNERF_HD float fn_sin(float x) { return sinf(x); }
FASTNERF_HD double fn_sin(double x) { return sin(x); }
FASTNERF_HD float fn_cos(float x) { return cosf(x); }
FASTNERF_HD double fn_cos(double x) { return cos(x); }

// Element (point, d): writes its include_input and 2 * n_freqs output slots of out [N, W].
template <typename scalar_t>
FASTNERF_HD void freq_forward_element(const FreqEncodeArgs<scalar_t>& a, int64_t point, int64_t d, scalar_t* out) {
  const int64_t D = a.dims, W = (a.include_input ? D : 0) + 2 * a.n_freqs * D;
  const scalar_t v = a.x[point * D + d];
  scalar_t* row = out + point * W;
  if (a.include_input) row[d] = v;
  scalar_t* waves = row + (a.include_input ? D : 0);
  for (int64_t k = 0; k < a.n_freqs; ++k) {
    const scalar_t scaled = scalar_t(int64_t(1) << k) * v;
    waves[2 * k * D + d] = fn_sin(scaled);
    waves[(2 * k + 1) * D + d] = fn_cos(scaled);
  }
}

template <typename scalar_t>
FASTNERF_HD scalar_t freq_backward_element(const FreqEncodeArgs<scalar_t>& a, const scalar_t* grad_out, int64_t point,
                                           int64_t d) {
  const int64_t D = a.dims, W = (a.include_input ? D : 0) + 2 * a.n_freqs * D;
  const scalar_t v = a.x[point * D + d];
  const scalar_t* row = grad_out + point * W;
  scalar_t grad = a.include_input ? row[d] : scalar_t(0);
  const scalar_t* waves = row + (a.include_input ? D : 0);
  for (int64_t k = 0; k < a.n_freqs; ++k) {
    const scalar_t scale = scalar_t(int64_t(1) << k);
    const scalar_t scaled = scale * v;
    grad += scale * (waves[2 * k * D + d] * fn_cos(scaled) - waves[(2 * k + 1) * D + d] * fn_sin(scaled));
  }
  return grad;
}

// CUDA launchers (freq_encode_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
template <typename scalar_t>
int freq_encode_forward_cuda(const FreqEncodeArgs<scalar_t>& args, scalar_t* out, void* stream);
template <typename scalar_t>
int freq_encode_backward_cuda(const FreqEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_x,
                              void* stream);

}  // namespace fastnerf
