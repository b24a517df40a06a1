// project_features: CUDA kernels and launchers, one thread per (view, point, channel) with the
// channel fastest, so neighbouring threads read neighbouring channels of a channels-last map.
// No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "project_features/project_features.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void project_forward_kernel(const ProjectFeaturesArgs<scalar_t> a) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= a.n_views * a.n_points * a.channels) return;
  const int64_t c = index % a.channels, item = index / a.channels;
  int64_t offsets[4];
  scalar_t weights[4];
  project_taps(a, item / a.n_points, item % a.n_points, offsets, weights);
  scalar_t sum = 0;
  for (int tap = 0; tap < 4; ++tap) {
    if (weights[tap] != scalar_t(0)) sum += weights[tap] * a.features[offsets[tap] + c * a.stride_channel];
  }
  a.out[index] = sum;
}

template <typename scalar_t>
__global__ void project_backward_kernel(const ProjectFeaturesArgs<scalar_t> a) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= a.n_views * a.n_points * a.channels) return;
  const int64_t c = index % a.channels, item = index / a.channels;
  int64_t offsets[4];
  scalar_t weights[4];
  project_taps(a, item / a.n_points, item % a.n_points, offsets, weights);
  const scalar_t grad = a.grad_out[index];
  for (int tap = 0; tap < 4; ++tap) {
    if (weights[tap] != scalar_t(0)) atomicAdd(a.grad_features + offsets[tap] + c * a.stride_channel, weights[tap] * grad);
  }
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }
}  // namespace

template <typename scalar_t>
int project_features_forward_cuda(const ProjectFeaturesArgs<scalar_t>& args, void* stream) {
  const int64_t n = args.n_views * args.n_points * args.channels;
  if (n == 0) return 0;
  project_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  return int(cudaGetLastError());
}

template <typename scalar_t>
int project_features_backward_cuda(const ProjectFeaturesArgs<scalar_t>& args, void* stream) {
  const int64_t n = args.n_views * args.n_points * args.channels;
  if (n == 0) return 0;
  project_backward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  return int(cudaGetLastError());
}

template int project_features_forward_cuda(const ProjectFeaturesArgs<float>&, void*);
template int project_features_forward_cuda(const ProjectFeaturesArgs<double>&, void*);
template int project_features_backward_cuda(const ProjectFeaturesArgs<float>&, void*);
template int project_features_backward_cuda(const ProjectFeaturesArgs<double>&, void*);

}  // namespace fastnerf
