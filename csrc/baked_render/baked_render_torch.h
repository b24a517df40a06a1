// baked_render's torch-side pieces shared by the CPU and CUDA bindings: checks, allocation, dtype
// dispatch and argument packing. The device part is the `launch(args)` callback.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/util/Optional.h>

#include <mutex>
#include <tuple>
#include <vector>

#include "baked_render/baked_render.h"
#include "checks.h"

namespace fastnerf {

struct BakedRenderInputs {
  at::Tensor rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values;  // contiguous; offsets may be undefined
  double step_size, early_stop_eps;
  at::Tensor bricks, reach, scratch;  // EmptySpace's storage (allocate_empty_space)
  bool space_ready = false;                     // those were built by an earlier call
};

// EmptySpace's tensors for `occupied`. A renderer calls the op many times with one grid (a
// frame's chunks of rays, a training run's steps), and building them reads every cell (8 ms for
// a 200^3 grid on 2 CPU cores, as long as rendering 10k rays): the last ones built are kept, with
// a reference to the `occupied` they were built from, and reused while that tensor is the same
// (storage, shape, device) and unchanged (its version counter: an in-place write bumps it). The
// kept reference stops a new tensor from reusing the address. A write through `.data` bypasses the
// version counter: change a grid in place through the tensor itself (or pass a new one). `ready` says whether the launch's
// prepare pass must fill them.
struct EmptySpaceCache {
  std::mutex mutex;
  at::Tensor occupied;  // the grid the entry was built from (undefined: none yet)
  int64_t version = -1;
  at::Tensor bricks, reach, scratch;
};

inline EmptySpaceCache& empty_space_cache() {
  static EmptySpaceCache cache;
  return cache;
}

inline bool same_grid(const at::Tensor& kept, int64_t version, const at::Tensor& occupied) {
  return kept.defined() && kept.data_ptr() == occupied.data_ptr() && kept.sizes() == occupied.sizes() &&
         kept.device() == occupied.device() && version == int64_t(occupied._version());
}

// Returns whether the tensors in `in` are already built (then the prepare pass is skipped).
inline bool allocate_empty_space(BakedRenderInputs& in) {
  EmptySpaceCache& cache = empty_space_cache();
  if (!in.occupied.is_inference()) {  // an inference tensor has no version counter: never kept
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (same_grid(cache.occupied, cache.version, in.occupied)) {
      in.bricks = cache.bricks;
      in.reach = cache.reach;
      in.scratch = cache.scratch;
      return true;
    }
  }
  std::vector<int64_t> res(in.occupied.sizes().begin(), in.occupied.sizes().end());
  for (auto& r : res) r = (r + 3) / 4;
  in.bricks = at::empty(res, in.occupied.options().dtype(at::kLong));
  in.reach = at::empty(res, in.occupied.options().dtype(at::kByte));
  in.scratch = at::empty(res, in.occupied.options().dtype(at::kByte));
  return false;
}

// After the launch that built `in`'s tensors (on the CPU: done; on a GPU: queued on the stream
// that later calls use), keep them for the next call.
inline void remember_empty_space(const BakedRenderInputs& in) {
  if (in.occupied.is_inference()) return;
  EmptySpaceCache& cache = empty_space_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.occupied = in.occupied;
  cache.version = int64_t(in.occupied._version());
  cache.bricks = in.bricks;
  cache.reach = in.reach;
  cache.scratch = in.scratch;
}

inline BakedRenderInputs check_baked_render_inputs(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb, const at::Tensor& occupied,
    const at::Tensor& index, const at::Tensor& values, double step_size, double early_stop_eps) {
  const auto device = rays_o.device();
  check_tensor(rays_o, "rays_o", 2, device);
  const int64_t N = rays_o.size(0);
  check_tensor(rays_d, "rays_d", 2, device);
  check_tensor(t_near, "t_near", 1, device);
  check_tensor(t_far, "t_far", 1, device);
  check_tensor(aabb, "aabb", 1, device);
  check_tensor(occupied, "occupied", 3, device);
  check_tensor(index, "index", 3, device);
  check_tensor(values, "values", 2, device);
  check_float(rays_o, "rays_o", at::kFloat);
  check_float(rays_d, "rays_d", at::kFloat);
  check_float(t_near, "t_near", at::kFloat);
  check_float(t_far, "t_far", at::kFloat);
  check_float(aabb, "aabb", at::kFloat);
  TORCH_CHECK(occupied.scalar_type() == at::kBool, "occupied must be bool, got ", occupied.scalar_type());
  TORCH_CHECK(index.scalar_type() == at::kInt, "index must be int32, got ", index.scalar_type());
  TORCH_CHECK(values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble,
              "values must be float32 or float64, got ", values.scalar_type());
  check_size(rays_o, "rays_o", 1, 3);
  check_size(rays_d, "rays_d", 0, N);
  check_size(rays_d, "rays_d", 1, 3);
  check_size(t_near, "t_near", 0, N);
  check_size(t_far, "t_far", 0, N);
  check_size(aabb, "aabb", 0, 6);
  for (int64_t axis = 0; axis < 3; ++axis) {
    TORCH_CHECK(occupied.size(axis) >= 1, "occupied must have at least one cell per axis, got shape ",
                occupied.sizes());
    TORCH_CHECK(index.size(axis) >= 2 && index.size(axis) < (int64_t(1) << 30),
                "index must have 2 to 2^30 vertices per axis, got shape ", index.sizes());
  }
  TORCH_CHECK(values.size(1) >= 2, "values must have a density column and at least one feature, got shape ",
              values.sizes());
  TORCH_CHECK(step_size > 0, "step_size must be > 0, got ", step_size);
  TORCH_CHECK(early_stop_eps >= 0 && early_stop_eps < 1, "early_stop_eps must be in [0, 1), got ", early_stop_eps);
  at::Tensor offsets_c;
  if (offsets.has_value()) {
    check_tensor(*offsets, "offsets", 1, device);
    check_float(*offsets, "offsets", at::kFloat);
    check_size(*offsets, "offsets", 0, N);
    offsets_c = offsets->contiguous();
  }
  return {rays_o.contiguous(), rays_d.contiguous(), t_near.contiguous(), t_far.contiguous(), offsets_c,
          aabb.contiguous(),   occupied.contiguous(), index.contiguous(), values.contiguous(), step_size,
          early_stop_eps};
}

template <typename scalar_t>
BakedRenderArgs<scalar_t> baked_render_args(const BakedRenderInputs& in, const at::Tensor& features,
                                            const at::Tensor& opacity, const at::Tensor& depth) {
  BakedRenderArgs<scalar_t> args{};
  MarchArgs& m = args.march;
  m.rays_o = in.rays_o.data_ptr<float>();
  m.rays_d = in.rays_d.data_ptr<float>();
  m.t_near = in.t_near.data_ptr<float>();
  m.t_far = in.t_far.data_ptr<float>();
  m.offsets = in.offsets.defined() ? in.offsets.data_ptr<float>() : nullptr;
  m.aabb = in.aabb.data_ptr<float>();
  m.occupied = in.occupied.data_ptr<bool>();
  for (int axis = 0; axis < 3; ++axis) {
    m.res[axis] = in.occupied.size(axis);
    args.vertices[axis] = int32_t(in.index.size(axis));
  }
  EmptySpace& e = args.space;
  e.ready = in.space_ready;
  e.bricks = reinterpret_cast<uint64_t*>(in.bricks.data_ptr<int64_t>());
  e.reach = in.reach.data_ptr<uint8_t>();
  e.scratch = in.scratch.data_ptr<uint8_t>();
  for (int axis = 0; axis < 3; ++axis) e.res[axis] = int32_t(in.reach.size(axis));
  m.n_rays = in.rays_o.size(0);
  m.step = float(in.step_size);
  args.index = in.index.data_ptr<int32_t>();
  args.values = in.values.data_ptr<scalar_t>();
  args.n_values = in.values.size(0);
  args.channels = in.values.size(1);
  args.early_stop_eps = scalar_t(in.early_stop_eps);
  args.features = features.data_ptr<scalar_t>();
  args.opacity = opacity.data_ptr<scalar_t>();
  args.depth = depth.data_ptr<scalar_t>();
  return args;
}

// launch: a generic callable taking `const BakedRenderArgs<scalar_t>&`.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor, at::Tensor> baked_render_forward_impl(
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb, const at::Tensor& occupied,
    const at::Tensor& index, const at::Tensor& values, double step_size, double early_stop_eps,
    const Launch& launch) {
  auto in = check_baked_render_inputs(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values,
                                            step_size, early_stop_eps);
  const int64_t N = in.rays_o.size(0), C = in.values.size(1);
  // With no stored rows nothing is ever composited: the kernel would write zeros anyway.
  const bool empty = N == 0 || in.values.size(0) == 0;
  auto make = [&](at::IntArrayRef shape) { return empty ? at::zeros(shape, in.values.options())
                                                        : at::empty(shape, in.values.options()); };
  auto features = make({N, C - 1});
  auto opacity = make({N});
  auto depth = make({N});
  if (empty) return {features, opacity, depth};
  in.space_ready = allocate_empty_space(in);
  AT_DISPATCH_FLOATING_TYPES(in.values.scalar_type(), "baked_render", [&] {
    launch(baked_render_args<scalar_t>(in, features, opacity, depth));
  });
  if (!in.space_ready) remember_empty_space(in);
  return {features, opacity, depth};
}

