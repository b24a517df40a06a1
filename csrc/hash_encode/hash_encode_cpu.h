// hash_encode on the CPU, a block of points at a time. The corners of a block at one level are
// computed first, in loops over points that the compiler vectorises (structure of arrays: rows
// and weights per corner), then gathered (forward) or scattered (table gradient) in a scalar
// loop that does nothing but loads, multiplies and adds. Splitting the two lets the index math
// run 4-8 points per instruction and keeps the loads free of dependent arithmetic, so many
// table reads are in flight at once.
//
// The arithmetic is the per-point math of hash_encode.h, operation for operation and in the same
// order (weights (wx * wy) * wz, corners summed 0..7, points in index order), so results are
// bitwise those of hash_encode.h's scalar path (no FMA contraction: see hash_encode.cpp).
//
// CPU-only, and included once per instruction set by hash_encode.cpp (like ATen's
// CPU_CAPABILITY): FASTNERF_CPU_CAPABILITY names the namespace of this copy, so there is no
// include guard. Included after <algorithm>, <cstdint>, hash_encode.h and hash_encode_cpu_common.h.
#ifndef FASTNERF_CPU_CAPABILITY
#error "hash_encode_cpu.h is included by hash_encode.cpp with FASTNERF_CPU_CAPABILITY defined"
#endif

