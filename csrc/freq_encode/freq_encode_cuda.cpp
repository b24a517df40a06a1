// freq_encode: the CUDA binding (device guard, stream, launch check); kernels live in freq_encode_cuda.cu.
#include <torch/library.h>

#include "cuda_launch.h"
#include "freq_encode/freq_encode_torch.h"

namespace fastnerf {

at::Tensor freq_encode_cuda(const at::Tensor& x, int64_t n_freqs, bool include_input) {
  const c10::cuda::CUDAGuard guard(x.device());
  return freq_encode_forward_impl(x, n_freqs, include_input, [](const auto& args, auto* out) {
    check_launch(freq_encode_forward_cuda(args, out, current_stream()), "freq_encode");
  });
}

at::Tensor freq_encode_bwd_cuda(const at::Tensor& grad_out, const at::Tensor& x, int64_t n_freqs, bool include_input) {
  const c10::cuda::CUDAGuard guard(x.device());
  return freq_encode_backward_impl(grad_out, x, n_freqs, include_input,
                                   [](const auto& args, const auto* grad_out_ptr, auto* grad_x) {
                                     check_launch(freq_encode_backward_cuda(args, grad_out_ptr, grad_x, current_stream()),
                                                  "freq_encode_bwd");
                                   });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) {
  m.impl("freq_encode", &freq_encode_cuda);
  m.impl("freq_encode_bwd", &freq_encode_bwd_cuda);
}

}  // namespace fastnerf
