// Scalar number formats of the CPU backend: fp16 and bf16 conversions (exact, portable, no SIMD) and the ggml
// block layouts of Q8_0 and Q4_0. The SIMD kernels convert whole rows; these are the reference they must match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pi::cpu {

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// IEEE binary16 -> binary32. Exact for every input: subnormals are normalised, inf stays inf, a NaN keeps its sign
// and payload (shifted into the wider mantissa), so F16C's vcvtph2ps gives the same bits.
inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
    if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return bits_float(sign);  // +-0
    // Subnormal: value = mant * 2^-24. Shift the leading one up to bit 10 and lower the exponent to match.
    uint32_t e = 113;  // exponent of 2^-14 (the smallest normal) in binary32: -14 + 127
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
    }
    return bits_float(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

// binary32 -> binary16 with round-to-nearest-even, as F16C's vcvtps2ph with _MM_FROUND_TO_NEAREST_INT: overflow
// gives inf, tiny values round into subnormals or +-0, a NaN stays a (quiet) NaN with its sign.
inline uint16_t fp32_to_fp16(float f) {
    const uint32_t x = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // inf or NaN
        if (abs == 0x7f800000u) return sign | 0x7c00u;
        return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // quiet NaN, payload kept
    }
    if (abs >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
    if (abs < 0x38800000u) {
        // Result is subnormal (or zero): value / 2^-24 rounded to an integer, nearest-even.
        if (abs < 0x33000000u) return sign;  // < 2^-25: rounds to zero (2^-25 itself is a tie to even zero)
        const uint32_t e = abs >> 23;
        const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // value / 2^-24 = mant * 2^(e - 126); e <= 112 so shift >= 14
        uint32_t q = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return static_cast<uint16_t>(sign | q);  // q == 0x400 carries into the smallest normal: still correct
    }
    // Normal: rebias the exponent, round the 13 dropped bits to nearest even (a carry may bump the exponent).
    uint32_t h = ((abs - 0x38000000u) >> 13);
    const uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
}

// A 16-bit value (an fp16/bf16 scale or weight) at an address that may be unaligned, as in packed ggml blocks.
inline uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// bfloat16 is the upper half of a binary32: widening is exact.
inline float bf16_to_fp32(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// binary32 -> bfloat16 with round-to-nearest-even; overflow gives inf, subnormals are kept (not flushed), a NaN stays
// a quiet NaN with its sign.
inline uint16_t fp32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
    const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>((x + rounding) >> 16);
}

// ggml's Q8_0 block: 32 weights, w[i] = d * q[i].
struct BlockQ8_0 {
    uint16_t d;  // fp16 scale
    int8_t q[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must match ggml's layout");

// ggml's Q4_0 block: 32 weights, byte j holds weight j in its low nibble and weight j + 16 in its high nibble,
// w = d * (nibble - 8).
struct BlockQ4_0 {
    uint16_t d;  // fp16 scale
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must match ggml's layout");

constexpr size_t kQuantBlock = 32;  // weights per Q8_0 / Q4_0 block

}  // namespace pi::cpu