// launch: a generic callable taking `const BakedRenderBackwardArgs<scalar_t>&`.
template <typename Launch>
at::Tensor baked_render_backward_impl(
    const at::Tensor& grad_features, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_near, const at::Tensor& t_far,
    const c10::optional<at::Tensor>& offsets, const at::Tensor& aabb, const at::Tensor& occupied,
    const at::Tensor& index, const at::Tensor& values, double step_size, double early_stop_eps,
    const at::Tensor& features, const at::Tensor& opacity, const at::Tensor& depth, const Launch& launch) {
  auto in = check_baked_render_inputs(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values,
                                            step_size, early_stop_eps);
  const int64_t N = in.rays_o.size(0), C = in.values.size(1);
  const auto dtype = in.values.scalar_type();
  const auto device = in.values.device();
  auto per_ray = [&](const at::Tensor& t, const char* name, at::IntArrayRef shape) -> at::Tensor {
    TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
    TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
    TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, " like values, got ", t.scalar_type());
    return t.contiguous();
  };
  const at::Tensor grad_features_c = per_ray(grad_features, "grad_features", {N, C - 1});
  const at::Tensor grad_opacity_c = per_ray(grad_opacity, "grad_opacity", {N});
  const at::Tensor grad_depth_c = per_ray(grad_depth, "grad_depth", {N});
  const at::Tensor features_c = per_ray(features, "features", {N, C - 1});
  const at::Tensor opacity_c = per_ray(opacity, "opacity", {N});
  const at::Tensor depth_c = per_ray(depth, "depth", {N});
  auto grad_values = at::zeros_like(in.values);
  if (N == 0 || in.values.size(0) == 0) return grad_values;
  in.space_ready = allocate_empty_space(in);
  AT_DISPATCH_FLOATING_TYPES(dtype, "baked_render_bwd", [&] {
    const BakedRenderBackwardArgs<scalar_t> args{
        baked_render_args<scalar_t>(in, features_c, opacity_c, depth_c), grad_features_c.data_ptr<scalar_t>(),
        grad_opacity_c.data_ptr<scalar_t>(), grad_depth_c.data_ptr<scalar_t>(), grad_values.data_ptr<scalar_t>()};
    launch(args);
  });
  if (!in.space_ready) remember_empty_space(in);
  return grad_values;
}

}  // namespace fastnerf
