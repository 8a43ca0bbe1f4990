// Q4_0 matrices to and from Q4_0X8 (weight_type.h): eight rows interleaved four blocks at a time, so that the
// AVX-512 dot reads a group of eight rows as one sequential stream instead of sixteen (eight rows' codes and eight
// rows' scales in Q4_0R). One core from DRAM streamed Q4_0R rows at 25-28 GB/s on the development VM, Q4_0X8 groups
// at 33-37 (its read loop: 41-43; docs/PERFORMANCE.md 2026-11-27 (seventh)): the hardware prefetcher follows one
// stream much better than sixteen. Exact both ways.
//
// Byte positions. A group g (rows 8g .. 8g+7) starts at byte g * 8 * row_bytes (row_bytes = n_cols / 32 * 18, as in
// Q4_0) and holds ceil(n_cols / 128) steps; step s covers blocks 4s .. 4s + t - 1 of each row, t = 4 except in a
// last step of fewer blocks, starts at byte s * 576 of the group and holds 8 * 18 * t bytes:
//   bytes 0 .. 128t - 1:       row 0's t blocks' 16 code bytes (block 4s first, each block's bytes as in Q4_0: byte
//                              j holds weight j in its low nibble and weight j + 16 in its high one), then row 1's,
//                              .., row 7's;
//   bytes 128t .. 144t - 1:    the 8t fp16 scales, row 0's blocks 4s .. 4s + t - 1, then row 1's, .., row 7's.
// So a row's full step is one 64-byte load, as in Q4_0R, and the eight rows' 32 scales of a full step one more.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/weight_type.h"

namespace pi::cpu {

constexpr size_t kQ4X8Rows = 8;                                                   // rows of a group
constexpr size_t kQ4X8StepBlocks = 4;                                             // blocks of a row per full step
constexpr size_t kQ4X8CodeBytes = kQ4X8Rows * 16 * kQ4X8StepBlocks;                // 512: a full step's codes
constexpr size_t kQ4X8StepBytes = kQ4X8CodeBytes + kQ4X8Rows * 2 * kQ4X8StepBlocks;  // 576: codes, then scales

// Whether a Q4_0 matrix can be stored as Q4_0X8: n_rows % 8 == 0 (n_cols is whole blocks, as any Q4_0 row's),
// both non-zero.
bool q4_0x8_fits(const WeightMatrix &w);

// Writes the Q4_0 matrix src (q4_0x8_fits) into dst (n_rows * row bytes) as Q4_0X8 and returns its view.
WeightMatrix interleave_q4_0x8(const WeightMatrix &src, void *dst);

// The first byte of group g (rows 8g..8g+7) of a Q4_0X8 matrix.
inline const uint8_t *q4_0x8_group(const WeightMatrix &w, size_t g) {
    return static_cast<const uint8_t *>(w.data) + g * kQ4X8Rows * w.row_stride;
}

// Row r of a Q4_0X8 matrix as a Q4_0 row (n_cols / 32 blocks) in dst.
void gather_q4_0x8_row(const WeightMatrix &w, size_t r, uint8_t *dst);

}  // namespace pi::cpu
