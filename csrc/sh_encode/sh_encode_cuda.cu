// sh_encode: CUDA kernels and launchers, one thread per direction running the shared per-point
// math, the degree a template parameter. No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "sh_encode/sh_encode.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 256;

template <int kDegree, typename scalar_t>
__global__ void sh_forward_kernel(const ShEncodeArgs<scalar_t> args, scalar_t* __restrict__ out) {
  const int64_t point = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (point >= args.n_points) return;
  sh_forward_at<kDegree>(args, point, out);
}

template <int kDegree, typename scalar_t>
__global__ void sh_backward_kernel(const ShEncodeArgs<scalar_t> args, const scalar_t* __restrict__ grad_out,
                                   scalar_t* __restrict__ grad_directions) {
  const int64_t point = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (point >= args.n_points) return;
  sh_backward_at<kDegree>(args, grad_out, point, grad_directions);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }
}  // namespace

template <typename scalar_t>
int sh_encode_forward_cuda(const ShEncodeArgs<scalar_t>& args, scalar_t* out, void* stream) {
  if (args.n_points == 0) return 0;
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  with_sh_degree(args.degree, [&](auto tag) {
    sh_forward_kernel<decltype(tag)::value><<<blocks_for(args.n_points), kThreads, 0, cuda_stream>>>(args, out);
  });
  return int(cudaGetLastError());
}

template <typename scalar_t>
int sh_encode_backward_cuda(const ShEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_directions,
                            void* stream) {
  if (args.n_points == 0) return 0;
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  with_sh_degree(args.degree, [&](auto tag) {
    sh_backward_kernel<decltype(tag)::value>
        <<<blocks_for(args.n_points), kThreads, 0, cuda_stream>>>(args, grad_out, grad_directions);
  });
  return int(cudaGetLastError());
}

#define FASTNERF_INSTANTIATE(scalar_t)                                                              \
  template int sh_encode_forward_cuda(const ShEncodeArgs<scalar_t>&, scalar_t*, void*);             \
  template int sh_encode_backward_cuda(const ShEncodeArgs<scalar_t>&, const scalar_t*, scalar_t*, \
                                       void*);
FASTNERF_INSTANTIATE(float)
FASTNERF_INSTANTIATE(double)
#undef FASTNERF_INSTANTIATE

}  // namespace fastnerf
