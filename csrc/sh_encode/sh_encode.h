// Real spherical harmonics of view directions: the per-point math shared by the CPU and CUDA kernels.
//
//   out [degree^2] = the real SH of bands 0..degree-1 of (x, y, z), tiny-cuda-nn's constants,
//   signs and order (fastnerf/reference/sh_encode.py is the spec; degree in 1..4)
//   grad [3] = sum_k grad_out_k d out_k / d (x, y, z), in closed form
// The forward evaluates the reference's products in the reference's order, so where the compiler
// does not contract (host code, -ffp-contract=off) it rounds as PyTorch does.
#pragma once

#include "common.h"

namespace fastnerf {

// Raw pointers to contiguous tensors; N directions, bands 0..degree-1.
template <typename scalar_t>
struct ShEncodeArgs {
  const scalar_t* directions;  // [N, 3]
  int64_t n_points, degree;
};

constexpr int kShMaxDegree = 4;

namespace sh {
constexpr double kC0 = 0.28209479177387814, kC1 = 0.48860251190291987, kC2 = 1.0925484305920792,
                 kC3 = 0.94617469575755997, kC4 = 0.31539156525251999, kC5 = 0.54627421529603959,
                 kC6 = 0.59004358992664352, kC7 = 2.8906114426405538, kC8 = 0.45704579946446572,
                 kC9 = 0.3731763325901154, kC10 = 1.4453057213202769;
}  // namespace sh

// out[k * stride], k < kDegree^2, of one direction (x, y, z): stride 1 writes a row; the CPU
// kernel writes a block of points column by column (stride = the block's length).
template <int kDegree, typename scalar_t>
FASTNERF_HD void sh_forward_point(scalar_t x, scalar_t y, scalar_t z, scalar_t* out, int64_t stride = 1) {
  using T = scalar_t;
  out[0 * stride] = T(sh::kC0);
  if (kDegree > 1) {
    out[1 * stride] = T(-sh::kC1) * y;
    out[2 * stride] = T(sh::kC1) * z;
    out[3 * stride] = T(-sh::kC1) * x;
  }
  if (kDegree > 2) {
    const T xy = x * y, yz = y * z, xz = x * z, x2 = x * x, y2 = y * y, z2 = z * z;
    out[4 * stride] = T(sh::kC2) * xy;
    out[5 * stride] = T(-sh::kC2) * yz;
    out[6 * stride] = T(sh::kC3) * z2 - T(sh::kC4);
    out[7 * stride] = T(-sh::kC2) * xz;
    out[8 * stride] = T(sh::kC5) * (x2 - y2);
    if (kDegree > 3) {
      out[9 * stride] = T(sh::kC6) * y * (y2 - T(3) * x2);
      out[10 * stride] = T(sh::kC7) * xy * z;
      out[11 * stride] = T(sh::kC8) * y * (T(1) - T(5) * z2);
      out[12 * stride] = T(sh::kC9) * z * (T(5) * z2 - T(3));
      out[13 * stride] = T(sh::kC8) * x * (T(1) - T(5) * z2);
      out[14 * stride] = T(sh::kC10) * z * (x2 - y2);
      out[15 * stride] = T(sh::kC6) * x * (T(3) * y2 - x2);
    }
  }
}

// grad[c * stride], c < 3, = d <grad_out, out> / d (x, y, z) of one direction, from
// grad_out[k * stride], k < kDegree^2 (stride as in sh_forward_point).
template <int kDegree, typename scalar_t>
FASTNERF_HD void sh_backward_point(scalar_t x, scalar_t y, scalar_t z, const scalar_t* grad_out, scalar_t* grad,
                                   int64_t stride = 1) {
  using T = scalar_t;
  const auto g = [&](int k) { return grad_out[k * stride]; };
  T gx = T(0), gy = T(0), gz = T(0);  // band 0 is constant
  if (kDegree > 1) {
    gx -= T(sh::kC1) * g(3);
    gy -= T(sh::kC1) * g(1);
    gz += T(sh::kC1) * g(2);
  }
  if (kDegree > 2) {
    gx += T(sh::kC2) * (y * g(4) - z * g(7)) + T(2 * sh::kC5) * x * g(8);
    gy += T(sh::kC2) * (x * g(4) - z * g(5)) - T(2 * sh::kC5) * y * g(8);
    gz += T(2 * sh::kC3) * z * g(6) - T(sh::kC2) * (y * g(5) + x * g(7));
    if (kDegree > 3) {
      const T xy = x * y, yz = y * z, xz = x * z, x2 = x * x, y2 = y * y, z2 = z * z;
      const T one_minus_5z2 = T(1) - T(5) * z2, y2_minus_x2 = y2 - x2;
      gx += T(-6 * sh::kC6) * xy * g(9) + T(sh::kC7) * yz * g(10) + T(sh::kC8) * one_minus_5z2 * g(13) +
            T(2 * sh::kC10) * xz * g(14) + T(3 * sh::kC6) * y2_minus_x2 * g(15);
      gy += T(3 * sh::kC6) * y2_minus_x2 * g(9) + T(sh::kC7) * xz * g(10) + T(sh::kC8) * one_minus_5z2 * g(11) -
            T(2 * sh::kC10) * yz * g(14) + T(6 * sh::kC6) * xy * g(15);
      gz += T(sh::kC7) * xy * g(10) - T(10 * sh::kC8) * yz * g(11) + T(sh::kC9) * (T(15) * z2 - T(3)) * g(12) -
            T(10 * sh::kC8) * xz * g(13) - T(sh::kC10) * y2_minus_x2 * g(14);
    }
  }
  grad[0] = gx;
  grad[stride] = gy;
  grad[2 * stride] = gz;
}

// Point p of the forward: its row of out [N, degree^2].
template <int kDegree, typename scalar_t>
FASTNERF_HD void sh_forward_at(const ShEncodeArgs<scalar_t>& a, int64_t p, scalar_t* out) {
  const scalar_t* d = a.directions + 3 * p;
  sh_forward_point<kDegree>(d[0], d[1], d[2], out + p * (kDegree * kDegree));
}

// Point p of the backward: its row of grad_directions [N, 3] from grad_out [N, degree^2].
template <int kDegree, typename scalar_t>
FASTNERF_HD void sh_backward_at(const ShEncodeArgs<scalar_t>& a, const scalar_t* grad_out, int64_t p,
                                scalar_t* grad_directions) {
  const scalar_t* d = a.directions + 3 * p;
  sh_backward_point<kDegree>(d[0], d[1], d[2], grad_out + p * (kDegree * kDegree), grad_directions + 3 * p);
}

// The degree as a compile-time constant: with_sh_degree(degree, fn) calls fn(ShDegree<degree>{}),
// and fn reads it as decltype(tag)::value. Host code only (it picks the kernel to run).
template <int kDegree>
struct ShDegree {
  static constexpr int value = kDegree;
};

template <typename Fn>
inline void with_sh_degree(int64_t degree, const Fn& fn) {
  switch (degree) {
    case 1: fn(ShDegree<1>{}); break;
    case 2: fn(ShDegree<2>{}); break;
    case 3: fn(ShDegree<3>{}); break;
    default: fn(ShDegree<4>{}); break;  // degree is checked to be in 1..4 before any kernel runs
  }
}

// CUDA launchers (sh_encode_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
template <typename scalar_t>
int sh_encode_forward_cuda(const ShEncodeArgs<scalar_t>& args, scalar_t* out, void* stream);
template <typename scalar_t>
int sh_encode_backward_cuda(const ShEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_directions,
                            void* stream);

}  // namespace fastnerf
