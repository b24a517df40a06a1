// Argument checks for the torch-facing .cpp files (never included by .cu files).
// Python validates first with friendlier messages; these keep direct torch.ops calls safe.
#pragma once

#include <ATen/ATen.h>

namespace fastnerf {

inline void check_tensor(const at::Tensor& t, const char* name, int64_t dim, at::Device device) {
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
  TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
}

inline void check_float(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, " like the other float inputs, got ",
              t.scalar_type());
}

inline void check_size(const at::Tensor& t, const char* name, int64_t dim, int64_t expected) {
  TORCH_CHECK(t.size(dim) == expected, name, ".shape[", dim, "] must be ", expected, ", got shape ",
              t.sizes());
}

inline void check_packed_info(const at::Tensor& packed_info, at::Device device) {
  check_tensor(packed_info, "packed_info", 2, device);
  check_size(packed_info, "packed_info", 1, 2);
  TORCH_CHECK(packed_info.scalar_type() == at::kInt || packed_info.scalar_type() == at::kLong,
              "packed_info must be int32 or int64, got ", packed_info.scalar_type());
}

}  // namespace fastnerf
