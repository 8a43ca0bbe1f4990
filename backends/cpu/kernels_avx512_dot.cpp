// AVX-512 row dots (compiled with -mavx512f/bw/vl/vnni/bf16 -mfma -mf16c; called only on CPUs with F/BW/VL).
//
// Rows go four at a time: each load of x (or of the activation's per-block data) serves four rows, and each row
// keeps its own accumulators, so a row's result is the same whichever rows share its group.
//
// Float rows: per row 4 accumulators of 16 lanes over 64 weights per step, 16-weight steps into the first, a
// masked tail into the second (masked loads never touch bytes past the row); reduced as (a0 + a1) + (a2 + a3), then
// across lanes. Memory traffic: each row once, x from L1/L2. vdpbf16ps is not used for BF16: it would round x to
// bf16 (relative error 2^-9), far beyond the 1e-5 the dense path promises; widening bf16 is a shift and the kernel
// is bound by memory anyway.
//
// Q8_0 / Q4_0: two blocks per 512-bit step. Block pair -> 64 unsigned weight codes u in one register, matching the
// activation's 64 int8 values q (contiguous in Q8Activation); vpdpbusd (VNNI) sums u * q over each group of 4 into
// 16 int32 lanes, started at -c * (group sum of q), so each lane ends at sum (w * q) exactly (Q4_0: u = nibble,
// c = 8; Q8_0: u = w ^ 0x80 = w + 128, c = 128). Without VNNI, pmaddubsw + pmaddwd (Q4_0 as above; Q8_0 as
// |w| x sign(q, w), which cannot saturate). Each lane then adds float(isum) * (d_w * d_x) to an accumulator
// (pairs alternate between two accumulators, see dot_quant_rows). For Q4_0 one masked 36-byte load fetches the
// pair's 32 code bytes and vpermw spreads them; the fp16 scales d_w come from fp16_table (cheaper on Zen 4 than
// converting and spreading them in registers: the kernel is bound by vector micro-ops, ~21 GB/s of Q4_0 per core).
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::avx512 {
namespace {

enum class Kind { F32, F16, BF16 };

template <Kind K>
inline __m512 load16(const uint8_t *row, size_t k) {
    if constexpr (K == Kind::F32) {
        return _mm512_loadu_ps(reinterpret_cast<const float *>(row) + k);
    } else if constexpr (K == Kind::F16) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * k)));
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * k));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

template <Kind K>
inline __m512 load16_masked(const uint8_t *row, size_t k, __mmask16 m) {
    if constexpr (K == Kind::F32) {
        return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float *>(row) + k);
    } else if constexpr (K == Kind::F16) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * k));
    } else {
        const __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * k);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

