// CPU loop helpers for the torch-facing .cpp files.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <atomic>

namespace fastnerf {

// Runs fn(ray) for every ray in parallel, skipping rays whose packed samples leave
// [0, n_samples), and raises afterwards if there were any: kernels check bounds.
template <typename index_t, typename Fn>
void for_each_ray_cpu(const index_t* packed_info, int64_t n_rays, int64_t n_samples, const Fn& fn) {
  std::atomic<bool> out_of_range{false};
  at::parallel_for(0, n_rays, 64, [&](int64_t begin, int64_t end) {
    for (int64_t ray = begin; ray < end; ++ray) {
      const int64_t start = packed_info[2 * ray], count = packed_info[2 * ray + 1];
      if (start >= 0 && count >= 0 && start + count <= n_samples) {
        fn(ray);
      } else {
        out_of_range.store(true, std::memory_order_relaxed);
      }
    }
  });
  TORCH_CHECK(!out_of_range.load(), "packed_info has a ray whose samples leave [0, ", n_samples, ")");
}

}  // namespace fastnerf
