// Multiresolution hash encoding (Instant-NGP): the per-point, per-level math shared by the CPU
// and CUDA kernels. The spec, corner rule and out-of-range rule: fastnerf/reference/hash_encode.py.
//
//   pos_d = clamp(x_d, 0, 1) * N_l,  i_d = min(floor(pos_d), N_l - 1),  w_d = pos_d - i_d
//   out[l*F + f] = sum_{c=0..7} prod_d (bit_d(c) ? w_d : 1 - w_d) * table[l, row(i + bits(c)), f]
// Backward, with g = grad_out[l*F .. l*F+F-1]:
//   grad_table[l, row_c, f] += weight_c * g_f
//   grad_x_d += N_l * sum_c (d weight_c / d w_d) * <g, table[l, row_c]>   (0 where x_d was clamped)
#pragma once

#include <type_traits>

#include "common.h"

namespace fastnerf {

constexpr int kHashMaxLevels = 64;  // resolutions travel by value in the argument struct

// Raw pointers to contiguous tensors; N points, L levels, T rows per level, F features.
template <typename scalar_t>
struct HashEncodeArgs {
  const scalar_t* x;      // [N, 3]
  const scalar_t* table;  // [L, T, F]
  int64_t n_points, n_levels, table_size, features;
  int32_t resolutions[kHashMaxLevels];  // N_l
};

// One coordinate's cell at resolution `res`: lower corner, fraction, and whether x was inside
// [0, 1] (gradient flows) or clamped. NaN counts as outside and lands on corner 0.
template <typename scalar_t>
FASTNERF_HD void hash_cell(scalar_t x, int32_t res, int64_t* lower, scalar_t* frac, bool* inside) {
  const bool in = x >= scalar_t(0) && x <= scalar_t(1);
  const scalar_t clamped = in ? x : (x > scalar_t(1) ? scalar_t(1) : scalar_t(0));
  const scalar_t pos = clamped * scalar_t(res);
  int64_t i = int64_t(floor(pos));
  i = i > res - 1 ? res - 1 : (i < 0 ? 0 : i);
  *lower = i;
  *frac = pos - scalar_t(i);
  *inside = in;
}

// Table row of vertex (vx, vy, vz) at resolution `res`: dense while (res+1)^3 <= T, else the
// XOR-of-primes hash in uint32 arithmetic, mod T (a power of two).
FASTNERF_HD int64_t hash_row(int64_t vx, int64_t vy, int64_t vz, int32_t res, int64_t table_size) {
  const int64_t side = int64_t(res) + 1;
  if (side * side * side <= table_size) return vx + vy * side + vz * side * side;
  const uint32_t h = uint32_t(vx) ^ (uint32_t(vy) * 2654435761u) ^ (uint32_t(vz) * 805459861u);
  return int64_t(h & uint32_t(table_size - 1));
}

// The 8 corners of x's level-`level` cell: rows and trilinear weights, plus what the x
// gradient needs (fractions, inside flags).
template <typename scalar_t>
struct HashCorners {
  int64_t rows[8];
  scalar_t weights[8];
  scalar_t frac[3];
  bool inside[3];
};

template <typename scalar_t>
FASTNERF_HD void hash_corners(const HashEncodeArgs<scalar_t>& a, int64_t point, int level, HashCorners<scalar_t>* c) {
  const int32_t res = a.resolutions[level];
  int64_t lower[3];
  for (int d = 0; d < 3; ++d) hash_cell(a.x[3 * point + d], res, &lower[d], &c->frac[d], &c->inside[d]);
  const int64_t level_base = int64_t(level) * a.table_size;
  for (int corner = 0; corner < 8; ++corner) {
    const int bx = corner & 1, by = (corner >> 1) & 1, bz = (corner >> 2) & 1;
    const scalar_t wx = bx ? c->frac[0] : scalar_t(1) - c->frac[0];
    const scalar_t wy = by ? c->frac[1] : scalar_t(1) - c->frac[1];
    const scalar_t wz = bz ? c->frac[2] : scalar_t(1) - c->frac[2];
    c->weights[corner] = wx * wy * wz;
    c->rows[corner] = level_base + hash_row(lower[0] + bx, lower[1] + by, lower[2] + bz, res, a.table_size);
  }
}

// kFeatures > 0: F is that compile-time constant; 0: any F.
template <int kFeatures, typename scalar_t>
FASTNERF_HD void hash_forward_point_level(const HashEncodeArgs<scalar_t>& a, int64_t point, int level, scalar_t* out) {
  const int64_t F = kFeatures > 0 ? kFeatures : a.features;
  HashCorners<scalar_t> c;
  hash_corners(a, point, level, &c);
  scalar_t* dst = out + point * a.n_levels * F + level * F;
  if constexpr (kFeatures > 0) {  // sums in registers: out may alias table as far as the compiler knows
    scalar_t sum[kFeatures] = {};
    for (int corner = 0; corner < 8; ++corner) {
      const scalar_t* row = a.table + c.rows[corner] * kFeatures;
      for (int f = 0; f < kFeatures; ++f) sum[f] += c.weights[corner] * row[f];
    }
    for (int f = 0; f < kFeatures; ++f) dst[f] = sum[f];
  } else {
    for (int64_t f = 0; f < F; ++f) dst[f] = scalar_t(0);
    for (int corner = 0; corner < 8; ++corner) {
      const scalar_t* row = a.table + c.rows[corner] * F;
      for (int64_t f = 0; f < F; ++f) dst[f] += c.weights[corner] * row[f];
    }
  }
}

// Scatter of one point's level-`level` gradient into grad_table [L, T, F]. Add::add(ptr, value)
// is a plain += where one thread owns the level (CPU) or an atomicAdd (CUDA).
template <int kFeatures, typename Add, typename scalar_t>
FASTNERF_HD void hash_backward_table_point_level(const HashEncodeArgs<scalar_t>& a, const scalar_t* grad_out,
                                                 int64_t point, int level, scalar_t* grad_table) {
  const int64_t F = kFeatures > 0 ? kFeatures : a.features;
  HashCorners<scalar_t> c;
  hash_corners(a, point, level, &c);
  const scalar_t* g = grad_out + point * a.n_levels * F + level * F;
  for (int corner = 0; corner < 8; ++corner) {
    scalar_t* dst = grad_table + c.rows[corner] * F;
    for (int64_t f = 0; f < F; ++f) Add::add(dst + f, c.weights[corner] * g[f]);
  }
}

// d out / d x for one point and level, contracted with grad_out: added to grad_x[0..2].
template <int kFeatures, typename scalar_t>
FASTNERF_HD void hash_backward_x_point_level(const HashEncodeArgs<scalar_t>& a, const scalar_t* grad_out,
                                             int64_t point, int level, scalar_t grad_x[3]) {
  const int64_t F = kFeatures > 0 ? kFeatures : a.features;
  HashCorners<scalar_t> c;
  hash_corners(a, point, level, &c);
  const scalar_t* g = grad_out + point * a.n_levels * F + level * F;
  scalar_t dw[3] = {scalar_t(0), scalar_t(0), scalar_t(0)};  // d out . g / d frac_d
  for (int corner = 0; corner < 8; ++corner) {
    const scalar_t* row = a.table + c.rows[corner] * F;
    scalar_t dot = scalar_t(0);
    for (int64_t f = 0; f < F; ++f) dot += g[f] * row[f];
    const int bits[3] = {corner & 1, (corner >> 1) & 1, (corner >> 2) & 1};
    scalar_t w[3];
    for (int d = 0; d < 3; ++d) w[d] = bits[d] ? c.frac[d] : scalar_t(1) - c.frac[d];
    for (int d = 0; d < 3; ++d) {
      const scalar_t sign = bits[d] ? scalar_t(1) : scalar_t(-1);
      dw[d] += sign * w[(d + 1) % 3] * w[(d + 2) % 3] * dot;
    }
  }
  const scalar_t res = scalar_t(a.resolutions[level]);
  for (int d = 0; d < 3; ++d) grad_x[d] += c.inside[d] ? res * dw[d] : scalar_t(0);
}

// Plain accumulation, for a thread that owns the memory it adds to.
struct PlainAdd {
  template <typename T>
  FASTNERF_HD static void add(T* ptr, T value) { *ptr += value; }
};

// Calls fn(std::integral_constant<int, K>) with K = F for the feature counts worth a
// specialisation (Instant-NGP uses 2), else K = 0 (any F).
template <typename Fn>
inline void dispatch_features(int64_t features, const Fn& fn) {
  switch (features) {
    case 1: fn(std::integral_constant<int, 1>()); break;
    case 2: fn(std::integral_constant<int, 2>()); break;
    case 4: fn(std::integral_constant<int, 4>()); break;
    case 8: fn(std::integral_constant<int, 8>()); break;
    default: fn(std::integral_constant<int, 0>()); break;
  }
}

// CUDA launchers (hash_encode_cuda.cu); `stream` is a cudaStream_t. Return 0 or a cudaError_t.
// grad_x / grad_table may be null (that input needs no gradient).
template <typename scalar_t>
int hash_encode_forward_cuda(const HashEncodeArgs<scalar_t>& args, scalar_t* out, void* stream);
template <typename scalar_t>
int hash_encode_backward_cuda(const HashEncodeArgs<scalar_t>& args, const scalar_t* grad_out, scalar_t* grad_table,
                              scalar_t* grad_x, void* stream);

}  // namespace fastnerf
