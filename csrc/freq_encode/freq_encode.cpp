// freq_encode: schemas and the CPU kernel (points in parallel, at::parallel_for).
//
// float: blocks of kBlock (point, dim) elements; per frequency, sin and cos of the whole block
// go into stack buffers with fn_sincos_poly (one vectorised loop, no libm calls), then are
// scattered to / gathered against the output rows. double (and D > kBlock): the shared
// per-element math with libm.
#include <torch/library.h>

#include <algorithm>

#include "cpu_loops.h"
#include "freq_encode/freq_encode_torch.h"

namespace fastnerf {

namespace {
constexpr int64_t kBlock = 256;  // elements per block: the buffers stay in L1

// sin_out, cos_out [n] = sin, cos of scale * x [n]; max_abs = max |x|.
void sincos_block(const float* x, int64_t n, float scale, float max_abs, float* sin_out, float* cos_out) {
  if (max_abs * scale <= kSinCosPolyMax) {
    for (int64_t i = 0; i < n; ++i) fn_sincos_poly(scale * x[i], sin_out + i, cos_out + i);
  } else {  // rare (|2^k x| > 8192): the polynomial's reduction would lose bits
    for (int64_t i = 0; i < n; ++i) {
      sin_out[i] = sinf(scale * x[i]);
      cos_out[i] = cosf(scale * x[i]);
    }
  }
}

float max_abs_of(const float* x, int64_t n) {
  float m = 0.f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));  // NaN skipped: the polynomial keeps it
  return m;
}

// Points [begin, end) of out [N, W]. kDims > 0: D is that constant (3, the hot case), so the
// scatter into the rows unrolls; 0: any D.
template <int kDims>
void forward_points(const FreqEncodeArgs<float>& a, int64_t begin, int64_t end, float* out) {
  const int64_t D = kDims > 0 ? kDims : a.dims, W = a.out_dim(), waves = a.include_input ? D : 0, block_points = kBlock / D;
  float sin_buf[kBlock], cos_buf[kBlock];
  for (int64_t p0 = begin; p0 < end; p0 += block_points) {
    const int64_t n_points = std::min(block_points, end - p0), n = n_points * D;
    const float* x = a.x + p0 * D;
    float* rows = out + p0 * W;
    if (a.include_input) {
      for (int64_t p = 0; p < n_points; ++p)
        for (int64_t d = 0; d < D; ++d) rows[p * W + d] = x[p * D + d];
    }
    const float max_abs = max_abs_of(x, n);
    for (int64_t k = 0; k < a.n_freqs; ++k) {
      sincos_block(x, n, float(int64_t(1) << k), max_abs, sin_buf, cos_buf);
      float* sin_col = rows + waves + 2 * k * D;
      float* cos_col = sin_col + D;
      for (int64_t p = 0; p < n_points; ++p) {
        for (int64_t d = 0; d < D; ++d) {
          sin_col[p * W + d] = sin_buf[p * D + d];
          cos_col[p * W + d] = cos_buf[p * D + d];
        }
      }
    }
  }
}

// Points [begin, end): grad_x [N, D] from grad_out [N, W]; kDims as in forward_points.
template <int kDims>
void backward_points(const FreqEncodeArgs<float>& a, const float* grad_out, int64_t begin, int64_t end,
                     float* grad_x) {
  const int64_t D = kDims > 0 ? kDims : a.dims, W = a.out_dim(), waves = a.include_input ? D : 0, block_points = kBlock / D;
  float sin_buf[kBlock], cos_buf[kBlock], grad[kBlock];
  for (int64_t p0 = begin; p0 < end; p0 += block_points) {
    const int64_t n_points = std::min(block_points, end - p0), n = n_points * D;
    const float* x = a.x + p0 * D;
    const float* rows = grad_out + p0 * W;
    for (int64_t p = 0; p < n_points; ++p)
      for (int64_t d = 0; d < D; ++d) grad[p * D + d] = a.include_input ? rows[p * W + d] : 0.f;
    const float max_abs = max_abs_of(x, n);
    for (int64_t k = 0; k < a.n_freqs; ++k) {
      const float scale = float(int64_t(1) << k);
      sincos_block(x, n, scale, max_abs, sin_buf, cos_buf);
      const float* grad_sin = rows + waves + 2 * k * D;
      const float* grad_cos = grad_sin + D;
      for (int64_t p = 0; p < n_points; ++p) {
        for (int64_t d = 0; d < D; ++d) {
          const int64_t i = p * D + d;
          grad[i] += scale * (grad_sin[p * W + d] * cos_buf[i] - grad_cos[p * W + d] * sin_buf[i]);
        }
      }
    }
    std::copy(grad, grad + n, grad_x + p0 * D);
  }
}

template <typename scalar_t>
void forward_cpu(const FreqEncodeArgs<scalar_t>& args, scalar_t* out) {
  at::parallel_for(0, args.n_points, 1024, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (args.dims == 3) return forward_points<3>(args, begin, end, out);
      if (args.dims <= kBlock) return forward_points<0>(args, begin, end, out);
    }
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t d = 0; d < args.dims; ++d) freq_forward_element(args, p, d, out);
    }
  });
}

template <typename scalar_t>
void backward_cpu(const FreqEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_x) {
  at::parallel_for(0, args.n_points, 1024, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (args.dims == 3) return backward_points<3>(args, grad_out, begin, end, grad_x);
      if (args.dims <= kBlock) return backward_points<0>(args, grad_out, begin, end, grad_x);
    }
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t d = 0; d < args.dims; ++d) grad_x[p * args.dims + d] = freq_backward_element(args, grad_out, p, d);
    }
  });
}
}  // namespace

at::Tensor freq_encode_cpu(const at::Tensor& x, int64_t n_freqs, bool include_input) {
  return freq_encode_forward_impl(x, n_freqs, include_input,
                                  [](const auto& args, auto* out) { forward_cpu(args, out); });
}

at::Tensor freq_encode_bwd_cpu(const at::Tensor& grad_out, const at::Tensor& x, int64_t n_freqs, bool include_input) {
  return freq_encode_backward_impl(
      grad_out, x, n_freqs, include_input,
      [](const auto& args, const auto* grad_out_ptr, auto* grad_x) { backward_cpu(args, grad_out_ptr, grad_x); });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("freq_encode(Tensor x, int n_freqs, bool include_input) -> Tensor");
  m.def("freq_encode_bwd(Tensor grad_out, Tensor x, int n_freqs, bool include_input) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("freq_encode", &freq_encode_cpu);
  m.impl("freq_encode_bwd", &freq_encode_bwd_cpu);
}

}  // namespace fastnerf
