// AVX-512 attention of a range of query heads over a KV cache (F16 or F32 rows): the dot products q . K_p and the
// weighted sum of V_p sixteen head elements at a time, with FMAs. The scalar kernel computes the same function in
// another summation order (and with the C library's exp), so results differ from it in the last bits; for a given
// level they are deterministic, and a range gives each head the bits of a one-head call. Prefill calls this for
// every token's ranges of heads, where the scalar code took ~14 % of a bench-7b prefill.
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

// Hint: an _MM_HINT_* value (an enum in GCC's headers, an int in Clang's).
template <int Hint = _MM_HINT_T0>
inline void prefetch_span(const uint8_t *p, size_t bytes) {
    constexpr auto hint = static_cast<decltype(_MM_HINT_T0)>(Hint);
    for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char *>(p + off), hint);
}

// exp(x) for x <= 0 (a softmax's shifted scores), sixteen at a time: x = n ln2 + r (Cody-Waite, two constants),
// e^r by a degree-7 polynomial, times 2^n by vscalefps; below -87.3 (where expf is denormal or zero) 0. Within 2 ulp of
// exp on [-87.3, 0] (checked over every 1e-4 step against double exp); the scalar std::exp per score took ~6 % of the
// kernel's time.
inline __m512 exp_nonpositive(__m512 x) {
    const __m512 lowest = _mm512_set1_ps(-87.3365447f);
    const __mmask16 underflow = _mm512_cmp_ps_mask(x, lowest, _CMP_LT_OQ);
    x = _mm512_max_ps(lowest, x);  // a NaN x stays NaN (vmaxps returns its second operand then)
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), _mm512_scalef_ps(y, n));
}

// One head's softmax over its n_pos scores, in place, normalized (w_p = e_p * (1 / sum)); its state (largest score,
// sum of exponentials) into stats when asked. Sixteen scores at a time; masked lanes are -inf (exp 0).
inline void softmax_in_place(float *s, uint32_t n_pos, float *stats) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (uint32_t p = 0; p < n_pos; p += 16) {
        // NaN scores are passed over here (as std::fmax does) and turn the sum, so every weight, into NaN below.
        vmax = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes(p, n_pos), s + p), vmax);
    }
    const float max_score = _mm512_reduce_max_ps(vmax);
    const __m512 shift = _mm512_set1_ps(max_score);
    __m512 vsum = _mm512_setzero_ps();
    for (uint32_t p = 0; p < n_pos; p += 16) {
        const __mmask16 m = lanes(p, n_pos);
        const __m512 e = _mm512_maskz_mov_ps(m, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + p), shift)));
        _mm512_mask_storeu_ps(s + p, m, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const float sum = _mm512_reduce_add_ps(vsum);
    if (stats) stats[0] = max_score, stats[1] = sum;
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (uint32_t p = 0; p < n_pos; p += 16) {
        const __mmask16 m = lanes(p, n_pos);
        _mm512_mask_storeu_ps(s + p, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + p), inv));
    }
}

