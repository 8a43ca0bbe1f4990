#include "backends/cpu/q4_0_repack.h"

#include <cstring>

#include "backends/cpu/numeric.h"

namespace pi::cpu {

void repack_q4_0_row(const uint8_t *src, size_t n_cols, uint8_t *dst) {
    const size_t nb = n_cols / 32;
    for (size_t b = 0; b < nb; ++b) {
        const uint8_t *block = src + b * sizeof(BlockQ4_0);  // [fp16 d][16 code bytes]
        std::memcpy(dst + 16 * b, block + 2, 16);
        std::memcpy(dst + n_cols / 2 + 2 * b, block, 2);
    }
}

void unpack_q4_0r_row(const uint8_t *src, size_t n_cols, uint8_t *dst) {
    const size_t nb = n_cols / 32;
    for (size_t b = 0; b < nb; ++b) {
        uint8_t *block = dst + b * sizeof(BlockQ4_0);
        std::memcpy(block, q4_0r_scale(src, n_cols, b), 2);
        std::memcpy(block + 2, q4_0r_codes(src, b), 16);
    }
}

}  // namespace pi::cpu
