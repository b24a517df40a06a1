// sh_encode: schemas and the CPU kernel (directions in parallel, at::parallel_for), the degree a
// compile-time constant.
//
// Blocks of kBlock directions: x, y, z are split into three arrays, the shared per-point math
// writes each output (or gradient) as a column of the block, so the loop over the block's points
// vectorises, and the columns are then interleaved into the rows of out (grad_directions).
#include <torch/library.h>

#include <algorithm>

#include "cpu_loops.h"
#include "sh_encode/sh_encode_torch.h"

namespace fastnerf {

namespace {
constexpr int64_t kBlock = 64;  // directions per block: the column buffers (16 x 64) stay in L1
// Directions per task: a few ns each, so inputs below this (an inference chunk of view
// directions) run on the calling thread and pay no thread-pool wake-up.
constexpr int64_t kGrain = 8192;

// Directions [p0, p0 + n) of d [N, 3] into xs, ys, zs [n].
template <typename scalar_t>
void split_xyz(const scalar_t* d, int64_t n, scalar_t* xs, scalar_t* ys, scalar_t* zs) {
  for (int64_t p = 0; p < n; ++p) {
    xs[p] = d[3 * p];
    ys[p] = d[3 * p + 1];
    zs[p] = d[3 * p + 2];
  }
}

template <int kDegree, typename scalar_t>
void forward_points(const ShEncodeArgs<scalar_t>& a, int64_t begin, int64_t end, scalar_t* out) {
  constexpr int64_t W = kDegree * kDegree;
  scalar_t xs[kBlock], ys[kBlock], zs[kBlock], columns[W * kBlock];
  for (int64_t p0 = begin; p0 < end; p0 += kBlock) {
    const int64_t n = std::min(kBlock, end - p0);
    split_xyz(a.directions + 3 * p0, n, xs, ys, zs);
    for (int64_t p = 0; p < n; ++p) sh_forward_point<kDegree>(xs[p], ys[p], zs[p], columns + p, kBlock);
    scalar_t* rows = out + p0 * W;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t k = 0; k < W; ++k) rows[p * W + k] = columns[k * kBlock + p];
  }
}

template <int kDegree, typename scalar_t>
void backward_points(const ShEncodeArgs<scalar_t>& a, const scalar_t* grad_out, int64_t begin, int64_t end,
                     scalar_t* grad_directions) {
  constexpr int64_t W = kDegree * kDegree;
  scalar_t xs[kBlock], ys[kBlock], zs[kBlock], grad_columns[W * kBlock], grad_xyz[3 * kBlock];
  for (int64_t p0 = begin; p0 < end; p0 += kBlock) {
    const int64_t n = std::min(kBlock, end - p0);
    split_xyz(a.directions + 3 * p0, n, xs, ys, zs);
    const scalar_t* rows = grad_out + p0 * W;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t k = 0; k < W; ++k) grad_columns[k * kBlock + p] = rows[p * W + k];
    for (int64_t p = 0; p < n; ++p)
      sh_backward_point<kDegree>(xs[p], ys[p], zs[p], grad_columns + p, grad_xyz + p, kBlock);
    scalar_t* grad = grad_directions + 3 * p0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t c = 0; c < 3; ++c) grad[3 * p + c] = grad_xyz[c * kBlock + p];
  }
}

template <typename scalar_t>
void forward_cpu(const ShEncodeArgs<scalar_t>& args, scalar_t* out) {
  with_sh_degree(args.degree, [&](auto tag) {
    at::parallel_for(0, args.n_points, kGrain, [&](int64_t begin, int64_t end) {
      forward_points<decltype(tag)::value>(args, begin, end, out);
    });
  });
}

template <typename scalar_t>
void backward_cpu(const ShEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_directions) {
  with_sh_degree(args.degree, [&](auto tag) {
    at::parallel_for(0, args.n_points, kGrain, [&](int64_t begin, int64_t end) {
      backward_points<decltype(tag)::value>(args, grad_out, begin, end, grad_directions);
    });
  });
}
}  // namespace

at::Tensor sh_encode_cpu(const at::Tensor& directions, int64_t degree) {
  return sh_encode_forward_impl(directions, degree, [](const auto& args, auto* out) { forward_cpu(args, out); });
}

at::Tensor sh_encode_bwd_cpu(const at::Tensor& grad_out, const at::Tensor& directions, int64_t degree) {
  return sh_encode_backward_impl(grad_out, directions, degree,
                                 [](const auto& args, const auto* grad_out_ptr, auto* grad_directions) {
                                   backward_cpu(args, grad_out_ptr, grad_directions);
                                 });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("sh_encode(Tensor directions, int degree) -> Tensor");
  m.def("sh_encode_bwd(Tensor grad_out, Tensor directions, int degree) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("sh_encode", &sh_encode_cpu);
  m.impl("sh_encode_bwd", &sh_encode_bwd_cpu);
}

}  // namespace fastnerf
