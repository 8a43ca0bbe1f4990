// F16 matrices to and from F16X8 (weight_type.h): eight rows interleaved 64 weights at a time, so that the AVX-512
// dot reads a group of eight rows as one sequential stream. From DRAM one core streamed eight separate 8 KiB rows at
// 25-29 GB/s and the same bytes interleaved at 33 (4 KiB pages) to 35 GB/s (2 MiB pages), its plain read loop at 41
// (development VM, docs/PERFORMANCE.md 2026-11-27 (fifth)): the hardware prefetcher follows one stream much better
// than eight. Exact both ways.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/weight_type.h"

namespace pi::cpu {

constexpr size_t kF16X8Rows = 8;             // rows of a group
constexpr size_t kF16X8StepWeights = 64;     // weights of a row per step
constexpr size_t kF16X8StepBytes = kF16X8Rows * kF16X8StepWeights * 2;  // one step of a group: 1 KiB

// Whether an F16 matrix can be stored as F16X8: n_rows % 8 == 0, n_cols % 64 == 0, both non-zero.
bool f16x8_fits(const WeightMatrix &w);

// Writes the F16 matrix src (f16x8_fits) into dst (n_rows * n_cols * 2 bytes) as F16X8 and returns its view.
WeightMatrix interleave_f16x8(const WeightMatrix &src, void *dst);

// The first byte of group g (rows 8g..8g+7) of an F16X8 matrix.
inline const uint8_t *f16x8_group(const WeightMatrix &w, size_t g) {
    return static_cast<const uint8_t *>(w.data) + g * kF16X8Rows * w.n_cols * 2;
}

// Row r of an F16X8 matrix as an F16 row (n_cols weights) in dst.
void gather_f16x8_row(const WeightMatrix &w, size_t r, uint16_t *dst);

}  // namespace pi::cpu
