// AVX-512 attention of one query head over a KV cache (F16 or F32 rows): the dot products q . K_p and the weighted
// sum of V_p sixteen head elements at a time, with FMAs; the softmax itself stays scalar (n_pos exponentials). The
// scalar kernel (layer_math.cpp) computes the same function in another summation order, so results differ from it
// in the last bits; for a given level they are deterministic. Prefill calls this n_tokens x n_head times per layer,
// where the scalar code took ~14 % of a bench-7b prefill.
#include <immintrin.h>

#include <cmath>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx512 {
namespace {

inline __m512 load_row(const uint8_t *row, bool f16, size_t i, __mmask16 m) {
    if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * i));
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float *>(row) + i);
}

inline __mmask16 lanes(size_t i, size_t n) {
    return n - i >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
}

}  // namespace

void attend_head(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                 const float *q, uint32_t n_pos, float scale, float *scores, float *out) {
    const size_t esz = f16 ? 2 : 4;
    const uint8_t *k_base = static_cast<const uint8_t *>(keys) + offset * esz;
    const uint8_t *v_base = static_cast<const uint8_t *>(values) + offset * esz;
    const size_t stride = row_stride * esz;

    // Four positions at a time: each keeps its own accumulator (so its score has the bits of the one-position loop
    // below), and the four FMA chains overlap instead of waiting on one another's latency.
    float max_score = -INFINITY;
    uint32_t p = 0;
    for (; p + 4 <= n_pos; p += 4) {
        const uint8_t *row = k_base + p * stride;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (size_t i = 0; i < head_dim; i += 16) {
            const __mmask16 m = lanes(i, head_dim);
            const __m512 qi = _mm512_maskz_loadu_ps(m, q + i);
            PI_UNROLL
            for (int j = 0; j < 4; ++j) acc[j] = _mm512_fmadd_ps(load_row(row + j * stride, f16, i, m), qi, acc[j]);
        }
        for (int j = 0; j < 4; ++j) {
            scores[p + j] = _mm512_reduce_add_ps(acc[j]) * scale;
            max_score = std::fmax(max_score, scores[p + j]);
        }
    }
    for (; p < n_pos; ++p) {
        const uint8_t *row = k_base + p * stride;
        __m512 acc = _mm512_setzero_ps();
        for (size_t i = 0; i < head_dim; i += 16) {
            const __mmask16 m = lanes(i, head_dim);
            acc = _mm512_fmadd_ps(load_row(row, f16, i, m), _mm512_maskz_loadu_ps(m, q + i), acc);
        }
        scores[p] = _mm512_reduce_add_ps(acc) * scale;
        max_score = std::fmax(max_score, scores[p]);
    }
    float sum = 0.0f;
    for (p = 0; p < n_pos; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
    const float inv = 1.0f / sum;

    // 64 head elements per pass over the positions: four accumulators stay in registers.
    for (size_t i0 = 0; i0 < head_dim; i0 += 64) {
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (p = 0; p < n_pos; ++p) {
            const uint8_t *row = v_base + p * stride;
            const __m512 w = _mm512_set1_ps(scores[p] * inv);
            for (int j = 0; j < 4; ++j) {
                const size_t i = i0 + 16 * size_t(j);
                if (i >= head_dim) break;
                acc[j] = _mm512_fmadd_ps(w, load_row(row, f16, i, lanes(i, head_dim)), acc[j]);
            }
        }
        for (int j = 0; j < 4; ++j) {
            const size_t i = i0 + 16 * size_t(j);
            if (i >= head_dim) break;
            _mm512_mask_storeu_ps(out + i, lanes(i, head_dim), acc[j]);
        }
    }
}

}  // namespace pi::cpu::detail::avx512
