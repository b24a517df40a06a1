// hash_encode: the CUDA binding (device guard, stream, launch check); kernels live in hash_encode_cuda.cu.
#include <torch/library.h>

#include "cuda_launch.h"
#include "hash_encode/hash_encode_torch.h"

namespace fastnerf {

at::Tensor hash_encode_cuda(const at::Tensor& x, const at::Tensor& table, at::IntArrayRef resolutions) {
  const c10::cuda::CUDAGuard guard(x.device());
  return hash_encode_forward_impl(x, table, resolutions, [](const auto& args, auto* out) {
    check_launch(hash_encode_forward_cuda(args, out, current_stream()), "hash_encode");
  });
}

std::tuple<at::Tensor, at::Tensor> hash_encode_bwd_cuda(const at::Tensor& grad_out, const at::Tensor& x,
                                                        const at::Tensor& table, at::IntArrayRef resolutions,
                                                        bool x_requires_grad, bool table_requires_grad) {
  const c10::cuda::CUDAGuard guard(x.device());
  return hash_encode_backward_impl(
      grad_out, x, table, resolutions, x_requires_grad, table_requires_grad,
      [](const auto& args, const auto* grad_out_ptr, auto* grad_table, auto* grad_x) {
        check_launch(hash_encode_backward_cuda(args, grad_out_ptr, grad_table, grad_x, current_stream()),
                     "hash_encode_bwd");
      });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) {
  m.impl("hash_encode", &hash_encode_cuda);
  m.impl("hash_encode_bwd", &hash_encode_bwd_cuda);
}

}  // namespace fastnerf
