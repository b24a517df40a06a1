// march_rays: CUDA kernels and launchers, one thread per ray running the shared per-ray math
// (count pass, then fill pass). No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "march_rays/march_rays.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 128;

__global__ void march_count_kernel(const MarchArgs args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.n_rays) return;
  march_count_ray(args, ray);
}

__global__ void march_fill_kernel(const MarchArgs args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.n_rays) return;
  march_fill_ray(args, ray);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }
}  // namespace

int march_rays_count_cuda(const MarchArgs& args, void* stream) {
  if (args.n_rays == 0) return 0;
  march_count_kernel<<<blocks_for(args.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  return int(cudaGetLastError());
}

int march_rays_fill_cuda(const MarchArgs& args, void* stream) {
  if (args.n_rays == 0) return 0;
  march_fill_kernel<<<blocks_for(args.n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  return int(cudaGetLastError());
}

}  // namespace fastnerf
