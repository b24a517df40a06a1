// composite: CUDA kernels and launchers, one thread per ray running the shared per-ray math.
// No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "composite/composite.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 256;

template <int kChannels, typename scalar_t, typename index_t>
__global__ void composite_forward_kernel(const CompositeForwardArgs<scalar_t, index_t> args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.n_rays) return;
  if (!ray_in_bounds(args.packed_info, ray, args.n_samples)) {
    // Validated in Python already; a direct call with bad packed_info gets NaN, never a stray read.
    const scalar_t nan = scalar_t(NAN);
    for (int64_t c = 0; c < args.channels; ++c) args.out[ray * args.channels + c] = nan;
    args.opacity[ray] = nan;
    args.depth[ray] = nan;
    return;
  }
  composite_forward_ray<kChannels>(args, ray);
}

template <int kChannels, typename scalar_t, typename index_t>
__global__ void composite_backward_kernel(const CompositeBackwardArgs<scalar_t, index_t> args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.fwd.n_rays || !ray_in_bounds(args.fwd.packed_info, ray, args.fwd.n_samples)) return;
  composite_backward_ray<kChannels>(args, ray);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }
}  // namespace

template <typename scalar_t, typename index_t>
int composite_forward_cuda(const CompositeForwardArgs<scalar_t, index_t>& args, void* stream) {
  if (args.n_rays == 0) return 0;
  dispatch_channels(args.channels, [&](auto channels) {
    composite_forward_kernel<decltype(channels)::value>
        <<<blocks_for(args.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  });
  return int(cudaGetLastError());
}

template <typename scalar_t, typename index_t>
int composite_backward_cuda(const CompositeBackwardArgs<scalar_t, index_t>& args, void* stream) {
  if (args.fwd.n_rays == 0) return 0;
  dispatch_channels(args.fwd.channels, [&](auto channels) {
    composite_backward_kernel<decltype(channels)::value>
        <<<blocks_for(args.fwd.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  });
  return int(cudaGetLastError());
}

#define FASTNERF_INSTANTIATE(scalar_t, index_t)                                                   \
  template int composite_forward_cuda(const CompositeForwardArgs<scalar_t, index_t>&, void*); \
  template int composite_backward_cuda(const CompositeBackwardArgs<scalar_t, index_t>&, void*);
FASTNERF_INSTANTIATE(float, int32_t)
FASTNERF_INSTANTIATE(float, int64_t)
FASTNERF_INSTANTIATE(double, int32_t)
FASTNERF_INSTANTIATE(double, int64_t)
#undef FASTNERF_INSTANTIATE

}  // namespace fastnerf
