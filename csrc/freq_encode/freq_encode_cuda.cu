// freq_encode: CUDA kernels and launchers, one thread per (point, dim) element running the
// shared per-element math. No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "freq_encode/freq_encode.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void freq_forward_kernel(const FreqEncodeArgs<scalar_t> args, scalar_t* __restrict__ out) {
  const int64_t element = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (element >= args.n_points * args.dims) return;
  freq_forward_element(args, element / args.dims, element % args.dims, out);
}

template <typename scalar_t>
__global__ void freq_backward_kernel(const FreqEncodeArgs<scalar_t> args, const scalar_t* __restrict__ grad_out,
                                     scalar_t* __restrict__ grad_x) {
  const int64_t element = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (element >= args.n_points * args.dims) return;
  grad_x[element] = freq_backward_element(args, grad_out, element / args.dims, element % args.dims);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }
}  // namespace

template <typename scalar_t>
int freq_encode_forward_cuda(const FreqEncodeArgs<scalar_t>& args, scalar_t* out, void* stream) {
  const int64_t elements = args.n_points * args.dims;
  if (elements == 0) return 0;
  freq_forward_kernel<<<blocks_for(elements), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args, out);
  return int(cudaGetLastError());
}

template <typename scalar_t>
int freq_encode_backward_cuda(const FreqEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_x,
                              void* stream) {
  const int64_t elements = args.n_points * args.dims;
  if (elements == 0) return 0;
  freq_backward_kernel<<<blocks_for(elements), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args, grad_out,
                                                                                                   grad_x);
  return int(cudaGetLastError());
}

#define FASTNERF_INSTANTIATE(scalar_t)                                                                 \
  template int freq_encode_forward_cuda(const FreqEncodeArgs<scalar_t>&, scalar_t*, void*);            \
  template int freq_encode_backward_cuda(const FreqEncodeArgs<scalar_t>&, const scalar_t*, scalar_t*, \
                                         void*);
FASTNERF_INSTANTIATE(float)
FASTNERF_INSTANTIATE(double)
#undef FASTNERF_INSTANTIATE

}  // namespace fastnerf
