// Scalar row dots: the portable fallback and the readable statement of what the SIMD levels compute.
// Float rows: four partial sums over k mod 4, combined as (s0 + s1) + (s2 + s3).
// Q8_0 / Q4_0 rows: per block an exact integer dot of the weight codes with the activation's int8 values, then
// acc += isum * (d_w * d_x) in block order.
#include <cassert>
#include <cstring>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::scalar {
namespace {


template <typename Load>
float dot_float_row(const uint8_t *row, const float *x, size_t n, Load load) {
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        for (int j = 0; j < 4; ++j) s[j] += load(row, k + j) * x[k + j];
    }
    for (; k < n; ++k) s[k % 4] += load(row, k) * x[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

float load_f32(const uint8_t *row, size_t k) {
    float v;
    std::memcpy(&v, row + 4 * k, sizeof v);
    return v;
}
float load_f16(const uint8_t *row, size_t k) { return fp16_to_fp32(load_u16(row + 2 * k)); }
float load_bf16(const uint8_t *row, size_t k) { return bf16_to_fp32(load_u16(row + 2 * k)); }

float dot_q8_0_row(const uint8_t *row, const Q8Activation &x) {
    const int8_t *xq = x.q();
    float acc = 0.0f;
    for (size_t b = 0; b < x.n_blocks(); ++b) {
        const uint8_t *blk = row + b * sizeof(BlockQ8_0);
        const int8_t *wq = reinterpret_cast<const int8_t *>(blk + 2);
        int32_t isum = 0;
        for (int i = 0; i < 32; ++i) isum += wq[i] * xq[b * 32 + i];
        acc += static_cast<float>(isum) * (fp16_to_fp32(load_u16(blk)) * x.d_lanes()[b * 8]);
    }
    return acc;
}

float dot_q4_0_row(const uint8_t *row, const Q8Activation &x) {
    const int8_t *xq = x.q();
    float acc = 0.0f;
    for (size_t b = 0; b < x.n_blocks(); ++b) {
        const uint8_t *blk = row + b * sizeof(BlockQ4_0);
        const uint8_t *qs = blk + 2;
        int32_t isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += ((qs[j] & 0x0f) - 8) * xq[b * 32 + j];
            isum += ((qs[j] >> 4) - 8) * xq[b * 32 + j + 16];
        }
        acc += static_cast<float>(isum) * (fp16_to_fp32(load_u16(blk)) * x.d_lanes()[b * 8]);
    }
    return acc;
}

}  // namespace

void dot_rows(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows, size_t first,
              size_t n, float *y) {
    for (size_t i = 0; i < n; ++i) {
        const uint8_t *row = w.row(rows ? rows[i] : first + i);
        switch (w.type) {
            case WeightType::F32: y[i] = dot_float_row(row, x_f32, w.n_cols, load_f32); break;
            case WeightType::F16: y[i] = dot_float_row(row, x_f32, w.n_cols, load_f16); break;
            case WeightType::BF16: y[i] = dot_float_row(row, x_f32, w.n_cols, load_bf16); break;
            case WeightType::Q8_0: y[i] = dot_q8_0_row(row, *x_q8); break;
            case WeightType::Q4_0: y[i] = dot_q4_0_row(row, *x_q8); break;
            case WeightType::F16X8:
            case WeightType::Q4_0X8:
            case WeightType::Q4_0R:  // the kernel table unpacks these rows before this level sees them
                assert(!"repacked rows (Q4_0R, F16X8, Q4_0X8) reached a kernel that reads file layouts");
                break;
        }
    }
}

}  // namespace pi::cpu::detail::scalar
