#include "backends/cpu/f16_interleave.h"

#include <cstring>

namespace pi::cpu {

bool f16x8_fits(const WeightMatrix &w) {
    return w.type == WeightType::F16 && w.n_rows > 0 && w.n_cols > 0 && w.n_rows % kF16X8Rows == 0 &&
           w.n_cols % kF16X8StepWeights == 0;
}

WeightMatrix interleave_f16x8(const WeightMatrix &src, void *dst) {
    auto *out = static_cast<uint8_t *>(dst);
    const size_t row_part = kF16X8StepWeights * 2, steps = src.n_cols / kF16X8StepWeights;
    // In the order of the destination: sequential writes, eight row streams read.
    for (size_t g = 0; g < src.n_rows / kF16X8Rows; ++g) {
        for (size_t s = 0; s < steps; ++s) {
            for (size_t r = 0; r < kF16X8Rows; ++r, out += row_part) {
                std::memcpy(out, src.row(g * kF16X8Rows + r) + s * row_part, row_part);
            }
        }
    }
    return make_weight_matrix(dst, WeightType::F16X8, src.n_rows, src.n_cols);
}

void gather_f16x8_row(const WeightMatrix &w, size_t r, uint16_t *dst) {
    const size_t row_part = kF16X8StepWeights * 2, steps = w.n_cols / kF16X8StepWeights;
    const uint8_t *group = f16x8_group(w, r / kF16X8Rows) + (r % kF16X8Rows) * row_part;
    auto *out = reinterpret_cast<uint8_t *>(dst);
    for (size_t s = 0; s < steps; ++s) std::memcpy(out + s * row_part, group + s * kF16X8StepBytes, row_part);
}

}  // namespace pi::cpu