namespace fastnerf {
namespace FASTNERF_CPU_CAPABILITY {

template <typename scalar_t>
inline void hash_load_block(const scalar_t* x /* [N, 3] */, int64_t begin, int64_t end, HashBlockPoints<scalar_t>* b) {
  b->count = end - begin;
  for (int64_t p = 0; p < b->count; ++p) {
    for (int d = 0; d < 3; ++d) b->xs[d][p] = x[3 * (begin + p) + d];
  }
}

// hash_cell and hash_row of hash_encode.h for a block: same rule, same rounding, one pass over
// the points with everything in registers. The range tests are integer compares of the float's
// bits (HashUnitBits): a float compare may trap, and GCC would not turn it into vector selects.
// `pos` is >= 0 (x clamped to [0, 1] first), so the int conversion is the floor; NaN lands on
// corner 0. Per axis the two vertex terms are (lower, lower + 1) times the axis' factor (side
// powers when dense, primes when hashed), so a corner's row is two adds or two XORs of them.
template <bool kDense, typename scalar_t>
inline void hash_block_corners_impl(const HashBlockPoints<scalar_t>& b, int32_t res, uint32_t factor_y,
                                    uint32_t factor_z, uint32_t mask, HashBlockCorners<scalar_t>* c) {
  using Bits = HashUnitBits<scalar_t>;
  using bits_t = typename Bits::bits_t;
  const int64_t n = b.count;
  const scalar_t res_f = scalar_t(res);
  for (int64_t p = 0; p < n; ++p) {
    scalar_t w[3][2];     // per axis: (1 - frac, frac)
    uint32_t term[3][2];  // per axis: the lower and upper vertex's term of the row
    const uint32_t factor[3] = {1u, factor_y, factor_z};
#pragma GCC unroll 3
    for (int d = 0; d < 3; ++d) {
      const bits_t v = Bits::to_bits(b.xs[d][p]);
      const bits_t clamped = Bits::clamp_unit(v);
      const scalar_t pos = Bits::from_bits(clamped) * res_f;
      int32_t i = int32_t(pos);
      i = i > res - 1 ? res - 1 : i;
      const scalar_t frac = pos - scalar_t(i);
      c->frac[d][p] = frac;
      w[d][0] = scalar_t(1) - frac;
      w[d][1] = frac;
      term[d][0] = uint32_t(i) * factor[d];
      term[d][1] = term[d][0] + factor[d];  // (i + 1) * factor, in the same uint32 arithmetic
    }
    scalar_t wxy[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) wxy[k] = w[0][k & 1] * w[1][k >> 1];  // (wx * wy) * wz below, as hash_corners
#pragma GCC unroll 8
    for (int corner = 0; corner < 8; ++corner) {
      const int bx = corner & 1, by = (corner >> 1) & 1, bz = (corner >> 2) & 1;
      c->weights[corner][p] = wxy[corner & 3] * w[2][bz];
      c->rows[corner][p] = kDense ? term[0][bx] + term[1][by] + term[2][bz]
                                  : (term[0][bx] ^ term[1][by] ^ term[2][bz]) & mask;
    }
  }
}

template <typename scalar_t>
inline void hash_block_corners(const HashBlockPoints<scalar_t>& b, int32_t res, int64_t table_size,
                               HashBlockCorners<scalar_t>* c) {
  const int64_t side = int64_t(res) + 1;
  if (side * side * side <= table_size) {  // rows < T <= 2^31: uint32 holds them exactly
    hash_block_corners_impl<true>(b, res, uint32_t(side), uint32_t(side * side), 0u, c);
  } else {
    hash_block_corners_impl<false>(b, res, 2654435761u, 805459861u, uint32_t(table_size - 1), c);
  }
}

// out[begin + p, level*F .. level*F + F - 1] for the block; `level_table` is table[level] [T, F].
template <int kFeatures, typename scalar_t>
inline void hash_block_forward(const HashBlockCorners<scalar_t>& c, int64_t n, const scalar_t* level_table,
                               int64_t features, bool prefetch, scalar_t* out /* [n, L*F] at (begin, level*F) */,
                               int64_t out_stride) {
  const int64_t F = kFeatures > 0 ? kFeatures : features;
  for (int64_t p = 0; p < n; ++p) {
    if (prefetch && p + kHashPrefetchAhead < n) {
      for (int corner = 0; corner < 8; corner += 2) {  // corners 2k, 2k+1 mostly share a line
        __builtin_prefetch(level_table + int64_t(c.rows[corner][p + kHashPrefetchAhead]) * F);
      }
    }
    scalar_t* dst = out + p * out_stride;
    if constexpr (kFeatures > 0) {
      scalar_t sum[kFeatures] = {};
      for (int corner = 0; corner < 8; ++corner) {
        const scalar_t* row = level_table + int64_t(c.rows[corner][p]) * kFeatures;
        const scalar_t w = c.weights[corner][p];
        for (int f = 0; f < kFeatures; ++f) sum[f] += w * row[f];
      }
      for (int f = 0; f < kFeatures; ++f) dst[f] = sum[f];
    } else {
      for (int64_t f = 0; f < F; ++f) dst[f] = scalar_t(0);
      for (int corner = 0; corner < 8; ++corner) {
        const scalar_t* row = level_table + int64_t(c.rows[corner][p]) * F;
        const scalar_t w = c.weights[corner][p];
        for (int64_t f = 0; f < F; ++f) dst[f] += w * row[f];
      }
    }
  }
}

// grad_table[level] [T, F] += the block's scatter; the caller owns the level (no other thread
// writes it), so plain adds, in point order then corner order.
template <int kFeatures, typename scalar_t>
inline void hash_block_backward_table(const HashBlockCorners<scalar_t>& c, int64_t n,
                                      const scalar_t* grad_out /* [n, L*F] at (begin, level*F) */, int64_t grad_stride,
                                      int64_t features, bool prefetch, scalar_t* level_grad_table) {
  const int64_t F = kFeatures > 0 ? kFeatures : features;
  for (int64_t p = 0; p < n; ++p) {
    if (prefetch && p + kHashPrefetchAhead < n) {
      for (int corner = 0; corner < 8; corner += 2) {
        __builtin_prefetch(level_grad_table + int64_t(c.rows[corner][p + kHashPrefetchAhead]) * F, 1);
      }
    }
    const scalar_t* g = grad_out + p * grad_stride;
    scalar_t gf[kFeatures > 0 ? kFeatures : 1];
    if constexpr (kFeatures > 0) {
      for (int f = 0; f < kFeatures; ++f) gf[f] = g[f];
    }
    for (int corner = 0; corner < 8; ++corner) {
      scalar_t* dst = level_grad_table + int64_t(c.rows[corner][p]) * F;
      const scalar_t w = c.weights[corner][p];
      if constexpr (kFeatures > 0) {
        for (int f = 0; f < kFeatures; ++f) dst[f] += w * gf[f];
      } else {
        for (int64_t f = 0; f < F; ++f) dst[f] += w * g[f];
      }
    }
  }
}

// grad_x[p, :] += d out[level] / d x . grad_out[level] for the block (hash_backward_x_point_level).
template <int kFeatures, typename scalar_t>
inline void hash_block_backward_x(const HashBlockCorners<scalar_t>& c, const bool (*inside)[kHashBlock] /* [3][n] */,
                                  int64_t n, const scalar_t* level_table,
                                  const scalar_t* grad_out /* [n, L*F] at (begin, level*F) */, int64_t grad_stride,
                                  int64_t features, int32_t res, bool prefetch, scalar_t (*grad_x)[3] /* [n][3] */) {
  const int64_t F = kFeatures > 0 ? kFeatures : features;
  const scalar_t res_f = scalar_t(res);
  for (int64_t p = 0; p < n; ++p) {
    if (prefetch && p + kHashPrefetchAhead < n) {
      for (int corner = 0; corner < 8; corner += 2) {
        __builtin_prefetch(level_table + int64_t(c.rows[corner][p + kHashPrefetchAhead]) * F);
      }
    }
    const scalar_t* g = grad_out + p * grad_stride;
    // hash_backward_x_point_level's sum, dw[d] += sign * w_other1 * w_other2 * dot, with the
    // products of the other two axes' weights taken once per point (a sign flip is exact, so
    // subtracting gives the same bits as adding the negated product).
    scalar_t w[3][2];
    for (int d = 0; d < 3; ++d) {
      w[d][0] = scalar_t(1) - c.frac[d][p];
      w[d][1] = c.frac[d][p];
    }
    scalar_t w_yz[4], w_zx[4], w_xy[4];  // index: bit 0 the first axis' corner bit, bit 1 the second's
    for (int k = 0; k < 4; ++k) {
      w_yz[k] = w[1][k & 1] * w[2][k >> 1];
      w_zx[k] = w[2][k & 1] * w[0][k >> 1];
      w_xy[k] = w[0][k & 1] * w[1][k >> 1];
    }
    scalar_t dw[3] = {scalar_t(0), scalar_t(0), scalar_t(0)};
#pragma GCC unroll 8
    for (int corner = 0; corner < 8; ++corner) {
      const int bx = corner & 1, by = (corner >> 1) & 1, bz = (corner >> 2) & 1;
      const scalar_t* row = level_table + int64_t(c.rows[corner][p]) * F;
      scalar_t dot = scalar_t(0);
      for (int64_t f = 0; f < F; ++f) dot += g[f] * row[f];
      const scalar_t tx = w_yz[by | (bz << 1)] * dot, ty = w_zx[bz | (bx << 1)] * dot, tz = w_xy[bx | (by << 1)] * dot;
      dw[0] = bx ? dw[0] + tx : dw[0] - tx;
      dw[1] = by ? dw[1] + ty : dw[1] - ty;
      dw[2] = bz ? dw[2] + tz : dw[2] - tz;
    }
    for (int d = 0; d < 3; ++d) grad_x[p][d] += inside[d][p] ? res_f * dw[d] : scalar_t(0);
  }
}

// ---- whole ranges: what one thread of hash_encode.cpp runs ---------------------------------

// Points [begin, end) on every level: super-blocks of points, inside one level by level (that
// level's table stays in cache across the super-block), inside that blocks of kHashBlock.
template <int kFeatures, typename scalar_t>
void hash_forward_range(const HashEncodeArgs<scalar_t>& a, int64_t begin, int64_t end, scalar_t* out /* [N, L*F] */) {
  const int64_t L = a.n_levels, T = a.table_size, F = a.features;
  const bool prefetch = hash_level_prefetch(T, F, sizeof(scalar_t));
  HashBlockPoints<scalar_t> points;
  HashBlockCorners<scalar_t> corners;
  for (int64_t super = begin; super < end; super += kHashSuperBlock) {
    const int64_t super_end = std::min(end, super + kHashSuperBlock);
    for (int64_t level = 0; level < L; ++level) {
      for (int64_t block = super; block < super_end; block += kHashBlock) {
        hash_load_block(a.x, block, std::min(super_end, block + kHashBlock), &points);
        hash_block_corners(points, a.resolutions[level], T, &corners);
        hash_block_forward<kFeatures>(corners, points.count, a.table + level * T * F, F, prefetch,
                                      out + block * L * F + level * F, L * F);
      }
    }
  }
}

// grad_table [L, T, F] on levels [level_begin, level_end), every point: this thread owns those
// levels. Each level sums its points in index order, whatever the thread count.
template <int kFeatures, typename scalar_t>
void hash_backward_table_levels(const HashEncodeArgs<scalar_t>& a, const scalar_t* grad_out /* [N, L*F] */,
                                int64_t level_begin, int64_t level_end, scalar_t* grad_table) {
  const int64_t N = a.n_points, L = a.n_levels, T = a.table_size, F = a.features;
  const bool prefetch = hash_level_prefetch(T, F, sizeof(scalar_t));
  HashBlockPoints<scalar_t> points;
  HashBlockCorners<scalar_t> corners;
  for (int64_t super = 0; super < N; super += kHashSuperBlock) {
    const int64_t super_end = std::min(N, super + kHashSuperBlock);
    for (int64_t level = level_begin; level < level_end; ++level) {
      for (int64_t block = super; block < super_end; block += kHashBlock) {
        hash_load_block(a.x, block, std::min(super_end, block + kHashBlock), &points);
        hash_block_corners(points, a.resolutions[level], T, &corners);
        hash_block_backward_table<kFeatures>(corners, points.count, grad_out + block * L * F + level * F, L * F, F,
                                             prefetch, grad_table + level * T * F);
      }
    }
  }
}

// grad_x [N, 3] (zeroed) += for points [begin, end), level by level (the levels are summed in
// order, as hash_backward_x_point_level's caller does), in super-blocks like the forward.
template <int kFeatures, typename scalar_t>
void hash_backward_x_range(const HashEncodeArgs<scalar_t>& a, const scalar_t* grad_out /* [N, L*F] */, int64_t begin,
                           int64_t end, scalar_t* grad_x /* [N, 3] */) {
  using Bits = HashUnitBits<scalar_t>;
  const int64_t L = a.n_levels, T = a.table_size, F = a.features;
  const bool prefetch = hash_level_prefetch(T, F, sizeof(scalar_t));
  HashBlockPoints<scalar_t> points;
  HashBlockCorners<scalar_t> corners;
  bool inside[3][kHashBlock];
  for (int64_t super = begin; super < end; super += kHashSuperBlock) {
    const int64_t super_end = std::min(end, super + kHashSuperBlock);
    for (int64_t level = 0; level < L; ++level) {
      for (int64_t block = super; block < super_end; block += kHashBlock) {
        hash_load_block(a.x, block, std::min(super_end, block + kHashBlock), &points);
        for (int d = 0; d < 3; ++d) {
          for (int64_t p = 0; p < points.count; ++p) inside[d][p] = Bits::inside(Bits::to_bits(points.xs[d][p]));
        }
        hash_block_corners(points, a.resolutions[level], T, &corners);
        hash_block_backward_x<kFeatures>(corners, inside, points.count, a.table + level * T * F,
                                         grad_out + block * L * F + level * F, L * F, F, a.resolutions[level], prefetch,
                                         reinterpret_cast<scalar_t(*)[3]>(grad_x + 3 * block));
      }
    }
  }
}

}  // namespace FASTNERF_CPU_CAPABILITY
}  // namespace fastnerf
