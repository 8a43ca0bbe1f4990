// AVX2 + F16C conversions: rows to binary32 (exact), binary32 to bf16 (integer round-to-nearest-even, the same bits
// as fp32_to_bf16), activation quantization (the same bits as quantize_block_q8), and the bandwidth probe's read
// loop.
#include <immintrin.h>

#include <cassert>
#include <cstring>
#include <vector>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx2 {
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
            for (; c + 8 <= n; c += 8) {
                _mm256_storeu_ps(o + c,
                                 _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 2 * c))));
            }
            for (; c < n; ++c) o[c] = load_fp16(row + 2 * c);
            return;
        case WeightType::BF16:
            for (; c + 8 <= n; c += 8) {
                const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 2 * c));
                _mm256_storeu_ps(o + c, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
            }
            for (; c < n; ++c) {
                uint16_t h;
                std::memcpy(&h, row + 2 * c, sizeof h);
                o[c] = bf16_to_fp32(h);
            }
            return;
        case WeightType::Q8_0:
            for (size_t b = 0; b < n / 32; ++b) {
                const uint8_t *blk = row + b * sizeof(BlockQ8_0);
                const __m256 d = _mm256_set1_ps(load_fp16(blk));
                for (int v = 0; v < 4; ++v) {
                    const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(blk + 2 + 8 * v));
                    _mm256_storeu_ps(o + b * 32 + 8 * v,
                                     _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))));
                }
            }
            return;
        case WeightType::Q4_0:
            for (size_t b = 0; b < n / 32; ++b) {
                const uint8_t *blk = row + b * sizeof(BlockQ4_0);
                const __m256 d = _mm256_set1_ps(load_fp16(blk));
                const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2));
                const __m128i low4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
                const __m128i lo = _mm_sub_epi8(_mm_and_si128(packed, low4), eight);
                const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), low4), eight);
                const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
                for (int v = 0; v < 4; ++v) {
                    _mm256_storeu_ps(o + b * 32 + 8 * v,
                                     _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[v]))));
                }
            }
            return;
        case WeightType::F16X8:
        case WeightType::Q4_0X8:
        case WeightType::Q4_0R:  // the kernel table unpacks these rows before this level sees them
            assert(!"repacked rows (Q4_0R, F16X8, Q4_0X8) reached a kernel that reads file layouts");
            break;
    }
}

}  // namespace

void rows_to_f32(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld) {
    for (size_t r = r0; r < r1; ++r) row_to_f32(w, w.row(r), out + (r - r0) * ld);
}

void f32_to_bf16(const float *x, size_t n, uint16_t *out) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x0040);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        const __m256i rounded = _mm256_srli_epi32(
            _mm256_add_epi32(v, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(v, 16), one))), 16);
        const __m256i nan_bits = _mm256_or_si256(_mm256_srli_epi32(v, 16), quiet);
        const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(v, abs_mask), inf);
        const __m256i r = _mm256_blendv_epi8(rounded, nan_bits, is_nan);
        // Keep the low 16 bits of each lane: pack without saturation by masking first.
        const __m256i low = _mm256_and_si256(r, _mm256_set1_epi32(0xffff));
        const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(low), _mm256_extracti128_si256(low, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out + i), packed);
    }
    for (; i < n; ++i) out[i] = fp32_to_bf16(x[i]);
}

void f32_to_f16(const float *x, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

void rows_to_bf16(const WeightMatrix &w, size_t r0, size_t r1, uint16_t *out, size_t ld) {
    thread_local std::vector<float> row;
    row.resize(w.n_cols);
    for (size_t r = r0; r < r1; ++r) {
        row_to_f32(w, w.row(r), row.data());
        f32_to_bf16(row.data(), w.n_cols, out + (r - r0) * ld);
    }
}

void quantize_q8(const float *x, size_t n, const Q8Out &out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t b = 0; b < n / 32; ++b) {
        const float *xb = x + b * 32;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 4; ++j) {
            v[j] = _mm256_loadu_ps(xb + 8 * j);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v[j]), m);  // a NaN lane returns m: NaNs are skipped
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        __m256i qi[4];
        for (int j = 0; j < 4; ++j) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(v[j], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm256_min_ps(hi, _mm256_max_ps(lo, r));  // constant first: a NaN passes through, zeroed below
            const __m256 ordered = _mm256_cmp_ps(r, r, _CMP_ORD_Q);
            qi[j] = _mm256_and_si256(_mm256_cvtps_epi32(r), _mm256_castps_si256(ordered));
        }
        // int32 -> int8 in order: the packs work per 128-bit lane, the permute restores the order.
        const __m256i w16a = _mm256_packs_epi32(qi[0], qi[1]);
        const __m256i w16b = _mm256_packs_epi32(qi[2], qi[3]);
        const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w16a, w16b), perm);
        _mm256_store_si256(reinterpret_cast<__m256i *>(out.q + b * 32), q8);
        const __m256i gsum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
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
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes / sizeof(float); i += 64) {
        // Prefetching as far ahead as the kernels do: the probe must reach what they can reach. One prefetch per
        // 256 bytes measured fastest (the hardware prefetcher fills in the neighbouring lines).
        prefetch_line(reinterpret_cast<const uint8_t *>(p + i) + kPrefetchBytes);
        a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_load_ps(p + i), _mm256_load_ps(p + i + 8)));
        a1 = _mm256_add_ps(a1, _mm256_add_ps(_mm256_load_ps(p + i + 16), _mm256_load_ps(p + i + 24)));
        a2 = _mm256_add_ps(a2, _mm256_add_ps(_mm256_load_ps(p + i + 32), _mm256_load_ps(p + i + 40)));
        a3 = _mm256_add_ps(a3, _mm256_add_ps(_mm256_load_ps(p + i + 48), _mm256_load_ps(p + i + 56)));
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    float t = 0.0f;
    for (float l : lanes) t += l;
    return t;
}

}  // namespace pi::cpu::detail::avx2
