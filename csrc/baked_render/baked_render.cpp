// baked_render: schemas and the CPU kernels (rays in parallel, handed out to torch's intra-op
// threads in chunks on demand). The backward runs its rays in order on one thread: value gradients
// then add up in the same order on every run, so training resumes bitwise (atomic adds from two
// threads would not), and a training batch's backward is a small part of a step.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>

#include "baked_render/baked_render_torch.h"
#include "baked_render/interleaved_forward.h"

namespace fastnerf {

namespace {
constexpr int64_t kRayChunk = 64;

// Runs fn(next_ray) on each of torch's intra-op threads, where next_ray() hands out the rays
// (-1 once there are none left). Rays cost very different amounts (a miss nothing, a ray through
// empty space its whole length, an opaque one a few samples), so rather than one fixed range per
// thread, the threads take chunks of kRayChunk rays from a shared counter.
template <typename Fn>
void for_rays_dynamic(int64_t n_rays, const Fn& fn) {
  const int64_t n_chunks = (n_rays + kRayChunk - 1) / kRayChunk;
  const int64_t workers = std::min<int64_t>(at::in_parallel_region() ? 1 : at::get_num_threads(), n_chunks);
  std::atomic<int64_t> next_chunk{0};
  auto work = [&] {
    int64_t next = 0, end = 0;  // this thread's chunk
    auto next_ray = [&]() -> int64_t {
      if (next == end) {
        const int64_t chunk = next_chunk.fetch_add(1, std::memory_order_relaxed);
        if (chunk >= n_chunks) return -1;
        next = chunk * kRayChunk;
        end = std::min(n_rays, next + kRayChunk);
      }
      return next++;
    };
    fn(next_ray);
  };
  if (workers <= 1) {
    work();
  } else {
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) { work(); });
  }
}

// The prepare pass: `occupied` in bricks, and each brick's reach (EmptySpace in empty_space_march.h).
void prepare_cpu(const MarchArgs& march, const EmptySpace& e) {
  const int64_t n_bricks = int64_t(e.res[0]) * e.res[1] * e.res[2];
  at::parallel_for(0, n_bricks, 256, [&](int64_t begin, int64_t end) {
    for (int64_t brick = begin; brick < end; ++brick) build_brick(march, e, brick);
  });
  for (int axis = 0; axis < 3; ++axis) {
    at::parallel_for(0, reach_lines(e, axis), 64, [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) build_reach_line(e, axis, line);
    });
  }
}

// Gradient scatter of the (serial) backward.
struct PlainAdd {
  template <typename T>
  static void add(T* ptr, T value) {
    *ptr += value;
  }
};
}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> baked_render_cpu(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb, const at::Tensor& occupied,
    const at::Tensor& index, const at::Tensor& values, double step_size, double early_stop_eps) {
  return baked_render_forward_impl(
      rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values, step_size, early_stop_eps,
      [](const auto& args) {
        if (!args.space.ready) prepare_cpu(args.march, args.space);
        const bool one_at_a_time = coherent_rays(args);  // (interleaved_forward.h)
        dispatch_baked_channels(args.channels, [&](auto channels) {
          constexpr int kChannels = decltype(channels)::value;
          for_rays_dynamic(args.march.n_rays, [&](const auto& next_ray) {
            if (one_at_a_time) {
              for (int64_t ray = next_ray(); ray >= 0; ray = next_ray()) baked_forward_ray<kChannels>(args, ray);
            } else {
              baked_forward_interleaved<kChannels>(args, next_ray);
            }
          });
        });
      });
}

at::Tensor baked_render_bwd_cpu(const at::Tensor& grad_features, const at::Tensor& grad_opacity,
                                const at::Tensor& grad_depth, const at::Tensor& rays_o, const at::Tensor& rays_d,
                                const at::Tensor& t_near, const at::Tensor& t_far,
                                const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb,
                                const at::Tensor& occupied, const at::Tensor& index, const at::Tensor& values,
                                double step_size, double early_stop_eps, const at::Tensor& features,
                                const at::Tensor& opacity, const at::Tensor& depth) {
  return baked_render_backward_impl(
      grad_features, grad_opacity, grad_depth, rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values,
      step_size, early_stop_eps, features, opacity, depth, [](const auto& args) {
        if (!args.fwd.space.ready) prepare_cpu(args.fwd.march, args.fwd.space);
        const int64_t n_rays = args.fwd.march.n_rays;
        dispatch_baked_channels(args.fwd.channels, [&](auto channels) {
          constexpr int kChannels = decltype(channels)::value;
          for (int64_t ray = 0; ray < n_rays; ++ray) baked_backward_ray<kChannels, PlainAdd>(args, ray);
        });
      });
}

TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def(
      "baked_render(Tensor rays_o, Tensor rays_d, Tensor t_near, Tensor t_far, Tensor? offsets, Tensor aabb,"
      " Tensor occupied, Tensor index, Tensor values, float step_size, float early_stop_eps)"
      " -> (Tensor features, Tensor opacity, Tensor depth)");
  m.def(
      "baked_render_bwd(Tensor grad_features, Tensor grad_opacity, Tensor grad_depth, Tensor rays_o,"
      " Tensor rays_d, Tensor t_near, Tensor t_far, Tensor? offsets, Tensor aabb, Tensor occupied, Tensor index,"
      " Tensor values, float step_size, float early_stop_eps, Tensor features, Tensor opacity, Tensor depth)"
      " -> Tensor grad_values");
}

TORCH_LIBRARY_IMPL(fastnerf, CPU, m) {
  m.impl("baked_render", &baked_render_cpu);
  m.impl("baked_render_bwd", &baked_render_bwd_cpu);
}

}  // namespace fastnerf
