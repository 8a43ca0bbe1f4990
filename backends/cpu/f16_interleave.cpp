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
    for (size_t r = 0; r < src.n_rows; ++r) {
        uint8_t *group = out + (r / kF16X8Rows) * kF16X8Rows * src.n_cols * 2 + (r % kF16X8Rows) * row_part;
        const uint8_t *row = src.row(r);
        for (size_t s = 0; s < steps; ++s) std::memcpy(group + s * kF16X8StepBytes, row + s * row_part, row_part);
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
