// hash_encode: CUDA kernels and launchers, one thread per (point, level) running the shared
// per-point math; grid.y is the level. Table (and x) gradients by atomicAdd; either may be null
// (not required).
// No torch headers: nvcc compiles this on any machine.
#include <cuda_runtime.h>

#include "hash_encode/hash_encode.h"

namespace fastnerf {

namespace {
constexpr int kThreads = 256;

struct AtomicAdd {
  template <typename T>
  __host__ __device__ static void add(T* ptr, T value) {
#ifdef __CUDA_ARCH__
    atomicAdd(ptr, value);  // double atomicAdd: sm_60 and later
#else
    *ptr += value;
#endif
  }
};

template <int kFeatures, typename scalar_t>
__global__ void hash_forward_kernel(const HashEncodeArgs<scalar_t> args, scalar_t* __restrict__ out) {
  const int64_t point = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int level = int(blockIdx.y);
  if (point >= args.n_points || level >= args.n_levels) return;
  hash_forward_point_level<kFeatures>(args, point, level, out);
}

template <int kFeatures, typename scalar_t>
__global__ void hash_backward_kernel(const HashEncodeArgs<scalar_t> args, const scalar_t* __restrict__ grad_out,
                                     scalar_t* __restrict__ grad_table, scalar_t* __restrict__ grad_x) {
  const int64_t point = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int level = int(blockIdx.y);
  if (point >= args.n_points || level >= args.n_levels) return;
  if (grad_table != nullptr) hash_backward_table_point_level<kFeatures, AtomicAdd>(args, grad_out, point, level, grad_table);
  if (grad_x != nullptr) {
    scalar_t sum[3] = {scalar_t(0), scalar_t(0), scalar_t(0)};
    hash_backward_x_point_level<kFeatures>(args, grad_out, point, level, sum);
    for (int d = 0; d < 3; ++d) atomicAdd(grad_x + 3 * point + d, sum[d]);
  }
}

dim3 grid_for(int64_t n_points, int64_t n_levels) {
  return dim3(unsigned((n_points + kThreads - 1) / kThreads), unsigned(n_levels));
}
}  // namespace

template <typename scalar_t>
int hash_encode_forward_cuda(const HashEncodeArgs<scalar_t>& args, scalar_t* out, void* stream) {
  if (args.n_points == 0) return 0;
  if (args.n_levels < 1 || args.n_levels > kHashMaxLevels) return int(cudaErrorInvalidValue);
  dispatch_features(args.features, [&](auto features) {
    hash_forward_kernel<decltype(features)::value>
        <<<grid_for(args.n_points, args.n_levels), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args, out);
  });
  return int(cudaGetLastError());
}

template <typename scalar_t>
int hash_encode_backward_cuda(const HashEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_table,
                              scalar_t* grad_x, void* stream) {
  if (args.n_points == 0) return 0;
  if (args.n_levels < 1 || args.n_levels > kHashMaxLevels) return int(cudaErrorInvalidValue);
  dispatch_features(args.features, [&](auto features) {
    hash_backward_kernel<decltype(features)::value>
        <<<grid_for(args.n_points, args.n_levels), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            args, grad_out, grad_table, grad_x);
  });
  return int(cudaGetLastError());
}

#define FASTNERF_INSTANTIATE(scalar_t)                                                                \
  template int hash_encode_forward_cuda(const HashEncodeArgs<scalar_t>&, scalar_t*, void*);           \
  template int hash_encode_backward_cuda(const HashEncodeArgs<scalar_t>&, const scalar_t*, scalar_t*, \
                                         scalar_t*, void*);
FASTNERF_INSTANTIATE(float)
FASTNERF_INSTANTIATE(double)
#undef FASTNERF_INSTANTIATE

}  // namespace fastnerf
