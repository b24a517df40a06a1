// baked_render: CUDA kernels and launchers, one thread per ray running the shared per-ray math;
// value gradients by atomicAdd. No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "baked_render/baked_render.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 128;

struct AtomicAdd {
  template <typename T>
  __device__ static void add(T* ptr, T value) {
    atomicAdd(ptr, value);  // double atomicAdd: sm_60 and later
  }
};

__global__ void build_brick_kernel(const MarchArgs march, const EmptySpace space, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) build_brick(march, space, i);
}

__global__ void build_any_kernel(const EmptySpace space, int level, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) build_any(space, level, i);
}

__global__ void build_level_kernel(const EmptySpace space, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) build_level(space, i);
}

template <int kChannels, typename scalar_t>
__global__ void baked_forward_kernel(const BakedRenderArgs<scalar_t> args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.march.n_rays) return;
  baked_forward_ray<kChannels>(args, ray);
}

template <int kChannels, typename scalar_t>
__global__ void baked_backward_kernel(const BakedRenderBackwardArgs<scalar_t> args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.fwd.march.n_rays) return;
  baked_backward_ray<kChannels, AtomicAdd>(args, ray);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

// The prepare pass: `occupied` in bricks with empty-space levels (EmptySpace in empty_space_march.h).
void prepare(const MarchArgs& march, const EmptySpace& e, cudaStream_t stream) {
  auto count = [&](int l) { return int64_t(e.res[l][0]) * e.res[l][1] * e.res[l][2]; };
  build_brick_kernel<<<blocks_for(count(0)), kThreads, 0, stream>>>(march, e, count(0));
  for (int l = 1; l < kLevels; ++l) build_any_kernel<<<blocks_for(count(l)), kThreads, 0, stream>>>(e, l, count(l));
  build_level_kernel<<<blocks_for(count(0)), kThreads, 0, stream>>>(e, count(0));
}
}  // namespace

template <typename scalar_t>
int baked_render_forward_cuda(const BakedRenderArgs<scalar_t>& args, void* stream) {
  if (args.march.n_rays == 0) return 0;
  if (!args.space.ready) prepare(args.march, args.space, static_cast<cudaStream_t>(stream));
  dispatch_baked_channels(args.channels, [&](auto channels) {
    baked_forward_kernel<decltype(channels)::value>
        <<<blocks_for(args.march.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  });
  return int(cudaGetLastError());
}

template <typename scalar_t>
int baked_render_backward_cuda(const BakedRenderBackwardArgs<scalar_t>& args, void* stream) {
  if (args.fwd.march.n_rays == 0) return 0;
  if (!args.fwd.space.ready) prepare(args.fwd.march, args.fwd.space, static_cast<cudaStream_t>(stream));
  dispatch_baked_channels(args.fwd.channels, [&](auto channels) {
    baked_backward_kernel<decltype(channels)::value>
        <<<blocks_for(args.fwd.march.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  });
  return int(cudaGetLastError());
}

template int baked_render_forward_cuda(const BakedRenderArgs<float>&, void*);
template int baked_render_forward_cuda(const BakedRenderArgs<double>&, void*);
template int baked_render_backward_cuda(const BakedRenderBackwardArgs<float>&, void*);
template int baked_render_backward_cuda(const BakedRenderBackwardArgs<double>&, void*);

}  // namespace fastnerf
