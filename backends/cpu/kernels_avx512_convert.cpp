// AVX-512 conversions: rows to binary32 (exact), binary32 to bf16 (integer round-to-nearest-even: vcvtneps2bf16
// would flush subnormals), weight rows to bf16 (vcvtne2ps2bf16 where exact, see rows_to_bf16), activation
// quantization (the same bits as quantize_block_q8), and the bandwidth probe's read loop.
#include <immintrin.h>

#include <cassert>
#include <cstring>
#include <vector>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx512 {
namespace {

inline float load_fp16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

void row_to_f32(const WeightMatrix &w, const uint8_t *row, float *o) {
    const size_t n = w.n_cols;
    size_t c = 0;
    switch (w.type) {
        case WeightType::F32: std::memcpy(o, row, n * sizeof(float)); return;
        case WeightType::F16:
            for (; c + 16 <= n; c += 16) {
                _mm512_storeu_ps(o + c,
                                 _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * c))));
            }
            if (c < n) {
                const __mmask16 m = static_cast<__mmask16>((1u << (n - c)) - 1);
                _mm512_mask_storeu_ps(o + c, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * c)));
            }
            return;
        case WeightType::BF16:
            for (; c + 16 <= n; c += 16) {
                const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * c));
                _mm512_storeu_ps(o + c, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
            }
            if (c < n) {
                const __mmask16 m = static_cast<__mmask16>((1u << (n - c)) - 1);
                const __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * c);
                _mm512_mask_storeu_ps(o + c, m, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
            }
            return;
        case WeightType::Q8_0:
            for (size_t b = 0; b < n / 32; ++b) {
                const uint8_t *blk = row + b * sizeof(BlockQ8_0);
                const __m512 d = _mm512_set1_ps(load_fp16(blk));
                for (int v = 0; v < 2; ++v) {
                    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2 + 16 * v));
                    _mm512_storeu_ps(o + b * 32 + 16 * v,
                                     _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
                }
            }
            return;
        case WeightType::Q4_0: {
            const __m512 codes = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
            for (size_t b = 0; b < n / 32; ++b) {
                const uint8_t *blk = row + b * sizeof(BlockQ4_0);
                const __m512 table = _mm512_mul_ps(_mm512_set1_ps(load_fp16(blk)), codes);  // exact products
                const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2)));
                _mm512_storeu_ps(o + b * 32, _mm512_permutexvar_ps(idx, table));
                _mm512_storeu_ps(o + b * 32 + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), table));
            }
            return;
        }
        case WeightType::F16X8:
        case WeightType::Q4_0X8:
        case WeightType::Q4_0R:  // the kernel table unpacks these rows before this level sees them
            assert(!"repacked rows (Q4_0R, F16X8, Q4_0X8) reached a kernel that reads file layouts");
            break;
    }
}

inline __m256i bf16_round(__m512 x) {
    const __m512i v = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(v, 16), _mm512_set1_epi32(1));
    const __m512i rounded =
        _mm512_srli_epi32(_mm512_add_epi32(v, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    const __mmask16 nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(v, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i r = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(v, 16), _mm512_set1_epi32(0x0040));
    return _mm512_cvtepi32_epi16(r);
}

}  // namespace

void rows_to_f32(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld) {
    for (size_t r = r0; r < r1; ++r) row_to_f32(w, w.row(r), out + (r - r0) * ld);
}

