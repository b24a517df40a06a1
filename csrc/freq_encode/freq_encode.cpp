// freq_encode: schemas and the CPU kernel (points in parallel, at::parallel_for).
#include <torch/library.h>

#include "cpu_loops.h"
#include "freq_encode/freq_encode_torch.h"

namespace fastnerf {

at::Tensor freq_encode_cpu(const at::Tensor& x, int64_t n_freqs, bool include_input) {
  return freq_encode_forward_impl(x, n_freqs, include_input, [](const auto& args, auto* out) {
    at::parallel_for(0, args.n_points, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        for (int64_t d = 0; d < args.dims; ++d) freq_forward_element(args, p, d, out);
      }
    });
  });
}

at::Tensor freq_encode_bwd_cpu(const at::Tensor& grad_out, const at::Tensor& x, int64_t n_freqs, bool include_input) {
  return freq_encode_backward_impl(grad_out, x, n_freqs, include_input,
                                   [](const auto& args, const auto* grad_out_ptr, auto* grad_x) {
                                     at::parallel_for(0, args.n_points, 1024, [&](int64_t begin, int64_t end) {
                                       for (int64_t p = begin; p < end; ++p) {
                                         for (int64_t d = 0; d < args.dims; ++d) {
                                           grad_x[p * args.dims + d] = freq_backward_element(args, grad_out_ptr, p, d);
                                         }
                                       }
                                     });
                                   });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("freq_encode(Tensor x, int n_freqs, bool include_input) -> Tensor");
  m.def("freq_encode_bwd(Tensor grad_out, Tensor x, int n_freqs, bool include_input) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("freq_encode", &freq_encode_cpu);
  m.impl("freq_encode_bwd", &freq_encode_bwd_cpu);
}

}  // namespace fastnerf
