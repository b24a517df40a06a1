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

__global__ void build_reach_kernel(const EmptySpace space, int axis, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) build_reach_line(space, axis, i);
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

// The prepare pass: `occupied` in bricks, and each brick's reach (EmptySpace in empty_space_march.h).
void prepare(const MarchArgs& march, const EmptySpace& e, cudaStream_t stream) {
  const int64_t n_bricks = int64_t(e.res[0]) * e.res[1] * e.res[2];
  build_brick_kernel<<<blocks_for(n_bricks), kThreads, 0, stream>>>(march, e, n_bricks);
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t lines = reach_lines(e, axis);
    build_reach_kernel<<<blocks_for(lines), kThreads, 0, stream>>>(e, axis, lines);
  }
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
