// Torch-side helpers for the *_cuda.cpp bindings: the current stream and launch error checks.
// Only c10 headers, so CI can syntax-check the bindings with a CPU build of torch.
#pragma once

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

namespace fastnerf {

inline void* current_stream() { return static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream()); }

inline void check_launch(int code, const char* op) {
  TORCH_CHECK(code == 0, op, ": CUDA launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(code)));
}

}  // namespace fastnerf
