// Scalar "axpy" rows: y[c] += a[i] * W[rows[i]][c], neuron by neuron in list order, the product rounded before the
// add. The SIMD levels compute exactly this, element by element, so all levels agree bit for bit.
#include <cassert>
#include <cstring>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::scalar {
void axpy_rows(const WeightMatrix &w, const float *a, const uint32_t *rows, size_t n, size_t c0, size_t c1, float *y) {
    for (size_t i = 0; i < n; ++i) {
        const uint8_t *row = w.row(rows[i]);
        const float ai = a[i];
        switch (w.type) {
            case WeightType::F32:
                for (size_t c = c0; c < c1; ++c) {
                    float v;
                    std::memcpy(&v, row + 4 * c, sizeof v);
                    y[c] += ai * v;
                }
                break;
            case WeightType::F16:
                for (size_t c = c0; c < c1; ++c) y[c] += ai * fp16_to_fp32(load_u16(row + 2 * c));
                break;
            case WeightType::BF16:
                for (size_t c = c0; c < c1; ++c) y[c] += ai * bf16_to_fp32(load_u16(row + 2 * c));
                break;
            case WeightType::Q8_0:
                for (size_t b = c0 / 32; b < c1 / 32; ++b) {
                    const uint8_t *blk = row + b * sizeof(BlockQ8_0);
                    const float s = ai * fp16_to_fp32(load_u16(blk));
                    const int8_t *q = reinterpret_cast<const int8_t *>(blk + 2);
                    for (int j = 0; j < 32; ++j) y[b * 32 + j] += s * static_cast<float>(q[j]);
                }
                break;
            case WeightType::Q4_0:
                for (size_t b = c0 / 32; b < c1 / 32; ++b) {
                    const uint8_t *blk = row + b * sizeof(BlockQ4_0);
                    const float s = ai * fp16_to_fp32(load_u16(blk));
                    const uint8_t *qs = blk + 2;
                    for (int j = 0; j < 16; ++j) {
                        y[b * 32 + j] += s * static_cast<float>((qs[j] & 0x0f) - 8);
                        y[b * 32 + j + 16] += s * static_cast<float>((qs[j] >> 4) - 8);
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

}  // namespace pi::cpu::detail::scalar
