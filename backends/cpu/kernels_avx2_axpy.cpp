// AVX2 "axpy" rows for the sparse down projection: y[c] += a[i] * W[rows[i]][c] over the active neurons, in list
// order, product rounded before the add (mul + add, never FMA), so the result equals the scalar level's bit for bit.
// Rows are taken four at a time: y is loaded and stored once per four rows, the per-element operation sequence is
// unchanged. Memory traffic: each active row's [c0, c1) slice once; y stays in L1.
#include <immintrin.h>

#include <cassert>
#include <cstring>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx2 {
namespace {

constexpr size_t kGroup = 4;

inline __m256i tail_mask(size_t rem) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), lane);
}

enum class Kind { F32, F16, BF16 };

template <Kind K>
inline __m256 load8(const uint8_t *row, size_t c) {
    if constexpr (K == Kind::F32) {
        return _mm256_loadu_ps(reinterpret_cast<const float *>(row) + c);
    } else if constexpr (K == Kind::F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 2 * c)));
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 2 * c));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
}

template <Kind K>
inline __m256 load_tail(const uint8_t *row, size_t c, size_t rem) {
    const size_t esz = K == Kind::F32 ? 4 : 2;
    alignas(32) uint8_t tmp[32] = {};
    std::memcpy(tmp, row + esz * c, esz * rem);
    return load8<K>(tmp, 0);
}

template <Kind K, int G>
void axpy_float(const uint8_t *const *row, const uint8_t *const *pf, const float *a, size_t c0, size_t c1, float *y) {
    constexpr size_t esz = K == Kind::F32 ? 4 : 2;
    __m256 av[G];
    PI_UNROLL
    for (int j = 0; j < G; ++j) av[j] = _mm256_set1_ps(a[j]);
    size_t c = c0;
    for (; c + 8 <= c1; c += 8) {
        if (pf) {
            PI_UNROLL
            for (int j = 0; j < G; ++j) prefetch_line(pf[j] + c * esz);
        }
        __m256 acc = _mm256_loadu_ps(y + c);
        PI_UNROLL
        for (int j = 0; j < G; ++j) acc = _mm256_add_ps(acc, _mm256_mul_ps(av[j], load8<K>(row[j], c)));
        _mm256_storeu_ps(y + c, acc);
    }
    if (c < c1) {
        const __m256i m = tail_mask(c1 - c);
        __m256 acc = _mm256_maskload_ps(y + c, m);
        PI_UNROLL
        for (int j = 0; j < G; ++j) acc = _mm256_add_ps(acc, _mm256_mul_ps(av[j], load_tail<K>(row[j], c, c1 - c)));
        _mm256_maskstore_ps(y + c, m, acc);
    }
}

// 32 int8 codes -> 4 x 8 floats.
inline void widen32(__m256i q, __m256 out[4]) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

// Codes (as int8) of block b of a Q8_0 or Q4_0 row (Q4_0: nibble - 8, in weight order).
template <WeightType T>
inline __m256i block_codes(const uint8_t *row, size_t b) {
    if constexpr (T == WeightType::Q8_0) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + b * sizeof(BlockQ8_0) + 2));
    } else {
        const __m128i low4 = _mm_set1_epi8(0x0f);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + b * sizeof(BlockQ4_0) + 2));
        const __m256i nib = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(packed, low4)),
                                                    _mm_and_si128(_mm_srli_epi16(packed, 4), low4), 1);
        return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
    }
}

// Blocks per chunk: each chunk first tabulates every row's block coefficients s = a[j] * d (the scalar code's
// rounded product), so the fp16 load -> convert -> multiply chain stays off the y accumulation chain.
constexpr size_t kChunk = 64;

template <WeightType T, int G>
void axpy_quant(const uint8_t *const *row, const uint8_t *const *pf, const float *a, size_t c0, size_t c1, float *y) {
    constexpr size_t block_bytes = T == WeightType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
    alignas(32) float s[G][kChunk];
    for (size_t b0 = c0 / 32; b0 < c1 / 32; b0 += kChunk) {
        const size_t b1 = b0 + kChunk < c1 / 32 ? b0 + kChunk : c1 / 32;
        PI_UNROLL
        for (int j = 0; j < G; ++j) {
            for (size_t b = b0; b < b1; ++b) s[j][b - b0] = a[j] * fp16_table_value(row[j] + b * block_bytes);
        }
        for (size_t b = b0; b < b1; ++b) {
            if (pf && (T == WeightType::Q8_0 || b % 2 == 0)) {
                PI_UNROLL
                for (int j = 0; j < G; ++j) prefetch_line(pf[j] + b * block_bytes);
            }
            float *yb = y + b * 32;
            __m256 acc[4] = {_mm256_loadu_ps(yb), _mm256_loadu_ps(yb + 8), _mm256_loadu_ps(yb + 16),
                             _mm256_loadu_ps(yb + 24)};
            PI_UNROLL
            for (int j = 0; j < G; ++j) {
                const __m256 sj = _mm256_set1_ps(s[j][b - b0]);
                __m256 wf[4];
                widen32(block_codes<T>(row[j], b), wf);
                PI_UNROLL
                for (int v = 0; v < 4; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(sj, wf[v]));
            }
            for (int v = 0; v < 4; ++v) _mm256_storeu_ps(yb + 8 * v, acc[v]);
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
        case WeightType::Q8_0: axpy_quant<WeightType::Q8_0, G>(row, pf, a, c0, c1, y); break;
        case WeightType::Q4_0: axpy_quant<WeightType::Q4_0, G>(row, pf, a, c0, c1, y); break;
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

}  // namespace pi::cpu::detail::avx2
