// Q4_0 matrices to and from Q4_0X8 (weight_type.h): eight rows interleaved sixteen blocks at a time, so that the
// AVX-512 dot reads a group of eight rows as one sequential stream instead of sixteen (eight rows' codes and eight
// rows' scales in Q4_0R), and so that each int32 lane of its vpdpbusd sums one whole block: a block's 32 products
// are one integer, converted and scaled once (docs/CPU.md). Exact both ways.
//
// Byte positions. A group g (rows 8g .. 8g+7) starts at byte g * 8 * row_bytes (row_bytes = n_cols / 32 * 18, as in
// Q4_0) and holds ceil(n_cols / 512) steps; step s covers blocks 16s .. 16s + t - 1 of each row, t = 16 except in a
// last step of fewer blocks, starts at byte s * 2304 of the group and holds 8 * 18 * t bytes:
//   bytes 0 .. 16t - 1:      the 8t fp16 scales, row 0's t blocks first (block 16s first), then row 1's, .., row 7's;
//   bytes 16t .. 144t - 1:   the code bytes, row 0's 16t first, then row 1's, .., row 7's; a row's 16t bytes are four
//                            chunks k = 0..3 of 4t bytes, and byte 4j + i of chunk k is byte 4k + i of block j's 16
//                            code bytes (which, as in Q4_0, hold weight m in the low nibble of byte m and weight
//                            m + 16 in the high one).
// So a row's full step is four 64-byte loads whose int32 lane j holds block j's bytes, and its 16 scales one 32-byte
// load, taken at the start of the step with the other rows' (one ascending stream).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/weight_type.h"

namespace pi::cpu {

constexpr size_t kQ4X8Rows = 8;                                                   // rows of a group
constexpr size_t kQ4X8StepBlocks = 16;                                            // blocks of a row per full step
constexpr size_t kQ4X8ScaleBytes = kQ4X8Rows * 2 * kQ4X8StepBlocks;               // 256: a full step's scales
constexpr size_t kQ4X8StepBytes = kQ4X8ScaleBytes + kQ4X8Rows * 16 * kQ4X8StepBlocks;  // 2304: scales, then codes

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
