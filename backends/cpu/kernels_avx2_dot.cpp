// AVX2 + FMA + F16C row dots (compiled with -mavx2 -mfma -mf16c; called only when the CPU has them).
//
// Float rows: 4 accumulators of 8 lanes over 32 weights per step (enough independent FMA chains to cover the FMA
// latency), then 8-weight steps into the first, a masked tail into the second; reduced in a fixed order. Memory
// traffic: the row once (streamed), x from L1/L2.
// Q8_0: per block |w| (u8) x sign(x, w) (s8) with pmaddubsw (|w| <= 128, so a pair sum <= 32512 never saturates),
// pmaddwd to 8 int32 lanes. Q4_0: nibbles (u8, 0..15) x q with pmaddubsw, int32 lanes started at -8 * (group sum
// of q) so that they hold sum (nibble - 8) * q exactly. Then acc += float(isum) * (d_w * d_x) per lane.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx2 {
namespace {

inline float hsum(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

inline __m256i tail_mask(size_t rem) {  // lanes < rem set, rem < 8
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), lane);
}

// Loads 8 weights of a float row as binary32. `Kind` selects the storage type.
enum class Kind { F32, F16, BF16 };

template <Kind K>
inline __m256 load8(const uint8_t *row, size_t k) {
    if constexpr (K == Kind::F32) {
        return _mm256_loadu_ps(reinterpret_cast<const float *>(row) + k);
    } else if constexpr (K == Kind::F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 2 * k)));
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 2 * k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
}

// The last rem < 8 weights (zero-padded): copied so no byte past the row is read.
template <Kind K>
inline __m256 load_tail(const uint8_t *row, size_t k, size_t rem) {
    const size_t esz = K == Kind::F32 ? 4 : 2;
    alignas(32) uint8_t tmp[32] = {};
    std::memcpy(tmp, row + esz * k, esz * rem);
    return load8<K>(tmp, 0);
}

template <Kind K>
float dot_float_row(const uint8_t *row, const float *x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        a0 = _mm256_fmadd_ps(load8<K>(row, k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(load8<K>(row, k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(load8<K>(row, k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(load8<K>(row, k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= n; k += 8) a0 = _mm256_fmadd_ps(load8<K>(row, k), _mm256_loadu_ps(x + k), a0);
    if (k < n) {
        const __m256 xt = _mm256_maskload_ps(x + k, tail_mask(n - k));
        a1 = _mm256_fmadd_ps(load_tail<K>(row, k, n - k), xt, a1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

inline __m256 broadcast_fp16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
}

// One Q8_0 block's contribution, float(isum) * (d_w * d_x) per lane.
inline __m256 q8_0_block(const uint8_t *row, const Q8Activation &x, size_t b, __m256 acc) {
    const uint8_t *blk = row + b * sizeof(BlockQ8_0);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk + 2));
    const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i *>(x.q() + b * 32));
    const __m256i prod = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w));
    const __m256i isum = _mm256_madd_epi16(prod, _mm256_set1_epi16(1));
    const __m256 scale = _mm256_mul_ps(broadcast_fp16(blk), _mm256_load_ps(x.d_lanes() + b * 8));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
}

inline __m256 q4_0_block(const uint8_t *row, const Q8Activation &x, size_t b, __m256 acc) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const uint8_t *blk = row + b * sizeof(BlockQ4_0);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2));
    const __m256i nib = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(packed, low4)),
                                                _mm_and_si128(_mm_srli_epi16(packed, 4), low4), 1);
    const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i *>(x.q() + b * 32));
    const __m256i isum =
        _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(nib, q), _mm256_set1_epi16(1)),
                         _mm256_load_si256(reinterpret_cast<const __m256i *>(x.neg8_sums() + b * 8)));
    const __m256 scale = _mm256_mul_ps(broadcast_fp16(blk), _mm256_load_ps(x.d_lanes() + b * 8));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
}

// Even blocks accumulate in acc0, odd ones in acc1 (two FMA chains), then acc0 + acc1.
template <__m256 (*Block)(const uint8_t *, const Q8Activation &, size_t, __m256)>
float dot_quant_row(const uint8_t *row, const Q8Activation &x) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const size_t nb = x.n_blocks();
    size_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        acc0 = Block(row, x, b, acc0);
        acc1 = Block(row, x, b + 1, acc1);
    }
    if (b < nb) acc0 = Block(row, x, b, acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
}

}  // namespace

void dot_rows(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows, size_t first,
              size_t n, float *y) {
    for (size_t i = 0; i < n; ++i) {
        const uint8_t *row = w.row(rows ? rows[i] : first + i);
        switch (w.type) {
            case WeightType::F32: y[i] = dot_float_row<Kind::F32>(row, x_f32, w.n_cols); break;
            case WeightType::F16: y[i] = dot_float_row<Kind::F16>(row, x_f32, w.n_cols); break;
            case WeightType::BF16: y[i] = dot_float_row<Kind::BF16>(row, x_f32, w.n_cols); break;
            case WeightType::Q8_0: y[i] = dot_quant_row<q8_0_block>(row, *x_q8); break;
            case WeightType::Q4_0: y[i] = dot_quant_row<q4_0_block>(row, *x_q8); break;
        }
    }
}

}  // namespace pi::cpu::detail::avx2
