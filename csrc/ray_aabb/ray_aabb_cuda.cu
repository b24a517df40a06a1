// ray_aabb: the CUDA kernel and launcher, one thread per ray running the shared per-ray math.
// No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "ray_aabb/ray_aabb.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 256;

__global__ void ray_aabb_kernel(const RayAabbArgs args) {
  const int64_t ray = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray >= args.n_rays) return;
  ray_aabb_ray(args, ray);
}
}  // namespace

int ray_aabb_cuda(const RayAabbArgs& args, void* stream) {
  if (args.n_rays == 0) return 0;
  const unsigned blocks = unsigned((args.n_rays + kThreads - 1) / kThreads);
  ray_aabb_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  return int(cudaGetLastError());
}

}  // namespace fastnerf
