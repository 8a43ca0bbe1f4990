// AVX-512 "axpy" rows for the sparse down projection: y[c] += a[i] * W[rows[i]][c] over the active neurons, in list
// order, product rounded before the add (mul + add, never FMA): bit-identical to the scalar level. Rows go four at a
// time (y loaded and stored once per four rows; the per-element sequence is unchanged). Memory traffic: each active
// row's [c0, c1) slice once; y stays in L1.
//
// Q4_0 dequantizes through a 16-entry table: per row and block, table[k] = (a * d) * (k - 8) for k = 0..15 (one
// vector multiply, the same rounded product the scalar code forms), then vpermps picks each weight's entry by its
// nibble (vpermps reads only an index's low 4 bits, so the high nibble needs just a shift). On Zen 4 (2026-11,
// single core, rows in L2) that is ~13 GB/s of Q4_0; measured and dropped: converting nibbles to floats
// (vpternlogd into a float's mantissa, subtract, multiply: 10 ops per block and row against 7, -25 %), spreading
// the codes with a broadcast + vpshufb instead of vpmovzxbd (-8 %), and 8 rows per pass over y instead of 4 (no
// gain: the table lookups, not the y loads and stores, are the limit).
#include <immintrin.h>

#include <cassert>
#include <cstring>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx512 {
namespace {

constexpr size_t kGroup = 4;

enum class Kind { F32, F16, BF16 };

template <Kind K>
inline __m512 load16(const uint8_t *row, size_t c, __mmask16 m) {
    if constexpr (K == Kind::F32) {
        return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float *>(row) + c);
    } else if constexpr (K == Kind::F16) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * c));
    } else {
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * c)), 16));
    }
}

template <Kind K>
inline __m512 load16(const uint8_t *row, size_t c) {
    if constexpr (K == Kind::F32) {
        return _mm512_loadu_ps(reinterpret_cast<const float *>(row) + c);
    } else if constexpr (K == Kind::F16) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * c)));
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * c));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

template <Kind K, int G>
void axpy_float(const uint8_t *const *row, const uint8_t *const *pf, const float *a, size_t c0, size_t c1, float *y) {
    constexpr size_t esz = K == Kind::F32 ? 4 : 2;
    __m512 av[G];
    PI_UNROLL
    for (int j = 0; j < G; ++j) av[j] = _mm512_set1_ps(a[j]);
    size_t c = c0;
    for (; c + 16 <= c1; c += 16) {
        if (pf) {
            PI_UNROLL
            for (int j = 0; j < G; ++j) prefetch_line(pf[j] + c * esz);
        }
        __m512 acc = _mm512_loadu_ps(y + c);
        PI_UNROLL
        for (int j = 0; j < G; ++j) acc = _mm512_add_ps(acc, _mm512_mul_ps(av[j], load16<K>(row[j], c)));
        _mm512_storeu_ps(y + c, acc);
    }
    if (c < c1) {
        const __mmask16 m = static_cast<__mmask16>((1u << (c1 - c)) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(m, y + c);
        PI_UNROLL
        for (int j = 0; j < G; ++j) acc = _mm512_add_ps(acc, _mm512_mul_ps(av[j], load16<K>(row[j], c, m)));
        _mm512_mask_storeu_ps(y + c, m, acc);
    }
}

// Blocks per chunk of the quantized kernels. Each chunk first computes every row's block coefficients
// s[j][b] = a[j] * d (the same rounded product as the scalar code) into a small table, then streams the codes: the
// fp16 load -> convert -> multiply chain then sits outside the y accumulation chain (computing it inline halves
// Q4_0 throughput on Zen 4).
constexpr size_t kChunk = 64;

// The coefficients are gathered a window at a time: the fp16 scales of several blocks sit at fixed words of a
// 128-byte window (Q4_0: 8 blocks at words 0, 9, ..., 63; Q8_0: 4 blocks at words 0, 17, 34, 51), so one
// two-source word permute collects them, one vcvtph2ps converts them (exact, as fp16_table) and one multiply forms
// the products. Scalar code through fp16_table did the same per block and cost a sixth of the Q4_0 kernel's time.
// Blocks the windows leave over go through the table.
template <size_t BlockBytes>
inline void coefficients_tail(const uint8_t *row, float a, size_t b, size_t b0, size_t b1, float *s) {
    for (; b < b1; ++b) s[b - b0] = a * fp16_table_value(row + b * BlockBytes);
}

// Q4_0: 16 blocks (288 bytes) per step, two windows of 8 (at bytes 0 and 144).
template <int G>
inline void block_coefficients_q4_0(const uint8_t *const *row, const float *a, size_t b0, size_t b1,
                                    float (*s)[kChunk]) {
    const __m512i idx = _mm512_set_epi16(63, 54, 45, 36, 27, 18, 9, 0, 63, 54, 45, 36, 27, 18, 9, 0, 63, 54, 45, 36,
                                         27, 18, 9, 0, 63, 54, 45, 36, 27, 18, 9, 0);
    PI_UNROLL
    for (int j = 0; j < G; ++j) {
        const __m512 aj = _mm512_set1_ps(a[j]);
        size_t b = b0;
        for (; b + 16 <= b1; b += 16) {
            const uint8_t *p = row[j] + b * sizeof(BlockQ4_0);
            const __m512i h0 = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
            const __m512i h1 =
                _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 144), idx, _mm512_loadu_si512(p + 208));
            const __m512i h = _mm512_mask_blend_epi16(0xff00, h0, h1);
            _mm512_store_ps(&s[j][b - b0], _mm512_mul_ps(aj, _mm512_cvtph_ps(_mm512_castsi512_si256(h))));
        }
        coefficients_tail<sizeof(BlockQ4_0)>(row[j], a[j], b, b0, b1, s[j]);
    }
}

