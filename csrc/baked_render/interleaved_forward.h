// baked_render's CPU forward: several rays in flight per thread, their memory reads overlapped.
//
// A sample in a new cell needs two dependent reads that miss the caches on a grid of tens of MB:
// the 8 corners' entries of `index`, then the corners' rows of `values`. One ray at a time waits
// about two memory latencies a sample (on this project's CPU that was three quarters of the op).
// Here each thread holds kRaysInFlight rays and moves each one stage per turn: march to its next
// sample and, in a new cell, prefetch its index entries; read them and prefetch the rows;
// composite. While one ray's reads are in flight the others work, so the waits overlap.
//
// Every ray runs the same operations in the same order as baked_forward_ray (march_next is
// march_ray_until's loop, corners_locate/fetch/weigh are corners_at), so the outputs are bitwise
// equal to it and to the reference; only the order in which rays finish differs.
#pragma once

#include <algorithm>
#include <cmath>

#include "baked_render/baked_render.h"

namespace fastnerf {

// Rays in flight per thread: 8 measured 1.4x the one-at-a-time forward at 100x100 on this
// project's CPU (a sample in a new cell misses the caches), the same speed at 400x400 (neighbouring
// rays share lines); 16 was faster at 100x100 and 7% slower at 400x400.
constexpr int kRaysInFlight = 8;

enum RayStage { kMarching, kIndexPending, kRowsPending };

template <int kChannels, typename scalar_t>
struct RayInFlight {
  int64_t ray;  // -1: the slot is free
  RayStage stage;
  MarchRay r;
  MarchCursor cur;
  Candidate k;  // the sample whose reads are in flight
  int32_t cell[3];
  float f[3];
  VertexCorners v;
  ForwardSums<kChannels, scalar_t> s;
};

inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
  __builtin_prefetch(c + bytes - 1);  // the last line, when p is not line-aligned
}

template <int kChannels, typename scalar_t>
class InterleavedForward {
 public:
  explicit InterleavedForward(const BakedRenderArgs<scalar_t>& a) : a_(a) {}

  // Renders every ray that next_ray() hands out (it returns -1 when there are none left).
  template <typename NextRay>
  void run(const NextRay& next_ray) {
    RayInFlight<kChannels, scalar_t> slots[kRaysInFlight];
    int active = 0;
    for (auto& slot : slots) active += start(slot, next_ray);
    while (active > 0) {
      for (auto& slot : slots) {
        if (slot.ray < 0 || turn(slot)) continue;
        forward_end(a_, slot.ray, slot.s);
        active -= 1 - start(slot, next_ray);
      }
    }
  }

 private:
  const BakedRenderArgs<scalar_t>& a_;

  int64_t channels() const { return kChannels > 0 ? kChannels : a_.channels; }

  // Takes the next ray into `slot`; returns whether there was one.
  template <typename NextRay>
  bool start(RayInFlight<kChannels, scalar_t>& slot, const NextRay& next_ray) {
    slot.ray = next_ray();
    if (slot.ray < 0) return false;
    forward_begin(a_, slot.ray, slot.s);
    slot.r = march_setup(a_.march, slot.ray);
    slot.cur = march_begin(a_.march, slot.r);
    corners_setup(a_, slot.v);
    slot.stage = kMarching;
    return true;
  }

  // One stage of the slot's ray (a march to its next sample, or that sample's reads); returns
  // false when the ray is done.
  bool turn(RayInFlight<kChannels, scalar_t>& slot) {
    auto& v = slot.v;
    switch (slot.stage) {
      case kMarching: {
        // On to the next kept candidate in one go: handing the turn on after each candidate (its
        // brick word prefetched) measured slower, the bricks mostly being in cache.
        if (!march_next(a_.march, a_.space, slot.r, slot.cur, slot.k)) return false;
        corners_locate(a_, v, slot.k.p, slot.cell, slot.f);
        if (!same_cell(v, slot.cell)) {  // a new cell: its index entries first
          for (int k = 0; k < 8; k += 2) prefetch_bytes(corner_entry(a_, slot.cell, k), 2 * sizeof(int32_t));
          slot.stage = kIndexPending;
          return true;
        }
        break;  // the cell before: its rows are at hand
      }
      case kIndexPending:
        corners_fetch(a_, slot.cell, v);
        if (!v.any) {  // nothing stored here: weight 0, T unchanged
          slot.stage = kMarching;
          return true;
        }
        for (int k = 0; k < 8; ++k) {
          if (v.rows[k] >= 0) prefetch_bytes(a_.values + v.rows[k] * channels(), channels() * sizeof(scalar_t));
        }
        slot.stage = kRowsPending;
        return true;
      case kRowsPending:
        break;
    }
    corners_weigh(slot.f, v);
    if (!forward_visit(a_, v, slot.k.start, slot.k.end, slot.k.mid, slot.s)) return false;
    slot.stage = kMarching;
    return true;
  }
};

// Whether the rays come as neighbouring pixels of a fine image: over the first rays, the median
// distance between consecutive rays (their unit directions' difference times the distance from
// the first origin to the box's centre) is under half a vertex cell. Such rays share their cells'
// cache lines, so their reads mostly hit and one ray at a time is faster: measured on an 800x800
// view of the op benchmark's sphere shell, 292 ms one at a time against 420 in flight (tabletop:
// 5% apart); at 100x100 on the tabletop, in flight was 1.2-1.4x faster. Training batches (random
// pixels) are never coherent. The choice changes no result: both run the same per-ray operations.
template <typename scalar_t>
bool coherent_rays(const BakedRenderArgs<scalar_t>& a) {
  constexpr int64_t kPairs = 33;
  const MarchArgs& m = a.march;
  const int64_t pairs = m.n_rays - 1 < kPairs ? m.n_rays - 1 : kPairs;
  if (pairs < 1) return false;
  float cell = INFINITY, centre_distance2 = 0.f;
  for (int axis = 0; axis < 3; ++axis) {
    const float size = (m.aabb[3 + axis] - m.aabb[axis]) / float(a.vertices[axis] - 1);
    cell = size < cell ? size : cell;
    const float offset = m.rays_o[axis] - 0.5f * (m.aabb[axis] + m.aabb[3 + axis]);
    centre_distance2 += offset * offset;
  }
  float spacing[kPairs];
  for (int64_t i = 0; i < pairs; ++i) {
    float d0[3], d1[3], n0 = 0.f, n1 = 0.f, gap2 = 0.f;
    for (int axis = 0; axis < 3; ++axis) {
      d0[axis] = m.rays_d[3 * i + axis];
      d1[axis] = m.rays_d[3 * (i + 1) + axis];
      n0 += d0[axis] * d0[axis];
      n1 += d1[axis] * d1[axis];
    }
    n0 = std::sqrt(n0);
    n1 = std::sqrt(n1);
    for (int axis = 0; axis < 3; ++axis) {
      const float gap = d0[axis] / n0 - d1[axis] / n1;
      gap2 += gap * gap;
    }
    spacing[i] = std::sqrt(gap2 * centre_distance2);  // NaN (zero or non-finite directions) sorts last
  }
  std::sort(spacing, spacing + pairs, [](float x, float y) { return x < y || (x == x && y != y); });
  return spacing[pairs / 2] < 0.5f * cell;
}

template <int kChannels, typename scalar_t, typename NextRay>
void baked_forward_interleaved(const BakedRenderArgs<scalar_t>& a, const NextRay& next_ray) {
  InterleavedForward<kChannels, scalar_t>(a).run(next_ray);
}

}  // namespace fastnerf
