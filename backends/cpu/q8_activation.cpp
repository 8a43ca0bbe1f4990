#include "backends/cpu/q8_activation.h"

#include <cstring>
#include <string>

#include "backends/cpu/isa_kernels.h"
#include "common/error.h"

namespace pi::cpu {
namespace {

void check_block_multiple(size_t n) {
    if (n % 32 != 0) {
        fail(PI_ERR_INVALID_ARGUMENT,
             "an activation of " + std::to_string(n) + " values cannot be quantized to 32-value Q8_0 blocks");
    }
}

}  // namespace

void quantize_row_q8_0(const float *x, size_t n, BlockQ8_0 *out) {
    check_block_multiple(n);
    for (size_t b = 0; b < n / 32; ++b) {
        detail::Q8BlockValues v = detail::quantize_block_q8(x + b * 32);
        out[b].d = v.d16;
        for (int i = 0; i < 32; ++i) out[b].q[i] = v.q[i];
    }
}

void Q8Activation::quantize(const float *x, size_t n, IsaLevel isa) {
    check_block_multiple(n);
    const size_t nb = n / 32;
    q_.reserve(n);
    d16_.reserve(nb);
    d_lanes_.reserve(nb * 8);
    neg8_.reserve(nb * 8);
    neg128_.reserve(nb * 8);
    n_ = n;
    const detail::Q8Out out{q_.data(), d16_.data(), d_lanes_.data(), neg8_.data(), neg128_.data()};
    detail::kernels(isa).quantize_q8(x, n, out);
    arrange_q4();
    arrange_q4x8();
}

void Q8Activation::arrange_q4() {
    const size_t nb = n_blocks(), nq = n_quads();
    q4_lohi_.reserve(nq * 128);
    q4_corr_.reserve(nq * 16);
    q4_dx_.reserve(nq * 16);
    int8_t *lohi = q4_lohi_.data();
    int32_t *corr = q4_corr_.data();
    float *dx = q4_dx_.data();
    for (size_t b = 0; b < nq * 4; ++b) {
        const size_t g = b / 4, j = b % 4;
        int8_t *lo = lohi + g * 128 + j * 16;
        int32_t *c = corr + g * 16 + j * 4;
        float *d = dx + g * 16 + j * 4;
        if (b < nb) {
            std::memcpy(lo, q_.data() + b * 32, 16);
            std::memcpy(lo + 64, q_.data() + b * 32 + 16, 16);
            for (size_t i = 0; i < 4; ++i) {
                c[i] = neg8_.data()[b * 8 + i] + neg8_.data()[b * 8 + 4 + i];
                d[i] = d_lanes_.data()[b * 8];
            }
        } else {
            std::memset(lo, 0, 16);
            std::memset(lo + 64, 0, 16);
            for (size_t i = 0; i < 4; ++i) {
                c[i] = 0;
                d[i] = 0.0f;
            }
        }
    }
}

void Q8Activation::arrange_q4x8() {
    const size_t nb = n_blocks(), nh = n_hexes();
    if (nh == 0) return;  // an empty activation: nothing to arrange (and no buffer to clear)
    q4x8_q_.reserve(nh * 512);
    q4x8_corr_.reserve(nh * 16);
    q4x8_dx_.reserve(nh * 16);
    std::memset(q4x8_q_.data(), 0, nh * 512);  // the blocks past n_blocks() meet zero codes with zero values
    for (size_t b = 0; b < nh * 16; ++b) {
        const size_t h = b / 16, j = b % 16;
        if (b >= nb) {
            q4x8_corr_.data()[b] = 0;
            q4x8_dx_.data()[b] = 0.0f;
            continue;
        }
        int8_t *chunks = q4x8_q_.data() + h * 512 + 4 * j;
        const int8_t *block = q_.data() + b * 32;
        int32_t corr = 0;
        for (size_t k = 0; k < 4; ++k) {
            std::memcpy(chunks + k * 128, block + 4 * k, 4);
            std::memcpy(chunks + k * 128 + 64, block + 16 + 4 * k, 4);
        }
        for (size_t i = 0; i < 8; ++i) corr += neg8_.data()[b * 8 + i];
        q4x8_corr_.data()[b] = corr;
        q4x8_dx_.data()[b] = d_lanes_.data()[b * 8];
    }
}

void Q8Activation::to_blocks(BlockQ8_0 *out) const {
    for (size_t b = 0; b < n_blocks(); ++b) {
        out[b].d = d16_.data()[b];
        for (int i = 0; i < 32; ++i) out[b].q[i] = q_.data()[b * 32 + i];
    }
}

}  // namespace pi::cpu
