// sh_encode: the CUDA binding (device guard, stream, launch check); kernels live in sh_encode_cuda.cu.
#include <torch/library.h>

#include "cuda_launch.h"
#include "sh_encode/sh_encode_torch.h"

namespace fastnerf {

at::Tensor sh_encode_cuda(const at::Tensor& directions, int64_t degree) {
  const c10::cuda::CUDAGuard guard(directions.device());
  return sh_encode_forward_impl(directions, degree, [](const auto& args, auto* out) {
    check_launch(sh_encode_forward_cuda(args, out, current_stream()), "sh_encode");
  });
}

at::Tensor sh_encode_bwd_cuda(const at::Tensor& grad_out, const at::Tensor& directions, int64_t degree) {
  const c10::cuda::CUDAGuard guard(directions.device());
  return sh_encode_backward_impl(grad_out, directions, degree,
                                 [](const auto& args, const auto* grad_out_ptr, auto* grad_directions) {
                                   check_launch(sh_encode_backward_cuda(args, grad_out_ptr, grad_directions,
                                                                        current_stream()),
                                                "sh_encode_bwd");
                                 });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) {
  m.impl("sh_encode", &sh_encode_cuda);
  m.impl("sh_encode_bwd", &sh_encode_bwd_cuda);
}

}  // namespace fastnerf
