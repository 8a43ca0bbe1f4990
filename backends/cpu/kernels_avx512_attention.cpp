// AVX-512 attention of a range of query heads over a KV cache (F16 or F32 rows): the dot products q . K_p and the
// weighted sum of V_p sixteen head elements at a time, with FMAs; the softmax itself stays scalar (n_pos
// exponentials). The scalar kernel computes the same function in another summation order, so results differ from
// it in the last bits; for a given level they are deterministic, and a range gives each head the bits of a one-head
// call. Prefill calls this for every token's ranges of heads, where the scalar code took ~14 % of a bench-7b prefill.
#include <immintrin.h>

#include <algorithm>
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

// Rows are prefetched this many positions ahead: a row's range is one stream of up to a few KiB, and the next rows
// lie a row stride (8 KiB in a 7B model) apart, on other pages, where the hardware prefetcher starts cold.
#ifndef PI_ATTEND_ROWS_AHEAD
#define PI_ATTEND_ROWS_AHEAD 4
#endif
constexpr uint32_t kRowsAhead = PI_ATTEND_ROWS_AHEAD;

inline void prefetch_span(const uint8_t *p, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char *>(p + off), _MM_HINT_T0);
}

}  // namespace

// Position-major: each position's row is read once for all of the range's heads (their kv slices are contiguous,
// (h1 - 1) / group - h0 / group + 1 heads of head_dim elements), instead of one head at a time down a column of
// rows a row stride apart. A head's slice is only 256 bytes of an 8 KiB F16 row in a 7B model, so walking one head
// at a time gave the hardware prefetcher a new 4 KiB page every other position; a range of 16 heads reads 4 KiB
// contiguous a position (measured in docs/PERFORMANCE.md). Every score and output element sees the same operations
// in the same order as a one-head call (one FMA chain over the head dimension per score, one over the positions per
// output element), so a range gives the bits of its heads called one by one.
void attend_heads(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                  uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, float scale,
                  float *scores, float *out, float *stats) {
    if (h0 >= h1) return;
    const size_t esz = f16 ? 2 : 4;
    const uint32_t kv0 = h0 / group;
    const size_t head_bytes = size_t(head_dim) * esz;
    const size_t span = size_t((h1 - 1) / group - kv0 + 1) * head_bytes;  // bytes of a row this range reads
    const uint8_t *k_base = static_cast<const uint8_t *>(keys) + (offset * esz + kv0 * head_bytes);
    const uint8_t *v_base = static_cast<const uint8_t *>(values) + (offset * esz + kv0 * head_bytes);
    const size_t stride = row_stride * esz;
    const uint32_t n_heads = h1 - h0;

    // 1. Scores, position after position.
    for (uint32_t p = 0; p < n_pos; ++p) {
        const uint8_t *row = k_base + p * stride;
        if (p + kRowsAhead < n_pos) prefetch_span(row + kRowsAhead * stride, span);
        for (uint32_t h = h0; h < h1; ++h) {
            const uint8_t *kh = row + (h / group - kv0) * head_bytes;
            const float *qh = q + size_t(h) * head_dim;
            __m512 acc = _mm512_setzero_ps();
            for (size_t i = 0; i < head_dim; i += 16) {
                const __mmask16 m = lanes(i, head_dim);
                acc = _mm512_fmadd_ps(load_row(kh, f16, i, m), _mm512_maskz_loadu_ps(m, qh + i), acc);
            }
            scores[size_t(h - h0) * n_pos + p] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
    // 2. Each head's softmax, the weights normalized in place (w_p = e_p * (1 / sum), as the one-head form).
    for (uint32_t j = 0; j < n_heads; ++j) {
        float *s = scores + size_t(j) * n_pos;
        float max_score = -INFINITY;
        for (uint32_t p = 0; p < n_pos; ++p) max_score = std::fmax(max_score, s[p]);
        float sum = 0.0f;
        for (uint32_t p = 0; p < n_pos; ++p) sum += (s[p] = std::exp(s[p] - max_score));
        if (stats) stats[2 * j] = max_score, stats[2 * j + 1] = sum;
        const float inv = 1.0f / sum;
        for (uint32_t p = 0; p < n_pos; ++p) s[p] *= inv;
    }
    // 3. Weighted values, accumulated in out (L1-resident: the range's heads x head_dim floats).
    for (uint32_t h = h0; h < h1; ++h) std::fill(out + size_t(h) * head_dim, out + size_t(h + 1) * head_dim, 0.0f);
    for (uint32_t p = 0; p < n_pos; ++p) {
        const uint8_t *row = v_base + p * stride;
        if (p + kRowsAhead < n_pos) prefetch_span(row + kRowsAhead * stride, span);
        for (uint32_t h = h0; h < h1; ++h) {
            const uint8_t *vh = row + (h / group - kv0) * head_bytes;
            float *oh = out + size_t(h) * head_dim;
            const __m512 w = _mm512_set1_ps(scores[size_t(h - h0) * n_pos + p]);
            for (size_t i = 0; i < head_dim; i += 16) {
                const __mmask16 m = lanes(i, head_dim);
                _mm512_mask_storeu_ps(oh + i, m,
                                      _mm512_fmadd_ps(w, load_row(vh, f16, i, m), _mm512_maskz_loadu_ps(m, oh + i)));
            }
        }
    }
}

}  // namespace pi::cpu::detail::avx512