template <bool F16>
inline __m512 load16(const uint8_t *p) {
    if constexpr (F16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
    return _mm512_loadu_ps(reinterpret_cast<const float *>(p));
}

// Positions per block of the head-major kernel: a block's rows (its span of each, 4 KiB for 16 heads of a 7B model)
// are prefetched into L2 while the block before is computed, so 32 rows of K or V (128 KiB) are in flight at a time.
#ifndef PI_ATTEND_BLOCK_POSITIONS  // compile-time knobs, for tuning on other machines
#define PI_ATTEND_BLOCK_POSITIONS 32
#endif
#ifndef PI_ATTEND_BLOCK_HINT
#define PI_ATTEND_BLOCK_HINT _MM_HINT_T1
#endif
constexpr uint32_t kBlockPositions = PI_ATTEND_BLOCK_POSITIONS;

// Head-major, for head_dim = 16 * C (the instances: attend_heads_blocked_dim): for a block of positions, each head in
// turn with its query (or its output) in registers runs down the block's rows. Position-major (attend_heads_rows) kept
// every head's partial output in memory and stored it after each position, and the K dots were single FMA chains: in
// L2, one core of the development VM took 17.6 ns per head and position there against 10.1 here (4096-wide F16 rows, 16
// heads, 64 positions). The rows come from memory as whole spans (all of the range's heads), one block ahead, as a
// sequence K block 0, 1, .., then V block 0, 1, ..: each head's turn in a block prefetches its share of the next
// block's rows. Every score is reduce(acc_even + acc_odd) over the head dimension's 16-element chunks, every output
// element one FMA chain over the positions in order: a head's bits do not depend on the range around it.
template <bool F16, int C>
void attend_heads_blocked(const uint8_t *k_base, const uint8_t *v_base, size_t stride, size_t head_bytes, size_t span,
                          uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, float scale,
                          float *scores, float *out, float *stats) {
    constexpr uint32_t head_dim = 16 * C;
    constexpr size_t chunk_bytes = F16 ? 32 : 64;
    const uint32_t kv0 = h0 / group, n_heads = h1 - h0, n_blocks = (n_pos + kBlockPositions - 1) / kBlockPositions;
    // Block b of the sequence (K blocks, then V blocks): its base and rows.
    const auto block_rows = [&](uint32_t b, const uint8_t *&base, uint32_t &p0, uint32_t &p1) {
        base = b < n_blocks ? k_base : v_base;
        p0 = (b % n_blocks) * kBlockPositions;
        p1 = std::min(n_pos, p0 + kBlockPositions);
    };
    // Head j's share of block b's rows into L2.
    const auto prefetch_share = [&](uint32_t b, uint32_t j) {
        if (b >= 2 * n_blocks) return;
        const uint8_t *base;
        uint32_t p0, p1;
        block_rows(b, base, p0, p1);
        const uint32_t r0 = p0 + (p1 - p0) * j / n_heads, r1 = p0 + (p1 - p0) * (j + 1) / n_heads;
        for (uint32_t p = r0; p < r1; ++p) prefetch_span<PI_ATTEND_BLOCK_HINT>(base + p * stride, span);
    };
    if (n_pos == 0) {  // as the position-major form: empty states, zero outputs
        for (uint32_t j = 0; j < n_heads; ++j) {
            if (stats) stats[2 * j] = -INFINITY, stats[2 * j + 1] = 0.0f;
            std::fill(out + size_t(h0 + j) * head_dim, out + size_t(h0 + j + 1) * head_dim, 0.0f);
        }
        return;
    }
    for (uint32_t j = 0; j < n_heads; ++j) prefetch_share(0, j);

    // 1. Scores.
    for (uint32_t b = 0; b < n_blocks; ++b) {
        const uint32_t p0 = b * kBlockPositions, p1 = std::min(n_pos, p0 + kBlockPositions);
        for (uint32_t h = h0; h < h1; ++h) {
            prefetch_share(b + 1, h - h0);
            const uint8_t *column = k_base + (h / group - kv0) * head_bytes;
            __m512 qv[C];
            PI_UNROLL
            for (int i = 0; i < C; ++i) qv[i] = _mm512_loadu_ps(q + size_t(h) * head_dim + 16 * i);
            float *s = scores + size_t(h - h0) * n_pos;
            for (uint32_t p = p0; p < p1; ++p) {
                const uint8_t *kh = column + p * stride;
                __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
                PI_UNROLL
                for (int i = 0; i < C; ++i)
                    acc[i & 1] = _mm512_fmadd_ps(load16<F16>(kh + i * chunk_bytes), qv[i], acc[i & 1]);
                s[p] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) * scale;
            }
        }
    }
    // 2. Each head's softmax.
    for (uint32_t j = 0; j < n_heads; ++j)
        softmax_in_place(scores + size_t(j) * n_pos, n_pos, stats ? stats + 2 * j : nullptr);
    // 3. Weighted values.
    for (uint32_t b = 0; b < n_blocks; ++b) {
        const uint32_t p0 = b * kBlockPositions, p1 = std::min(n_pos, p0 + kBlockPositions);
        for (uint32_t h = h0; h < h1; ++h) {
            prefetch_share(n_blocks + b + 1, h - h0);
            const uint8_t *column = v_base + (h / group - kv0) * head_bytes;
            float *oh = out + size_t(h) * head_dim;
            __m512 o[C];
            PI_UNROLL
            for (int i = 0; i < C; ++i) o[i] = b == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(oh + 16 * i);
            const float *w = scores + size_t(h - h0) * n_pos;
            for (uint32_t p = p0; p < p1; ++p) {
                const uint8_t *vh = column + p * stride;
                const __m512 wp = _mm512_set1_ps(w[p]);
                PI_UNROLL
                for (int i = 0; i < C; ++i) o[i] = _mm512_fmadd_ps(wp, load16<F16>(vh + i * chunk_bytes), o[i]);
            }
            PI_UNROLL
            for (int i = 0; i < C; ++i) _mm512_storeu_ps(oh + 16 * i, o[i]);
        }
    }
}

