// Baked rendering's march: march_rays' samples (bitwise), skipping empty space through the
// occupancy grid in bricks, each empty one's reach, stoppable by the caller. Shared by the CPU and
// CUDA kernels of baked_render (baked_render.h; spec: fastnerf/reference/baked_render.py).
#pragma once

#include "common.h"
#include "march_rays/march_rays.h"

namespace fastnerf {

// The per-sample helpers are small and hot: on the host, inline them whatever GCC's size
// heuristics say (they decline, and each call then costs a spill of the ray's state).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define BAKED_HD FASTNERF_HD
#else
#define BAKED_HD inline __attribute__((always_inline))
#endif

// ---- the occupancy grid in bricks, with each empty brick's reach ------------------------------

// The march reads `occupied` [Rx, Ry, Rz] (one byte a cell, x-major) through a copy made per grid
// by a prepare pass: bricks of 4^3 cells, one 64-bit word each (bit 16 (x&3) + 4 (y&3) + (z&3)),
// so that the cells a ray crosses share cache lines; and per brick its reach: 0 where the brick
// has an occupied cell, else its Chebyshev distance in bricks to the nearest brick that has one
// (at most kMaxReach). A brick of reach D sits in the middle of a cube of 2D - 1 bricks a side with
// no occupied cell, wherever the ray enters it: a ray leaves that cube at least 4 (D - 1) cells on.
// (Aligned blocks of 4, 16 and 64 cells, the scheme before, let a ray near a block's face jump
// no farther than the face.)
constexpr int kBrickShift = 2;  // bricks of 2^2 = 4 cells a side
constexpr int kMaxReach = 16;   // bricks: jumps of up to 2 * 16 - 1 bricks a side's cube

struct EmptySpace {
  uint64_t* bricks;  // [Bx, By, Bz], B_a = ceil(R_a / 4)
  uint8_t* reach;    // [Bx, By, Bz]
  uint8_t* scratch;  // [Bx, By, Bz]: the prepare pass's middle step
  int32_t res[3];    // B
  bool ready;        // built by an earlier call on the same `occupied`: skip the prepare pass
};

FASTNERF_HD int64_t flat_index(const int32_t* res, int64_t x, int64_t y, int64_t z) {
  return (x * res[1] + y) * res[2] + z;
}

// Prepare pass, step 1 (per brick): bricks[brick] from `occupied`.
FASTNERF_HD void build_brick(const MarchArgs& a, const EmptySpace& e, int64_t brick) {
  const int32_t* res = e.res;
  const int64_t bx = brick / (int64_t(res[1]) * res[2]), by = brick / res[2] % res[1], bz = brick % res[2];
  uint64_t bits = 0;
  for (int i = 0; i < 64; ++i) {
    const int64_t x = (bx << kBrickShift) + (i >> 4), y = (by << kBrickShift) + ((i >> 2) & 3),
                  z = (bz << kBrickShift) + (i & 3);
    if (x < a.res[0] && y < a.res[1] && z < a.res[2] && a.occupied[(x * a.res[1] + y) * a.res[2] + z]) {
      bits |= uint64_t(1) << i;
    }
  }
  e.bricks[brick] = bits;
}

// Step 2, for axis 0, 1, 2 in turn (per line of bricks along the axis): the Chebyshev distance
// transform, one axis at a time: g(i) = min over j of max(|i - j|, f(j)) along the line, where f
// is 0 at a brick with an occupied cell and kMaxReach elsewhere (axis 0: bricks -> reach), then
// the previous axis's g (axis 1: reach -> scratch; axis 2: scratch -> reach). After the three
// the distance to the nearest non-empty brick in all three axes' max norm, capped.
FASTNERF_HD void build_reach_line(const EmptySpace& e, int axis, int64_t line) {
  const int32_t* res = e.res;
  const int64_t n = res[axis];
  int64_t base, stride;
  if (axis == 0) {
    base = line;  // (y, z)
    stride = int64_t(res[1]) * res[2];
  } else if (axis == 1) {
    base = line / res[2] * (int64_t(res[1]) * res[2]) + line % res[2];  // (x, z)
    stride = res[2];
  } else {
    base = line * res[2];  // (x, y)
    stride = 1;
  }
  const uint8_t* in = axis == 2 ? e.scratch : e.reach;
  uint8_t* out = axis == 1 ? e.scratch : e.reach;
  auto f = [&](int64_t i) -> int {
    const int64_t at = base + i * stride;
    return axis == 0 ? (e.bricks[at] != 0 ? 0 : kMaxReach) : int(in[at]);
  };
  // Axis 0 reads `bricks` and writes `reach`: no aliasing. Axes 1 and 2 read one buffer and write
  // the other, so every read sees the previous axis's values.
  for (int64_t i = 0; i < n; ++i) {
    int best = f(i);
    for (int64_t r = 1; r < best; ++r) {  // a farther brick cannot beat `best`
      const int below = i - r >= 0 ? f(i - r) : kMaxReach;
      const int above = i + r < n ? f(i + r) : kMaxReach;
      const int nearest = below < above ? below : above;
      const int through = nearest > r ? nearest : int(r);
      best = through < best ? through : best;
    }
    out[base + i * stride] = uint8_t(best);
  }
}

// How many lines of bricks run along `axis`.
FASTNERF_HD int64_t reach_lines(const EmptySpace& e, int axis) {
  return int64_t(e.res[0]) * e.res[1] * e.res[2] / e.res[axis];
}

// ---- the march: march_ray's samples, skipping empty space, stoppable ----------------------------

// One ray's march state: march_ray's per-ray constants, computed with the same operations, plus
// what the skipping needs.
struct MarchRay {
  float o[3], d[3], lo[3], scale[3];
  float rate[3];      // d * scale: cells per unit of t, for guesses only
  float inv_rate[3];  // 1 / rate (guesses: a multiply instead of a division per axis and jump)
  float inv_step;     // 1 / step
  float candidates;   // (t_far - t0) / step: about how many candidates the ray has (guesses)
  float res[3];   // float(R_a)
  float t0, t_far;
  bool finite;    // t_near and t_far are
  bool can_skip;  // every scale is finite and > 0, so cells move monotonically with t
};

BAKED_HD MarchRay march_setup(const MarchArgs& a, int64_t ray) {
  MarchRay r;
  r.can_skip = true;
  for (int axis = 0; axis < 3; ++axis) {
    r.o[axis] = a.rays_o[3 * ray + axis];
    r.d[axis] = a.rays_d[3 * ray + axis];
    r.lo[axis] = a.aabb[axis];
    r.res[axis] = float(a.res[axis]);
    r.scale[axis] = div_rn(r.res[axis], sub_rn(a.aabb[3 + axis], r.lo[axis]));
    r.rate[axis] = r.d[axis] * r.scale[axis];
    r.inv_rate[axis] = 1.f / r.rate[axis];
    r.can_skip = r.can_skip && r.scale[axis] > 0.f && is_finite(r.scale[axis]);
  }
  const float t_near = a.t_near[ray];
  r.t_far = a.t_far[ray];
  r.finite = is_finite(t_near) && is_finite(r.t_far);
  r.t0 = a.offsets ? add_rn(t_near, mul_rn(a.offsets[ray], a.step)) : t_near;
  r.inv_step = 1.f / a.step;
  r.candidates = (r.t_far - r.t0) * r.inv_step;
  return r;
}

// Candidate interval m of the ray: march_ray's start, end and midpoint, the point p = o + d * mid
// and its grid coordinates c (occupied_at's operations: the cell is int(c) where 0 <= c < R).
struct Candidate {
  float start, end, mid, p[3], c[3];
};

BAKED_HD float interval_start(const MarchArgs& a, const MarchRay& r, int64_t m) {
  return add_rn(r.t0, mul_rn(float(m), a.step));
}

BAKED_HD void candidate_at(const MarchArgs& a, const MarchRay& r, int64_t m, float start, Candidate& k) {
  k.start = start;
  const float next = interval_start(a, r, m + 1);
  k.end = next < r.t_far ? next : r.t_far;  // fminf(next, t_far) as march_ray: both are finite
  k.mid = mul_rn(add_rn(k.start, k.end), 0.5f);
  for (int axis = 0; axis < 3; ++axis) {
    k.p[axis] = add_rn(r.o[axis], mul_rn(r.d[axis], k.mid));
    k.c[axis] = mul_rn(sub_rn(k.p[axis], r.lo[axis]), r.scale[axis]);
  }
}

BAKED_HD bool inside_grid(const MarchRay& r, const float* c) {
  return c[0] >= 0.f && c[0] < r.res[0] && c[1] >= 0.f && c[1] < r.res[1] && c[2] >= 0.f && c[2] < r.res[2];
}

// Why skipping is exact: start_m, end_m and mid_m never decrease with m, and every operation from
// mid to c_a is a correctly rounded, monotone function of it (increasing or decreasing with the
// sign of d_a, as scale_a > 0). So for m1 < m < m2, c_a(m) lies between c_a(m1) and c_a(m2) on
// every axis: if candidates m1 and m2 fall in the same empty cube of bricks (a box of cells), or on the same outer side of
// the grid on one axis, every candidate between them does too and is rejected without a look.
// The guesses of how far to jump are plain float arithmetic; each one is checked by evaluating
// candidate m2 exactly, and halved until the check holds.

// How many candidates after m may be rejected unseen, knowing candidate m (`k`) is rejected;
// -1: every later candidate is outside the grid. `block` < 0: k lies outside the grid.
template <typename SameRegion>
BAKED_HD int64_t confirmed_skip(const MarchArgs& a, const MarchRay& r, int64_t m, float distance,
                                   const SameRegion& same_region) {
  // Candidates m + j, j >= 1, have midpoints near mid_m + j step: those before `distance` are
  // guessed to stay in the region.
  float guess = distance * r.inv_step - 0.01f;
  const float left = r.candidates - float(m);  // about how many candidates remain
  guess = guess < left ? guess : left;
  const float most = float(kMaxIntervals - 2 - m);
  guess = guess < most ? guess : most;
  if (!(guess >= 2.f)) return 0;  // (NaN too) one or no candidate: not worth a check
  for (int64_t j = int64_t(guess); j >= 2; j >>= 1) {
    const float start = interval_start(a, r, m + j);
    if (!(start < r.t_far)) continue;
    Candidate k;
    candidate_at(a, r, m + j, start, k);
    if (same_region(k.c)) return j;
  }
  return 0;
}

// Where a ray's march stands: the next candidate to look at (m, its start), or done.
struct MarchCursor {
  int64_t m;
  float start;
};

BAKED_HD MarchCursor march_begin(const MarchArgs& a, const MarchRay& r) {
  if (!r.finite) return MarchCursor{kMaxIntervals, 0.f};
  return MarchCursor{0, interval_start(a, r, 0)};
}

enum MarchLook { kKept, kRejected, kDone };

// Looks at the cursor's candidate k: kKept (it is occupied), kRejected (it is
// not; those after it that the empty bricks' reach rules out are skipped too) or kDone (no later
// candidate is inside the grid). The cursor moves past what was looked at.
BAKED_HD MarchLook march_look(const MarchArgs& a, const EmptySpace& e, const MarchRay& r, MarchCursor& cur,
                              const Candidate& k) {
  const bool skipping = r.can_skip;
  const int64_t m = cur.m;
  int64_t skip = 0;
  if (inside_grid(r, k.c)) {
    const int32_t cell[3] = {int32_t(k.c[0]), int32_t(k.c[1]), int32_t(k.c[2])};
    const int64_t brick = flat_index(e.res, cell[0] >> kBrickShift, cell[1] >> kBrickShift, cell[2] >> kBrickShift);
    // The reach first: a byte a brick, so its array stays in the nearest cache where the words
    // (8 bytes a brick) do not; most looks land in empty bricks and never read their word.
    const int32_t reach = e.reach[brick];
    if (reach == 0 && ((e.bricks[brick] >> (((cell[0] & 3) << 4) | ((cell[1] & 3) << 2) | (cell[2] & 3))) & 1)) {
      cur.m = m + 1;
      cur.start = interval_start(a, r, m + 1);
      return kKept;
    } else if (skipping && reach > 0) {  // an empty brick: leave the empty cube of bricks around it
      const int32_t around = reach - 1;  // empty bricks on every side
      float lo[3], hi[3];  // the cube, in cells (it may reach past the grid: nothing is kept there)
      float distance = INFINITY;  // t from mid to the cube's exit, along the ray
      for (int axis = 0; axis < 3; ++axis) {
        const int32_t b = cell[axis] >> kBrickShift;
        lo[axis] = float((b - around) * (1 << kBrickShift));
        hi[axis] = float((b + 1 + around) * (1 << kBrickShift));
        const float rate = r.rate[axis];
        const float boundary = rate > 0.f ? hi[axis] : lo[axis];
        const float t = rate != 0.f ? (boundary - k.c[axis]) * r.inv_rate[axis] : INFINITY;
        distance = t < distance ? t : distance;
      }
      skip = confirmed_skip(a, r, m, distance, [&](const float* c) {
        return c[0] >= lo[0] && c[0] < hi[0] && c[1] >= lo[1] && c[1] < hi[1] && c[2] >= lo[2] && c[2] < hi[2];
      });
    }
  } else if (skipping) {
    // Outside: on some axis below 0 or at/above R. Moving away (or not moving) on that axis,
    // the ray never comes back; moving towards the grid, it stays out until it crosses.
    int side_axis = -1;
    bool below = false;
    float distance = -INFINITY;
    for (int axis = 0; axis < 3; ++axis) {
      const float c = k.c[axis];
      if (c >= 0.f && c < r.res[axis]) continue;
      if (c != c) return kDone;  // NaN: o or d is not finite; nothing here is ever inside
      const bool is_below = c < 0.f;
      if (is_below ? !(r.d[axis] > 0.f) : !(r.d[axis] < 0.f)) return kDone;
      const float t = ((is_below ? 0.f : r.res[axis]) - c) * r.inv_rate[axis];
      if (t > distance) {
        distance = t;
        side_axis = axis;
        below = is_below;
      }
    }
    skip = confirmed_skip(a, r, m, distance, [&](const float* c) {
      return below ? c[side_axis] < 0.f : c[side_axis] >= r.res[side_axis];
    });
  }
  cur.m = m + 1 + skip;
  cur.start = interval_start(a, r, cur.m);
  return kRejected;
}

// Advances `cur` to the ray's next kept (occupied) candidate and returns true with it in `k`
// (and `cur` past it), or returns false when the ray has none left. Resumable, so a caller can
// hold several rays' marches at once (the CPU forward interleaves rays to overlap their reads).
BAKED_HD bool march_next(const MarchArgs& a, const EmptySpace& e, const MarchRay& r, MarchCursor& cur, Candidate& k) {
  while (cur.m < kMaxIntervals && cur.start < r.t_far) {
    candidate_at(a, r, cur.m, cur.start, k);
    const MarchLook look = march_look(a, e, r, cur, k);
    if (look == kKept) return true;
    if (look == kDone) break;
  }
  cur.m = kMaxIntervals;
  return false;
}

// Calls visit(start, end, mid, p) on each kept candidate in turn while it returns true.
template <typename Visit>
BAKED_HD void march_ray_until(const MarchArgs& a, const EmptySpace& e, const MarchRay& r, Visit& visit) {
  MarchCursor cur = march_begin(a, r);
  Candidate k;
  while (march_next(a, e, r, cur, k)) {
    if (!visit(k.start, k.end, k.mid, k.p)) return;
  }
}

}  // namespace fastnerf
