// An activation vector quantized to 8 bits for the int8 dots against Q8_0 / Q4_0 weights.
//
// Rounding (the engine's documented activation rounding; the numpy reference applies the same): per block of 32
// values, in binary32 arithmetic,
//     amax = max |x_i|,  d = amax / 127,  id = (d != 0) ? 1 / d : 0,  q_i = round_half_even(x_i * id),
// and the block's scale is fp16(d) (round-to-nearest-even). The dot then uses fp16(d) * q_i as the activation,
// exactly like ggml's Q8_0. (ggml's scalar code rounds halves away from zero, its SIMD code to even; we always round
// to even, numpy's np.round.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/cpu_features.h"
#include "backends/cpu/numeric.h"

namespace pi::cpu {

// Quantizes n values (n a multiple of 32) into ggml Q8_0 blocks with the rounding above. Scalar reference; throws
// pi::Error(PI_ERR_INVALID_ARGUMENT) when n is not a multiple of 32.
void quantize_row_q8_0(const float *x, size_t n, BlockQ8_0 *out);

// The same values laid out for the SIMD dot kernels: the int8 values contiguous, plus per-block data that every
// weight row reuses (computing it once per activation instead of once per row and block).
class Q8Activation {
public:
    // Quantizes x[0..n) (n a multiple of 32, else PI_ERR_INVALID_ARGUMENT). Gives the same values for every ISA.
    void quantize(const float *x, size_t n, IsaLevel isa = active_isa_level());

    size_t size() const { return n_; }
    size_t n_blocks() const { return n_ / 32; }

    // q[i] for i < size(), 64-byte aligned.
    const int8_t *q() const { return q_.data(); }
    // fp16 scale d of block b.
    const uint16_t *d16() const { return d16_.data(); }
    // 8 copies of fp32(d) per block: [n_blocks][8], so a pair of blocks is one 16-float vector.
    const float *d_lanes() const { return d_lanes_.data(); }
    // Per block and lane j in 0..7: -8 * (q[4j] + ... + q[4j+3]) and -128 * the same. A u8 x s8 dot
    // (vpdpbusd / pmaddubsw) over unsigned weights u = w + c sums to dot(w, q) + c * sum(q); starting the int32 lane
    // at -c * (its group's sum) leaves exactly dot(w, q). c = 8 for Q4_0 nibbles, 128 for Q8_0 (w ^ 0x80).
    const int32_t *neg8_sums() const { return neg8_.data(); }
    const int32_t *neg128_sums() const { return neg128_.data(); }

    // Writes the ggml Q8_0 blocks of these values (bit-identical to quantize_row_q8_0 of the same input).
    void to_blocks(BlockQ8_0 *out) const;

private:
    size_t n_ = 0;
    AlignedBuffer<int8_t> q_;
    AlignedBuffer<uint16_t> d16_;
    AlignedBuffer<float> d_lanes_;
    AlignedBuffer<int32_t> neg8_;
    AlignedBuffer<int32_t> neg128_;
};

}  // namespace pi::cpu