template <bool F16>
bool attend_heads_blocked_dim(uint32_t head_dim, const uint8_t *k_base, const uint8_t *v_base, size_t stride,
                              size_t head_bytes, size_t span, uint32_t group, uint32_t h0, uint32_t h1, const float *q,
                              uint32_t n_pos, float scale, float *scores, float *out, float *stats) {
#define PI_ATTEND_DIM(C)                                                                                               \
    case 16 * C:                                                                                                       \
        attend_heads_blocked<F16, C>(k_base, v_base, stride, head_bytes, span, group, h0, h1, q, n_pos, scale, scores, \
                                     out, stats);                                                                      \
        return true;
    switch (head_dim) {
        PI_ATTEND_DIM(1)
        PI_ATTEND_DIM(2)
        PI_ATTEND_DIM(3) PI_ATTEND_DIM(4) PI_ATTEND_DIM(5) PI_ATTEND_DIM(6) PI_ATTEND_DIM(7) PI_ATTEND_DIM(8)
            PI_ATTEND_DIM(10) PI_ATTEND_DIM(12) PI_ATTEND_DIM(16) default : return false;
    }
#undef PI_ATTEND_DIM
}

// Position-major (the head dimensions the head-major kernel has no instance for): each position's row is read once
// for all of the range's heads (their kv slices are contiguous,
// (h1 - 1) / group - h0 / group + 1 heads of head_dim elements), instead of one head at a time down a column of
// rows a row stride apart. A head's slice is only 256 bytes of an 8 KiB F16 row in a 7B model, so walking one head
// at a time gave the hardware prefetcher a new 4 KiB page every other position; a range of 16 heads reads 4 KiB
// contiguous a position (measured in docs/PERFORMANCE.md). Every score and output element sees the same operations
// in the same order as a one-head call (one FMA chain over the head dimension per score, one over the positions per
// output element), so a range gives the bits of its heads called one by one.
void attend_heads_rows(const uint8_t *k_base, const uint8_t *v_base, bool f16, size_t stride, size_t head_bytes,
                       size_t span, uint32_t head_dim, uint32_t group, uint32_t h0, uint32_t h1, const float *q,
                       uint32_t n_pos, float scale, float *scores, float *out, float *stats) {
    const uint32_t kv0 = h0 / group, n_heads = h1 - h0;

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

}  // namespace

void attend_heads(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                  uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, float scale, float *scores,
                  float *out, float *stats) {
    if (h0 >= h1) return;
    const size_t esz = f16 ? 2 : 4, head_bytes = size_t(head_dim) * esz;
    const uint32_t kv0 = h0 / group;
    const size_t span = size_t((h1 - 1) / group - kv0 + 1) * head_bytes;  // bytes of a row the range reads
    const uint8_t *k_base = static_cast<const uint8_t *>(keys) + (offset * esz + kv0 * head_bytes);
    const uint8_t *v_base = static_cast<const uint8_t *>(values) + (offset * esz + kv0 * head_bytes);
    const size_t stride = row_stride * esz;
    const bool done = f16 ? attend_heads_blocked_dim<true>(head_dim, k_base, v_base, stride, head_bytes, span, group,
                                                           h0, h1, q, n_pos, scale, scores, out, stats)
                          : attend_heads_blocked_dim<false>(head_dim, k_base, v_base, stride, head_bytes, span, group,
                                                            h0, h1, q, n_pos, scale, scores, out, stats);
    if (!done) {
        attend_heads_rows(k_base, v_base, f16, stride, head_bytes, span, head_dim, group, h0, h1, q, n_pos, scale,
                          scores, out, stats);
    }
}

}  // namespace pi::cpu::detail::avx512
