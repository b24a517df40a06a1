// composite: the CUDA binding (device guard, stream, launch check); kernels live in composite_cuda.cu.
#include <torch/library.h>

#include "composite/composite_torch.h"
#include "cuda_launch.h"

namespace fastnerf {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_cuda(
    const at::Tensor& sigmas, const at::Tensor& values, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& packed_info) {
  const c10::cuda::CUDAGuard guard(sigmas.device());
  return composite_forward_impl(sigmas, values, t_starts, t_ends, packed_info, [](const auto& args) {
    check_launch(composite_forward_cuda(args, current_stream()), "composite");
  });
}

std::tuple<at::Tensor, at::Tensor> composite_bwd_cuda(
    const at::Tensor& grad_out, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& grad_weights, const at::Tensor& sigmas, const at::Tensor& values,
    const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& packed_info, const at::Tensor& out,
    const at::Tensor& opacity, const at::Tensor& depth, const at::Tensor& weights) {
  const c10::cuda::CUDAGuard guard(sigmas.device());
  return composite_backward_impl(
      grad_out, grad_opacity, grad_depth, grad_weights, sigmas, values, t_starts, t_ends, packed_info, out,
      opacity, depth, weights, [](const auto& args) {
        check_launch(composite_backward_cuda(args, current_stream()), "composite_bwd");
      });
}

TORCH_LIBRARY_IMPL(fastnerf, CUDA, m) {
  m.impl("composite", &composite_cuda);
  m.impl("composite_bwd", &composite_bwd_cuda);
}

}  // namespace fastnerf
