// Scalar conversions: dequantizing rows to binary32, binary32 to bf16, activation quantization, and the bandwidth
// probe's read loop.
#include <cassert>
#include <cstring>
#include <vector>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::scalar {
void rows_to_f32(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld) {
    for (size_t r = r0; r < r1; ++r) {
        const uint8_t *row = w.row(r);
        float *o = out + (r - r0) * ld;
        switch (w.type) {
            case WeightType::F32: std::memcpy(o, row, w.n_cols * sizeof(float)); break;
            case WeightType::F16:
                for (size_t c = 0; c < w.n_cols; ++c) o[c] = fp16_to_fp32(load_u16(row + 2 * c));
                break;
            case WeightType::BF16:
                for (size_t c = 0; c < w.n_cols; ++c) o[c] = bf16_to_fp32(load_u16(row + 2 * c));
                break;
            case WeightType::Q8_0:
                for (size_t b = 0; b < w.n_cols / 32; ++b) {
                    const uint8_t *blk = row + b * sizeof(BlockQ8_0);
                    const float d = fp16_to_fp32(load_u16(blk));
                    const int8_t *q = reinterpret_cast<const int8_t *>(blk + 2);
                    for (int j = 0; j < 32; ++j) o[b * 32 + j] = d * static_cast<float>(q[j]);
                }
                break;
            case WeightType::Q4_0:
                for (size_t b = 0; b < w.n_cols / 32; ++b) {
                    const uint8_t *blk = row + b * sizeof(BlockQ4_0);
                    const float d = fp16_to_fp32(load_u16(blk));
                    for (int j = 0; j < 16; ++j) {
                        o[b * 32 + j] = d * static_cast<float>((blk[2 + j] & 0x0f) - 8);
                        o[b * 32 + j + 16] = d * static_cast<float>((blk[2 + j] >> 4) - 8);
                    }
                }
                break;
            case WeightType::F16X8:
            case WeightType::Q4_0X8:
            case WeightType::Q4_0R:  // the kernel table unpacks these rows before this level sees them
                assert(!"repacked rows (Q4_0R, F16X8, Q4_0X8) reached a kernel that reads file layouts");
                break;
        }
    }
}

void f32_to_bf16(const float *x, size_t n, uint16_t *out) {
    for (size_t i = 0; i < n; ++i) out[i] = fp32_to_bf16(x[i]);
}

void f32_to_f16(const float *x, size_t n, uint16_t *out) {
    for (size_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

void rows_to_bf16(const WeightMatrix &w, size_t r0, size_t r1, uint16_t *out, size_t ld) {
    std::vector<float> row(w.n_cols);
    for (size_t r = r0; r < r1; ++r) {
        rows_to_f32(w, r, r + 1, row.data(), w.n_cols);
        f32_to_bf16(row.data(), w.n_cols, out + (r - r0) * ld);
    }
}

void quantize_q8(const float *x, size_t n, const Q8Out &out) {
    for (size_t b = 0; b < n / 32; ++b) store_q8_block(quantize_block_q8(x + b * 32), b, out);
}

float read_sum(const void *data, size_t bytes) {
    const float *p = static_cast<const float *>(data);
    float s[8] = {};
    for (size_t i = 0; i < bytes / sizeof(float); i += 8) {
        if (i % 16 == 0) prefetch_line(reinterpret_cast<const uint8_t *>(p + i) + kPrefetchBytes);
        for (int j = 0; j < 8; ++j) s[j] += p[i + j];
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

}  // namespace pi::cpu::detail::scalar
