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

// sin and cos of a float without libm calls, branch-free, so that a loop of them vectorises (the
// CPU kernel's float path). Cody-Waite reduction by pi/2 in three float parts (j * part is exact
// for |j| < 2^13), then cephes' sinf/cosf minimax polynomials on [-pi/4, pi/4]. Absolute error
// under 1e-7 for |x| <= kSinCosPolyMax (2^k x is exact, so this is the whole error); beyond that
// the reduction loses bits and callers must use sinf/cosf. NaN in gives NaN out.
constexpr float kSinCosPolyMax = 8192.f;
FASTNERF_HD void fn_sincos_poly(float x, float* sin_out, float* cos_out) {
  const float kRound = 12582912.f;  // 1.5 * 2^23: adding then subtracting it rounds to an integer
  const float j = (x * 0.636619772367581f + kRound) - kRound;  // nearest multiple of pi/2
  const float r = ((x - j * 1.5703125f) - j * 4.837512969970703125e-4f) - j * 7.549789948768648e-8f;
  const float z = r * r;
  const float s = r + r * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  const float c =
      1.f - 0.5f * z + z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
  const int quadrant = int(j);  // j is integral; only its low two bits matter
  const float sin_r = (quadrant & 1) ? c : s, cos_r = (quadrant & 1) ? s : c;
  *sin_out = (quadrant & 2) ? -sin_r : sin_r;
  *cos_out = ((quadrant + 1) & 2) ? -cos_r : cos_r;
}

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
