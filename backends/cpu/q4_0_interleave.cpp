#include "backends/cpu/q4_0_interleave.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/numeric.h"

namespace pi::cpu {
namespace {

// Where block b of row i (of 8) of a group lies: its fp16 scale, and its 16 code bytes as four runs of 4 bytes,
// chunk_stride apart (the header's positions).
struct BlockPlace {
    size_t scale, codes, chunk_stride;
};

BlockPlace place(size_t n_blocks, size_t i, size_t b) {
    const size_t s = b / kQ4X8StepBlocks, j = b % kQ4X8StepBlocks;
    const size_t t = std::min(kQ4X8StepBlocks, n_blocks - s * kQ4X8StepBlocks);  // blocks of step s
    const size_t step = s * kQ4X8StepBytes;
    return {step + 2 * (t * i + j), step + 2 * t * kQ4X8Rows + 16 * t * i + 4 * j, 4 * t};
}

}  // namespace

bool q4_0x8_fits(const WeightMatrix &w) {
    return w.type == WeightType::Q4_0 && w.n_rows > 0 && w.n_cols > 0 && w.n_rows % kQ4X8Rows == 0;
}

WeightMatrix interleave_q4_0x8(const WeightMatrix &src, void *dst) {
    auto *out = static_cast<uint8_t *>(dst);
    const size_t nb = src.n_cols / 32, group_bytes = kQ4X8Rows * nb * sizeof(BlockQ4_0);
    for (size_t g = 0; g < src.n_rows / kQ4X8Rows; ++g, out += group_bytes) {
        // Block-major, so the writes of a step are close together and the eight rows are read as eight streams.
        for (size_t b = 0; b < nb; ++b) {
            for (size_t i = 0; i < kQ4X8Rows; ++i) {
                const uint8_t *block = src.row(g * kQ4X8Rows + i) + b * sizeof(BlockQ4_0);  // [fp16 d][16 codes]
                const BlockPlace p = place(nb, i, b);
                std::memcpy(out + p.scale, block, 2);
                for (size_t k = 0; k < 4; ++k) std::memcpy(out + p.codes + k * p.chunk_stride, block + 2 + 4 * k, 4);
            }
        }
    }
    return make_weight_matrix(dst, WeightType::Q4_0X8, src.n_rows, src.n_cols);
}

void gather_q4_0x8_row(const WeightMatrix &w, size_t r, uint8_t *dst) {
    const size_t nb = w.n_cols / 32, i = r % kQ4X8Rows;
    const uint8_t *group = q4_0x8_group(w, r / kQ4X8Rows);
    for (size_t b = 0; b < nb; ++b, dst += sizeof(BlockQ4_0)) {
        const BlockPlace p = place(nb, i, b);
        std::memcpy(dst, group + p.scale, 2);
        for (size_t k = 0; k < 4; ++k) std::memcpy(dst + 2 + 4 * k, group + p.codes + k * p.chunk_stride, 4);
    }
}

}  // namespace pi::cpu