// Q8_0: 8 blocks (272 bytes) per step, two windows of 4 (at bytes 0 and 136).
template <int G>
inline void block_coefficients_q8_0(const uint8_t *const *row, const float *a, size_t b0, size_t b1,
                                    float (*s)[kChunk]) {
    const __m512i idx0 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 51, 34, 17, 0);
    const __m512i idx1 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51,
                                          34, 17, 0, 0, 0, 0, 0);
    PI_UNROLL
    for (int j = 0; j < G; ++j) {
        const __m256 aj = _mm256_set1_ps(a[j]);
        size_t b = b0;
        for (; b + 8 <= b1; b += 8) {
            const uint8_t *p = row[j] + b * sizeof(BlockQ8_0);
            const __m512i h0 = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx0, _mm512_loadu_si512(p + 64));
            const __m512i h1 =
                _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 136), idx1, _mm512_loadu_si512(p + 200));
            const __m128i h = _mm512_castsi512_si128(_mm512_mask_blend_epi16(0xf0, h0, h1));
            _mm256_store_ps(&s[j][b - b0], _mm256_mul_ps(aj, _mm256_cvtph_ps(h)));
        }
        coefficients_tail<sizeof(BlockQ8_0)>(row[j], a[j], b, b0, b1, s[j]);
    }
}

template <int G>
void axpy_q8_0(const uint8_t *const *row, const uint8_t *const *pf, const float *a, size_t c0, size_t c1, float *y) {
    alignas(64) float s[G][kChunk];
    for (size_t b0 = c0 / 32; b0 < c1 / 32; b0 += kChunk) {
        const size_t b1 = b0 + kChunk < c1 / 32 ? b0 + kChunk : c1 / 32;
        block_coefficients_q8_0<G>(row, a, b0, b1, s);
        for (size_t b = b0; b < b1; ++b) {
            if (pf) {
                PI_UNROLL
                for (int j = 0; j < G; ++j) prefetch_line(pf[j] + b * sizeof(BlockQ8_0));
            }
            float *yb = y + b * 32;
            const size_t off = b * sizeof(BlockQ8_0);
            __m512 lo = _mm512_loadu_ps(yb), hi = _mm512_loadu_ps(yb + 16);
            PI_UNROLL
            for (int j = 0; j < G; ++j) {
                const __m512 sj = _mm512_set1_ps(s[j][b - b0]);
                const __m128i q_lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row[j] + off + 2));
                const __m128i q_hi = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row[j] + off + 18));
                lo = _mm512_add_ps(lo, _mm512_mul_ps(sj, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q_lo))));
                hi = _mm512_add_ps(hi, _mm512_mul_ps(sj, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q_hi))));
            }
            _mm512_storeu_ps(yb, lo);
            _mm512_storeu_ps(yb + 16, hi);
        }
    }
}

