// AVX2 + FMA + F16C row dots (compiled with -mavx2 -mfma -mf16c; called only when the CPU has them).
//
// Float rows: 4 accumulators of 8 lanes over 32 weights per step (enough independent FMA chains to cover the FMA
// latency), then 8-weight steps into the first, a masked tail into the second; reduced in a fixed order. Memory
// traffic: the row once (streamed), x from L1/L2.
// Q8_0: per block |w| (u8) x sign(x, w) (s8) with pmaddubsw (|w| <= 128, so a pair sum <= 32512 never saturates),
// pmaddwd to 8 int32 lanes. Q4_0: nibbles (u8, 0..15) x q with pmaddubsw, int32 lanes started at -8 * (group sum
// of q) so that they hold sum (nibble - 8) * q exactly. Then acc += float(isum) * (d_w * d_x) per lane.
#include <immintrin.h>

#include <cassert>
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

// Rows are processed several at a time so that each load of x (or of the activation's per-block data) serves all
// of them; every row still gets exactly the operation sequence of a lone row, so grouping never changes a result.
template <Kind K, int R>
void dot_float_rows(const uint8_t *const *row, const uint8_t *const *pf, const float *x, size_t n, float *y) {
    constexpr size_t esz = K == Kind::F32 ? 4 : 2;
    __m256 a[R][4];
    PI_UNROLL
    for (int r = 0; r < R; ++r) {
        PI_UNROLL
        for (int j = 0; j < 4; ++j) a[r][j] = _mm256_setzero_ps();
    }
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        if (pf) {
            PI_UNROLL
            for (int r = 0; r < R; ++r) prefetch_line(pf[r] + k * esz);  // one per row and step, as for AVX-512
        }
        PI_UNROLL
        for (int j = 0; j < 4; ++j) {
            const __m256 xv = _mm256_loadu_ps(x + k + 8 * j);
            PI_UNROLL
            for (int r = 0; r < R; ++r) a[r][j] = _mm256_fmadd_ps(load8<K>(row[r], k + 8 * j), xv, a[r][j]);
        }
    }
    for (; k + 8 <= n; k += 8) {
        const __m256 xv = _mm256_loadu_ps(x + k);
        PI_UNROLL
        for (int r = 0; r < R; ++r) a[r][0] = _mm256_fmadd_ps(load8<K>(row[r], k), xv, a[r][0]);
    }
    if (k < n) {
        const __m256 xt = _mm256_maskload_ps(x + k, tail_mask(n - k));
        PI_UNROLL
        for (int r = 0; r < R; ++r) a[r][1] = _mm256_fmadd_ps(load_tail<K>(row[r], k, n - k), xt, a[r][1]);
    }
    PI_UNROLL
    for (int r = 0; r < R; ++r)
        y[r] = hsum(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), _mm256_add_ps(a[r][2], a[r][3])));
}

inline __m256 broadcast_fp16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
}

// The activation side of block b, loaded once and shared by the rows of a group.
struct BlockX {
    __m256i q;
    __m256i corr;  // -8 * group sums (Q4_0 only)
    __m256 dx;
};

inline BlockX load_block_x(const Q8Activation &x, size_t b, bool q4) {
    BlockX v;
    v.q = _mm256_load_si256(reinterpret_cast<const __m256i *>(x.q() + b * 32));
    v.corr = q4 ? _mm256_load_si256(reinterpret_cast<const __m256i *>(x.neg8_sums() + b * 8)) : _mm256_setzero_si256();
    v.dx = _mm256_load_ps(x.d_lanes() + b * 8);
    return v;
}

// acc + float(isum) * (d_w * d_x) for block b of one Q8_0 row.
inline __m256 q8_0_block(const uint8_t *row, const BlockX &bx, size_t b, __m256 acc) {
    const uint8_t *blk = row + b * sizeof(BlockQ8_0);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk + 2));
    const __m256i prod = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(bx.q, w));
    const __m256i isum = _mm256_madd_epi16(prod, _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(broadcast_fp16(blk), bx.dx), acc);
}