void f32_to_bf16(const float *x, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + i), bf16_round(_mm512_loadu_ps(x + i)));
    }
    if (i < n) {
        const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(out + i, m, bf16_round(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void f32_to_f16(const float *x, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    }
    if (i < n) {
        const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(out + i, m,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
    }
}

// Weights straight to bf16. With AVX512_BF16, vcvtne2ps2bf16 rounds 32 values in one instruction (round to nearest
// even; it flushes subnormal inputs, which F16/Q8_0/Q4_0 weights never are in binary32, so the bits equal
// fp32_to_bf16's). F32 rows (which may hold subnormals) and CPUs without AVX512_BF16 take the exact integer rounding.
void rows_to_bf16(const WeightMatrix &w, size_t r0, size_t r1, uint16_t *out, size_t ld) {
    const size_t n = w.n_cols;
    const bool native = cpu_features().avx512_bf16 && w.type != WeightType::F32;
    thread_local std::vector<float> tmp;
    for (size_t r = r0; r < r1; ++r) {
        const uint8_t *row = w.row(r);
        uint16_t *o = out + (r - r0) * ld;
        if (w.type == WeightType::BF16) {
            std::memcpy(o, row, n * sizeof(uint16_t));
            continue;
        }
        if (!native) {
            tmp.resize(n);
            row_to_f32(w, row, tmp.data());
            f32_to_bf16(tmp.data(), n, o);
            continue;
        }
        auto store32 = [](uint16_t *dst, __m512 lo, __m512 hi) {
            _mm512_storeu_si512(dst, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
        };
        if (w.type == WeightType::F16) {
            size_t c = 0;
            for (; c + 32 <= n; c += 32) {
                const __m512 lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * c)));
                const __m512 hi =
                    _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * c + 32)));
                store32(o + c, lo, hi);
            }
            for (; c < n; c += 16) {
                const size_t left = n - c < 16 ? n - c : 16;
                const __mmask16 m = static_cast<__mmask16>((1u << left) - 1);
                const __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * c));
                _mm256_mask_storeu_epi16(o + c, m, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
            }
        } else if (w.type == WeightType::Q8_0) {
            for (size_t b = 0; b < n / 32; ++b) {
                const uint8_t *blk = row + b * sizeof(BlockQ8_0);
                const __m512 d = _mm512_set1_ps(fp16_table_value(blk));
                const __m128i q_lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2));
                const __m128i q_hi = _mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 18));
                store32(o + b * 32, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q_lo))),
                        _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q_hi))));
            }
        } else {  // Q4_0
            const __m512 codes = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
            for (size_t b = 0; b < n / 32; ++b) {
                const uint8_t *blk = row + b * sizeof(BlockQ4_0);
                const __m512 table = _mm512_mul_ps(_mm512_set1_ps(fp16_table_value(blk)), codes);
                const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2)));
                store32(o + b * 32, _mm512_permutexvar_ps(idx, table),
                        _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), table));
            }
        }
    }
}

void quantize_q8(const float *x, size_t n, const Q8Out &out) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (size_t b = 0; b < n / 32; ++b) {
        const __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
        // max(|v|, acc): a NaN lane returns the second operand, so NaNs are skipped as std::fmax skips them.
        const __m512 m = _mm512_max_ps(_mm512_abs_ps(v1), _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps()));
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        __m128i q8[2];
        const __m512 v[2] = {v0, v1};
        for (int j = 0; j < 2; ++j) {
            __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v[j], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm512_min_ps(hi, _mm512_max_ps(lo, r));  // constant first: a NaN passes through, zeroed next
            const __mmask16 ordered = _mm512_cmp_ps_mask(r, r, _CMP_ORD_Q);
            q8[j] = _mm512_cvtsepi32_epi8(_mm512_maskz_cvtps_epi32(ordered, r));
        }
        const __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(q8[0]), q8[1], 1);
        _mm256_store_si256(reinterpret_cast<__m256i *>(out.q + b * 32), q);
        const __m256i gsum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
        _mm256_store_si256(reinterpret_cast<__m256i *>(out.neg8 + b * 8),
                           _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(gsum, 3)));
        _mm256_store_si256(reinterpret_cast<__m256i *>(out.neg128 + b * 8),
                           _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(gsum, 7)));
        out.d16[b] = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        _mm256_store_ps(out.d_lanes + b * 8, _mm256_set1_ps(_cvtsh_ss(out.d16[b])));
    }
}

float read_sum(const void *data, size_t bytes) {
    const float *p = static_cast<const float *>(data);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes / sizeof(float); i += 64) {
        // Prefetching as far ahead as the kernels do: the probe must reach what they can reach. One prefetch per
        // 256 bytes measured fastest (the hardware prefetcher fills in the neighbouring lines).
        prefetch_line(reinterpret_cast<const uint8_t *>(p + i) + kPrefetchBytes);
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

}  // namespace pi::cpu::detail::avx512