// Rows are processed R at a time so that each load of x (or of the activation's per-block data) serves R rows;
// every row still gets exactly the operation sequence of the R = 1 case, so grouping never changes a result.
template <Kind K, int R>
void dot_float_rows(const uint8_t *const *row, const uint8_t *const *pf, const float *x, size_t n, float *y) {
    constexpr size_t esz = K == Kind::F32 ? 4 : 2;
    __m512 a[R][4];
    PI_UNROLL
    for (int r = 0; r < R; ++r) {
        PI_UNROLL
        for (int j = 0; j < 4; ++j) a[r][j] = _mm512_setzero_ps();
    }
    size_t k = 0;
    for (; k + 64 <= n; k += 64) {
        if (pf) {
            PI_UNROLL
            // One prefetch per row and step (128 or 256 bytes): the hardware prefetcher fills in the neighbouring
            // lines, and fewer prefetch instructions measured slightly faster than one per line.
            for (int r = 0; r < R; ++r) prefetch_l2(pf[r] + k * esz);
        }
        const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
        const __m512 x2 = _mm512_loadu_ps(x + k + 32), x3 = _mm512_loadu_ps(x + k + 48);
        PI_UNROLL
        for (int r = 0; r < R; ++r) {
            a[r][0] = _mm512_fmadd_ps(load16<K>(row[r], k), x0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(load16<K>(row[r], k + 16), x1, a[r][1]);
            a[r][2] = _mm512_fmadd_ps(load16<K>(row[r], k + 32), x2, a[r][2]);
            a[r][3] = _mm512_fmadd_ps(load16<K>(row[r], k + 48), x3, a[r][3]);
        }
    }
    for (; k + 16 <= n; k += 16) {
        const __m512 x0 = _mm512_loadu_ps(x + k);
        PI_UNROLL
        for (int r = 0; r < R; ++r) a[r][0] = _mm512_fmadd_ps(load16<K>(row[r], k), x0, a[r][0]);
    }
    if (k < n) {
        const __mmask16 m = static_cast<__mmask16>((1u << (n - k)) - 1);
        const __m512 x0 = _mm512_maskz_loadu_ps(m, x + k);
        PI_UNROLL
        for (int r = 0; r < R; ++r) a[r][1] = _mm512_fmadd_ps(load16_masked<K>(row[r], k, m), x0, a[r][1]);
    }
    PI_UNROLL
    for (int r = 0; r < R; ++r) {
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
    }
}

// The activation side of blocks b and b + 1 (only b when `single`): loaded once per pair, shared by the rows.
struct PairX {
    __m512i q;     // 64 int8 values
    __m512i corr;  // 16 int32 lanes: -c * (group sums), c = 8 (Q4_0) or 128 (Q8_0)
    __m512 dx;     // 16 floats: d_x of a (lanes 0-7) and b (8-15)
};

inline PairX load_pair_x(const Q8Activation &x, const int32_t *corr, size_t b, bool single) {
    const __mmask16 lanes = single ? 0x00ff : 0xffff;
    PairX p;
    p.q = _mm512_maskz_load_epi32(lanes, x.q() + b * 32);
    p.corr = _mm512_maskz_load_epi32(lanes, corr + b * 8);
    p.dx = _mm512_maskz_load_ps(lanes, x.d_lanes() + b * 8);
    return p;
}

// [a x 8, b x 8] from two broadcast loads and one insert (F only: no AVX512DQ needed).
inline __m512 pair_of(float a, float b) {
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)), _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

// Sum of u * q over groups of 4 bytes added to `init` (u unsigned, q signed).
template <bool Vnni>
inline __m512i dot_u8s8(__m512i init, __m512i u, __m512i q) {
    if constexpr (Vnni) {
        return _mm512_dpbusd_epi32(init, u, q);
    } else {
        return _mm512_add_epi32(init, _mm512_madd_epi16(_mm512_maddubs_epi16(u, q), _mm512_set1_epi16(1)));
    }
}

// acc + float(isum) * (d_w * d_x) for the pair of one Q4_0 row.
template <bool Vnni>
inline __m512 q4_0_pair(const uint8_t *row, const uint8_t *pf, const PairX &px, size_t b, bool single, __m512 acc) {
    // Pair bytes: [d_a, 16 code bytes of a, d_b, 16 code bytes of b] = words 0, 1..8, 9, 10..17.
    const __m512i nib_idx = _mm512_set_epi16(17, 16, 15, 14, 13, 12, 11, 10, 17, 16, 15, 14, 13, 12, 11, 10, 8, 7, 6, 5,
                                             4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1);
    const uint8_t *p = row + b * sizeof(BlockQ4_0);
    if (pf) prefetch_l2(pf + b * sizeof(BlockQ4_0));
    const __m512i raw = _mm512_maskz_loadu_epi8(single ? 0x3ffffull : 0xfffffffffull, p);
    // 128-bit lanes: [a low nibbles = weights 0-15, a high = 16-31, b low, b high].
    __m512i u = _mm512_permutexvar_epi16(nib_idx, raw);
    u = _mm512_mask_srli_epi16(u, 0xff00ff00u, u, 4);
    u = _mm512_and_si512(u, _mm512_set1_epi8(0x0f));
    const __m512i isum = dot_u8s8<Vnni>(px.corr, u, px.q);
    const __m512 dw = pair_of(fp16_table_value(p), single ? 0.0f : fp16_table_value(p + 18));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, px.dx), acc);
}

