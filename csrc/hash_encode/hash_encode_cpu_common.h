// Constants and bit tests shared by every instruction-set copy of hash_encode_cpu.h.
#pragma once

#include <cstdint>
#include <cstring>

namespace fastnerf {

constexpr int64_t kHashBlock = 256;  // points whose corners are computed together (stay in L1)
// Points taken level by level before moving on to the next super-block: one level's table is
// reused across all of them. Measured: whole ranges of 2^14 and 2^18 points, level by level,
// beat super-blocks of 2^11 to 2^16 (that keep the [points, L*F] outputs in cache) at T = 2^15
// and 2^19; the bound keeps one level's pass over the outputs within a few MB for huge N.
constexpr int64_t kHashSuperBlock = int64_t(1) << 18;
// A level whose table is larger than this (bytes) is read with software prefetch: its rows miss
// the L2 cache, and prefetching a few points ahead overlaps those misses.
constexpr int64_t kHashPrefetchBytes = int64_t(512) << 10;
constexpr int kHashPrefetchAhead = 8;  // points

inline bool hash_level_prefetch(int64_t table_size, int64_t features, int64_t scalar_bytes) {
  return table_size * features * scalar_bytes > kHashPrefetchBytes;
}

// x of a block, one array per coordinate: xs[d][p] = x[begin + p, d].
template <typename scalar_t>
struct HashBlockPoints {
  scalar_t xs[3][kHashBlock];
  int64_t count;
};

// The 8 corners of every point of a block at one level.
template <typename scalar_t>
struct HashBlockCorners {
  uint32_t rows[8][kHashBlock];  // row within the level's table (< T <= 2^31)
  scalar_t weights[8][kHashBlock];
  scalar_t frac[3][kHashBlock];  // fraction in the cell per coordinate (for the x gradient)
};

// hash_cell's range tests on the bits of x: inside = 0 <= x <= 1 (-0 included), above_one =
// 1 < x <= inf. NaN is neither. Integer compares vectorise where float compares (which may trap)
// do not.
template <typename scalar_t>
struct HashUnitBits;

template <>
struct HashUnitBits<float> {
  using bits_t = uint32_t;
  static constexpr bits_t kOne = 0x3f800000u, kInf = 0x7f800000u, kMinusZero = 0x80000000u;
  static bits_t to_bits(float x) {
    bits_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  }
  static float from_bits(bits_t b) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    return x;
  }
  static bool inside(bits_t b) { return (b <= kOne) | (b == kMinusZero); }
  static bool above_one(bits_t b) { return (b > kOne) & (b <= kInf); }
  // The bits of x clamped to [0, 1], NaN to 0, by masks (no branch): inside and above_one exclude each other.
  static bits_t clamp_unit(bits_t b) {
    return (b & (bits_t(0) - bits_t(inside(b)))) | (kOne & (bits_t(0) - bits_t(above_one(b))));
  }
};

template <>
struct HashUnitBits<double> {
  using bits_t = uint64_t;
  static constexpr bits_t kOne = 0x3ff0000000000000ull, kInf = 0x7ff0000000000000ull,
                          kMinusZero = 0x8000000000000000ull;
  static bits_t to_bits(double x) {
    bits_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  }
  static double from_bits(bits_t b) {
    double x;
    std::memcpy(&x, &b, sizeof x);
    return x;
  }
  static bool inside(bits_t b) { return (b <= kOne) | (b == kMinusZero); }
  static bool above_one(bits_t b) { return (b > kOne) & (b <= kInf); }
  // The bits of x clamped to [0, 1], NaN to 0, by masks (no branch): inside and above_one exclude each other.
  static bits_t clamp_unit(bits_t b) {
    return (b & (bits_t(0) - bits_t(inside(b)))) | (kOne & (bits_t(0) - bits_t(above_one(b))));
  }
};

}  // namespace fastnerf
