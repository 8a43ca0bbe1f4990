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

    // The same values rearranged for Q4_0 rows, whose byte j of a block holds weight j in its low nibble and weight
    // j + 16 in its high one. Per group of 4 blocks (g = 0 .. n_quads() - 1; blocks past n_blocks() are zeros):
    //   q4_lohi:  128 int8: [q of weights 0-15 of blocks 4g .. 4g+3] then [weights 16-31 of the same], so that the
    //             4 blocks' code bytes, gathered into one register (16 bytes per 128-bit lane), meet x's values with
    //             one AND (low nibbles) and one shift + AND (high nibbles): no per-block shuffle.
    //   q4_corr:  16 int32: lane 4j + i = -8 * (sum of q over the 4 weights of lane i among 0-15 and among 16-31) of
    //             block 4g + j (the -8 correction of the two u8 x s8 dots that lane ends up with).
    //   q4_dx:    16 floats: fp32(d) of block 4g + j in lanes 4j .. 4j + 3.
    size_t n_quads() const { return (n_blocks() + 3) / 4; }
    const int8_t *q4_lohi() const { return q4_lohi_.data(); }
    const int32_t *q4_corr() const { return q4_corr_.data(); }
    const float *q4_dx() const { return q4_dx_.data(); }

    // The same values for Q4_0X8 groups (q4_0_interleave.h), whose int32 lane j of a step's code loads holds block
    // j's bytes. Per group of 16 blocks (h = 0 .. n_hexes() - 1; blocks past n_blocks() are zeros):
    //   q4x8_q:     512 int8: for chunk k = 0..3, 64 values (byte 4j + i: weight 4k + i of block 16h + j, the low
    //               nibbles' partners), then 64 more (weight 16 + 4k + i: the high nibbles'), so that each of a row's
    //               four code loads meets its values with one AND and one shift + AND, as for q4_lohi.
    //   q4x8_corr:  16 int32: lane j = -8 * (sum of q over block 16h + j's 32 weights).
    //   q4x8_dx:    16 floats: fp32(d) of block 16h + j.
    size_t n_hexes() const { return (n_blocks() + 15) / 16; }
    const int8_t *q4x8_q() const { return q4x8_q_.data(); }
    const int32_t *q4x8_corr() const { return q4x8_corr_.data(); }
    const float *q4x8_dx() const { return q4x8_dx_.data(); }

    // Writes the ggml Q8_0 blocks of these values (bit-identical to quantize_row_q8_0 of the same input).
    void to_blocks(BlockQ8_0 *out) const;

private:
    size_t n_ = 0;
    AlignedBuffer<int8_t> q_;
    AlignedBuffer<uint16_t> d16_;
    AlignedBuffer<float> d_lanes_;
    AlignedBuffer<int32_t> neg8_;
    AlignedBuffer<int32_t> neg128_;
    AlignedBuffer<int8_t> q4_lohi_;
    AlignedBuffer<int32_t> q4_corr_;
    AlignedBuffer<float> q4_dx_;
    AlignedBuffer<int8_t> q4x8_q_;
    AlignedBuffer<int32_t> q4x8_corr_;
    AlignedBuffer<float> q4x8_dx_;

    void arrange_q4();    // fills the q4_* arrays from q, neg8 and d_lanes
    void arrange_q4x8();  // fills the q4x8_* arrays from the same
};

}  // namespace pi::cpu