inline __m256 q4_0_block(const uint8_t *row, const BlockX &bx, size_t b, __m256 acc) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const uint8_t *blk = row + b * sizeof(BlockQ4_0);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i *>(blk + 2));
    const __m256i nib = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(packed, low4)),
                                                _mm_and_si128(_mm_srli_epi16(packed, 4), low4), 1);
    const __m256i isum =
        _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(nib, bx.q), _mm256_set1_epi16(1)), bx.corr);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(broadcast_fp16(blk), bx.dx), acc);
}

// Even blocks accumulate in acc0, odd ones in acc1 (two FMA chains), then acc0 + acc1.
template <__m256 (*Block)(const uint8_t *, const BlockX &, size_t, __m256), bool Q4, int R>
void dot_quant_rows(const uint8_t *const *row, const uint8_t *const *pf, const Q8Activation &x, float *y) {
    constexpr size_t block_bytes = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    __m256 acc0[R], acc1[R];
    PI_UNROLL
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    const size_t nb = x.n_blocks();
    size_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        if (pf) {
            PI_UNROLL
            for (int r = 0; r < R; ++r) {
                for (size_t l = 0; l < 2 * block_bytes; l += 64) prefetch_line(pf[r] + b * block_bytes + l);
            }
        }
        const BlockX x0 = load_block_x(x, b, Q4);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc0[r] = Block(row[r], x0, b, acc0[r]);
        const BlockX x1 = load_block_x(x, b + 1, Q4);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc1[r] = Block(row[r], x1, b + 1, acc1[r]);
    }
    if (b < nb) {
        const BlockX x0 = load_block_x(x, b, Q4);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc0[r] = Block(row[r], x0, b, acc0[r]);
    }
    PI_UNROLL
    for (int r = 0; r < R; ++r) y[r] = hsum(_mm256_add_ps(acc0[r], acc1[r]));
}

template <int R>
void dot_group(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint8_t *const *row,
               const uint8_t *const *pf, float *y) {
    switch (w.type) {
        case WeightType::F32: dot_float_rows<Kind::F32, R>(row, pf, x_f32, w.n_cols, y); break;
        case WeightType::F16: dot_float_rows<Kind::F16, R>(row, pf, x_f32, w.n_cols, y); break;
        case WeightType::BF16: dot_float_rows<Kind::BF16, R>(row, pf, x_f32, w.n_cols, y); break;
        case WeightType::Q8_0: dot_quant_rows<q8_0_block, false, R>(row, pf, *x_q8, y); break;
        case WeightType::Q4_0: dot_quant_rows<q4_0_block, true, R>(row, pf, *x_q8, y); break;
        case WeightType::F16X8:
        case WeightType::Q4_0X8:
        case WeightType::Q4_0R:  // the kernel table unpacks these rows before this level sees them
            assert(!"repacked rows (Q4_0R, F16X8, Q4_0X8) reached a kernel that reads file layouts");
            break;
    }
}

constexpr size_t kRows = 2;  // 16 ymm registers: 2 rows x 4 accumulators plus x and temporaries

}  // namespace

void dot_rows(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows, size_t first,
              size_t n, float *y) {
    const uint8_t *row[kRows];
    const uint8_t *pf[kRows];
    const size_t lead = prefetch_lead(kRows * weight_row_bytes(w.type, w.n_cols));
    size_t i = 0;
    for (; i + kRows <= n; i += kRows) {
        for (size_t r = 0; r < kRows; ++r) row[r] = w.row(rows ? rows[i + r] : first + i + r);
        dot_group<kRows>(w, x_f32, x_q8, row, prefetch_group(w, rows, first, i, n, lead, pf), y + i);
    }
    for (; i < n; ++i) {
        row[0] = w.row(rows ? rows[i] : first + i);
        dot_group<1>(w, x_f32, x_q8, row, nullptr, y + i);
    }
}

}  // namespace pi::cpu::detail::avx2