template <int G>
void axpy_q4_0(const uint8_t *const *row, const uint8_t *const *pf, const float *a, size_t c0, size_t c1, float *y) {
    const __m512 codes = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    alignas(64) float s[G][kChunk];
    for (size_t b0 = c0 / 32; b0 < c1 / 32; b0 += kChunk) {
        const size_t b1 = b0 + kChunk < c1 / 32 ? b0 + kChunk : c1 / 32;
        block_coefficients_q4_0<G>(row, a, b0, b1, s);
        for (size_t b = b0; b < b1; ++b) {
            if (pf && b % 2 == 0) {  // 18-byte blocks: every other block starts a new line
                PI_UNROLL
                for (int j = 0; j < G; ++j) prefetch_line(pf[j] + b * sizeof(BlockQ4_0));
            }
            float *yb = y + b * 32;
            const size_t off = b * sizeof(BlockQ4_0);
            __m512 lo = _mm512_loadu_ps(yb), hi = _mm512_loadu_ps(yb + 16);
            PI_UNROLL
            for (int j = 0; j < G; ++j) {
                const __m512 table = _mm512_mul_ps(_mm512_set1_ps(s[j][b - b0]), codes);
                const __m512i idx =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(row[j] + off + 2)));
                lo = _mm512_add_ps(lo, _mm512_permutexvar_ps(idx, table));
                hi = _mm512_add_ps(hi, _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), table));
            }
            _mm512_storeu_ps(yb, lo);
            _mm512_storeu_ps(yb + 16, hi);
        }
    }
}

template <int G>
void axpy_group(const WeightMatrix &w, const uint8_t *const *row, const uint8_t *const *pf, const float *a, size_t c0,
                size_t c1, float *y) {
    switch (w.type) {
        case WeightType::F32: axpy_float<Kind::F32, G>(row, pf, a, c0, c1, y); break;
        case WeightType::F16: axpy_float<Kind::F16, G>(row, pf, a, c0, c1, y); break;
        case WeightType::BF16: axpy_float<Kind::BF16, G>(row, pf, a, c0, c1, y); break;
        case WeightType::Q8_0: axpy_q8_0<G>(row, pf, a, c0, c1, y); break;
        case WeightType::Q4_0: axpy_q4_0<G>(row, pf, a, c0, c1, y); break;
        case WeightType::F16X8:
        case WeightType::Q4_0X8:
        case WeightType::Q4_0R:  // the kernel table unpacks these rows before this level sees them
            assert(!"repacked rows (Q4_0R, F16X8, Q4_0X8) reached a kernel that reads file layouts");
            break;
    }
}

}  // namespace

void axpy_rows(const WeightMatrix &w, const float *a, const uint32_t *rows, size_t n, size_t c0, size_t c1, float *y) {
    const uint8_t *row[kGroup];
    size_t i = 0;
    const uint8_t *pf[kGroup];
    // This thread reads the [c0, c1) part of each row: groups of kGroup such parts.
    const size_t lead = prefetch_lead(kGroup * (weight_row_bytes(w.type, c1) - weight_row_bytes(w.type, c0)));
    for (; i + kGroup <= n; i += kGroup) {
        for (size_t j = 0; j < kGroup; ++j) row[j] = w.row(rows[i + j]);
        axpy_group<kGroup>(w, row, prefetch_group(w, rows, 0, i, n, lead, pf), a + i, c0, c1, y);
    }
    for (; i < n; ++i) {
        row[0] = w.row(rows[i]);
        axpy_group<1>(w, row, nullptr, a + i, c0, c1, y);
    }
}

}  // namespace pi::cpu::detail::avx512