template <bool Vnni>
inline __m512 q8_0_pair(const uint8_t *row, const uint8_t *pf, const PairX &px, size_t b, bool single, __m512 acc) {
    // Pair bytes: [d_a, 32 codes of a, d_b, 32 codes of b].
    const uint8_t *p = row + b * sizeof(BlockQ8_0);
    if (pf) {  // a pair is 68 bytes: two lines
        prefetch_l2(pf + b * sizeof(BlockQ8_0));
        prefetch_l2(pf + b * sizeof(BlockQ8_0) + 64);
    }
    const __m512i w = single ? _mm512_maskz_loadu_epi8(0xffffffffull, p + 2)
                             : _mm512_inserti64x4(
                                   _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 2))),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 36)), 1);
    __m512i isum;
    if constexpr (Vnni) {
        isum = _mm512_dpbusd_epi32(px.corr, _mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80))), px.q);
    } else {
        const __mmask64 neg = _mm512_movepi8_mask(w);
        const __m512i q_signed = _mm512_mask_sub_epi8(px.q, neg, _mm512_setzero_si512(), px.q);
        isum = _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), q_signed), _mm512_set1_epi16(1));
    }
    const __m512 dw = pair_of(fp16_table_value(p), single ? 0.0f : fp16_table_value(p + 34));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, px.dx), acc);
}

// Pairs alternate between two accumulators: pairs at b = 0, 4, 8, ... and a last full pair go to acc0, pairs at
// b = 2, 6, ... and a last single block to acc1; the row's result is reduce(acc0 + acc1).
template <__m512 (*Pair)(const uint8_t *, const uint8_t *, const PairX &, size_t, bool, __m512), int R>
void dot_quant_rows(const uint8_t *const *row, const uint8_t *const *pf, const Q8Activation &x, const int32_t *corr,
                    float *y) {
    __m512 acc0[R], acc1[R];
    PI_UNROLL
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
    const size_t nb = x.n_blocks();
    size_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const PairX p0 = load_pair_x(x, corr, b, false);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc0[r] = Pair(row[r], pf ? pf[r] : nullptr, p0, b, false, acc0[r]);
        const PairX p1 = load_pair_x(x, corr, b + 2, false);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc1[r] = Pair(row[r], pf ? pf[r] : nullptr, p1, b + 2, false, acc1[r]);
    }
    if (b + 2 <= nb) {
        const PairX p0 = load_pair_x(x, corr, b, false);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc0[r] = Pair(row[r], pf ? pf[r] : nullptr, p0, b, false, acc0[r]);
        b += 2;
    }
    if (b < nb) {
        const PairX p1 = load_pair_x(x, corr, b, true);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc1[r] = Pair(row[r], pf ? pf[r] : nullptr, p1, b, true, acc1[r]);
    }
    PI_UNROLL
    for (int r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
}

template <int R, bool Vnni>
void dot_group(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint8_t *const *row,
               const uint8_t *const *pf, float *y) {
    switch (w.type) {
        case WeightType::F32: dot_float_rows<Kind::F32, R>(row, pf, x_f32, w.n_cols, y); break;
        case WeightType::F16: dot_float_rows<Kind::F16, R>(row, pf, x_f32, w.n_cols, y); break;
        case WeightType::BF16: dot_float_rows<Kind::BF16, R>(row, pf, x_f32, w.n_cols, y); break;
        case WeightType::Q8_0:
            dot_quant_rows<q8_0_pair<Vnni>, R>(row, pf, *x_q8, x_q8->neg128_sums(), y);  // unused without VNNI
            break;
        case WeightType::Q4_0: dot_quant_rows<q4_0_pair<Vnni>, R>(row, pf, *x_q8, x_q8->neg8_sums(), y); break;
    }
}

constexpr size_t kRows = 4;

template <bool Vnni>
void dot_rows_impl(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                   size_t first, size_t n, float *y) {
    const uint8_t *row[kRows];
    const uint8_t *pf[kRows];
    const size_t lead = prefetch_lead(kRows * weight_row_bytes(w.type, w.n_cols));
    size_t i = 0;
    for (; i + kRows <= n; i += kRows) {
        for (size_t r = 0; r < kRows; ++r) row[r] = w.row(rows ? rows[i + r] : first + i + r);
        dot_group<kRows, Vnni>(w, x_f32, x_q8, row, prefetch_group(w, rows, first, i, n, lead, pf), y + i);
    }
    for (; i < n; ++i) {
        row[0] = w.row(rows ? rows[i] : first + i);
        dot_group<1, Vnni>(w, x_f32, x_q8, row, nullptr, y + i);
    }
}

}  // namespace

void dot_rows(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows, size_t first,
              size_t n, float *y) {
    dot_rows_impl<true>(w, x_f32, x_q8, rows, first, n, y);
}

void dot_rows_no_vnni(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                      size_t first, size_t n, float *y) {
    dot_rows_impl<false>(w, x_f32, x_q8, rows, first, n, y);
}

}  // namespace pi::cpu::detail::avx512
