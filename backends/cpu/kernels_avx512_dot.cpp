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
// Q8_0: two blocks per 512-bit step. Block pair -> 64 unsigned weight codes u = w ^ 0x80 = w + 128 in one
// register, matching the activation's 64 int8 values q (contiguous in Q8Activation); vpdpbusd (VNNI) sums u * q over
// each group of 4 into 16 int32 lanes, started at -128 * (group sum of q), so each lane ends at sum (w * q) exactly.
// Without VNNI, pmaddubsw + pmaddwd as |w| x sign(q, w), which cannot saturate. Each lane then adds
// float(isum) * (d_w * d_x) to an accumulator (pairs alternate between two accumulators, see dot_quant_rows); the
// fp16 scales d_w come from fp16_table.
//
// Q4_0: four blocks (72 bytes) per step, see q4_0_quad: one permute gathers the 4 blocks' code bytes, the nibbles
// meet x pre-arranged for them (Q8Activation::q4_lohi) with one AND and one shift + AND, two vpdpbusd (or
// pmaddubsw + pmaddwd) start at the -8 corrections, and one more permute + vcvtph2ps gives the 4 scales. 11 vector
// ops per 4 blocks and row against 16 for two pairs of the former two-block step: on Zen 4 (single core, rows in
// L2) ~32 GB/s of Q4_0 instead of ~21; from DRAM ~22-24 instead of ~16 (with two prefetches per step, see there).
// Q4_0R rows (the model's repacked copies of its Q4_0 matrices) skip the gathering permutes: see dot_q4_0r_rows;
// Q4_0X8 groups of eight rows are one stream, and each lane sums a whole block: see dot_q4_0x8_group_rows.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "backends/cpu/f16_interleave.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/q4_0_interleave.h"

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
            for (int r = 0; r < R; ++r) prefetch_line(pf[r] + k * esz);
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

// Eight rows of an F16X8 group (f16_interleave.h), n % 64 == 0: the operation sequence of dot_float_rows<F16, 8>
// (each row's accumulators, steps and final reduction), so the same bits, from one sequential stream. Software
// prefetch of each step 2 KiB ahead at the step's start. On the development VM's AMD cores prefetchnta
// 4 KiB ahead read faster at its higher bandwidth level (two cores 92-94 % of the read loop against 75-84 %), but on
// the GPU machine's Intel Xeon it halved the 16-thread CPU decode (bench-7b F16 sparse 10.2-10.4 tok/s against
// 16.3-16.9; one core 42 % of the read loop against 91 %): docs/PERFORMANCE.md, 2026-11-27 (ninth). The hint is
// prefetch_line's (PI_CPU_PREFETCH_LOCALITY: prefetcht0 since 2026-11-28, see isa_kernels.h), as for the row kernels.
constexpr size_t kF16X8PrefetchBytes = 2048;

void dot_f16x8_group(const uint8_t *group, const float *x, size_t n, float *y) {
    __m512 a[kF16X8Rows][4];
    PI_UNROLL
    for (size_t r = 0; r < kF16X8Rows; ++r) {
        PI_UNROLL
        for (int j = 0; j < 4; ++j) a[r][j] = _mm512_setzero_ps();
    }
    for (size_t k = 0; k < n; k += kF16X8StepWeights) {
        const uint8_t *step = group + (k / kF16X8StepWeights) * kF16X8StepBytes;
        PI_UNROLL
        for (size_t line = 0; line < kF16X8StepBytes; line += 64) prefetch_line(step + kF16X8PrefetchBytes + line);
        const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
        const __m512 x2 = _mm512_loadu_ps(x + k + 32), x3 = _mm512_loadu_ps(x + k + 48);
        PI_UNROLL
        for (size_t r = 0; r < kF16X8Rows; ++r) {
            const uint8_t *part = step + r * kF16X8StepWeights * 2;  // this row's 64 weights
            a[r][0] = _mm512_fmadd_ps(load16<Kind::F16>(part, 0), x0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(load16<Kind::F16>(part, 16), x1, a[r][1]);
            a[r][2] = _mm512_fmadd_ps(load16<Kind::F16>(part, 32), x2, a[r][2]);
            a[r][3] = _mm512_fmadd_ps(load16<Kind::F16>(part, 48), x3, a[r][3]);
        }
    }
    PI_UNROLL
    for (size_t r = 0; r < kF16X8Rows; ++r) {
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
    }
}

// An F16X8 matrix's rows: whole groups of a row range through dot_f16x8_group; the rows of partial groups and of
// row lists gathered back to F16 one at a time (a row's result does not depend on the rows beside it).
// The rows [first, first + n) (or rows[0..n)) of an interleaved matrix of `group_rows`-row groups: whole groups of
// a range through group(g, y), the rows of partial groups and of row lists one at a time through one(r, y) (a row's
// result does not depend on the rows beside it).
template <typename Group, typename One>
void dot_interleaved_rows(size_t group_rows, const uint32_t *rows, size_t first, size_t n, float *y, Group &&group,
                          One &&one) {
    size_t i = 0;
    if (!rows) {
        for (; i < n && (first + i) % group_rows != 0; ++i) one(first + i, y + i);
        for (; i + group_rows <= n; i += group_rows) group((first + i) / group_rows, y + i);
    }
    for (; i < n; ++i) one(rows ? rows[i] : first + i, y + i);
}

void dot_f16x8_rows(const WeightMatrix &w, const float *x, const uint32_t *rows, size_t first, size_t n, float *y) {
    const auto one = [&](size_t r, float *out) {
        WeightMatrix f16;
        unpack_repacked_row(w, r, f16);
        const uint8_t *row[1] = {f16.row(0)};
        dot_float_rows<Kind::F16, 1>(row, nullptr, x, w.n_cols, out);
    };
    const auto group = [&](size_t g, float *out) { dot_f16x8_group(f16x8_group(w, g), x, w.n_cols, out); };
    dot_interleaved_rows(kF16X8Rows, rows, first, n, y, group, one);
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

// Q4_0, four blocks (72 bytes) per step. With A = bytes 0-63 of the step and B = bytes 56-71, one two-source word
// permute gathers the 4 blocks' 16 code bytes into the 4 128-bit lanes (block j: words 9j+1 .. 9j+8; words 32-35
// are B's words 4-7), and one single-source permute spreads their fp16 scales (words 0, 9, 18, 27) over the lanes
// of their blocks. x comes pre-arranged to match (Q8Activation::q4_lohi), so the nibbles need one AND and one
// shift + AND per 4 blocks.
struct Q4Consts {
    __m512i code_idx, scale_idx;
    Q4Consts() {
        alignas(64) uint16_t c[32], d[32];
        for (int l = 0; l < 4; ++l) {
            for (int t = 0; t < 8; ++t) {
                const int word = 9 * l + 1 + t;
                c[l * 8 + t] = static_cast<uint16_t>(word < 32 ? word : 32 + (word - 28));
            }
        }
        for (int i = 0; i < 32; ++i) d[i] = static_cast<uint16_t>(9 * ((i / 4) % 4));
        code_idx = _mm512_load_si512(c);
        scale_idx = _mm512_load_si512(d);
    }
};

// The activation side of group g (blocks 4g .. 4g+3), shared by the rows.
struct QuadX {
    __m512i lo, hi, corr;
    __m512 dx;
};

inline QuadX load_quad_x(const Q8Activation &x, size_t g) {
    return {_mm512_load_si512(x.q4_lohi() + g * 128), _mm512_load_si512(x.q4_lohi() + g * 128 + 64),
            _mm512_load_si512(x.q4_corr() + g * 16), _mm512_load_ps(x.q4_dx() + g * 16)};
}

// The integer sums of 4 blocks' codes (64 bytes: byte j of a block holds weight j low, j + 16 high) with the
// activation's values, the -8 corrections included: 16 int32 lanes, 4 per block.
template <bool Vnni>
inline __m512i q4_codes_isum(__m512i codes, const QuadX &qx) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i u_lo = _mm512_and_si512(codes, low4);
    const __m512i u_hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low4);
    return dot_u8s8<Vnni>(dot_u8s8<Vnni>(qx.corr, u_lo, qx.lo), u_hi, qx.hi);
}

// acc + float(isum) * (d_w * d_x) for blocks 4g .. 4g+3 of one row; `blocks` < 4 only for the row's last group
// (masked loads: nothing past the row is read, and missing blocks read as zero codes and zero scales, meeting
// zero x values).
template <bool Vnni>
inline __m512 q4_0_quad(const uint8_t *row, const uint8_t *pf, const QuadX &qx, const Q4Consts &k, size_t g,
                        size_t blocks, __m512 acc) {
    const uint8_t *p = row + g * 4 * sizeof(BlockQ4_0);
    if (pf) {  // the step's 72 bytes touch two lines
        prefetch_line(pf + g * 4 * sizeof(BlockQ4_0));
        prefetch_line(pf + g * 4 * sizeof(BlockQ4_0) + 64);
    }
    __m512i a, b;
    if (blocks == 4) {
        a = _mm512_loadu_si512(p);
        b = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 56)));
    } else {  // at most 54 bytes
        a = _mm512_maskz_loadu_epi8((1ull << (blocks * sizeof(BlockQ4_0))) - 1, p);
        b = _mm512_setzero_si512();
    }
    const __m512i codes = _mm512_permutex2var_epi16(a, k.code_idx, b);
    const __m512i isum = q4_codes_isum<Vnni>(codes, qx);
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(k.scale_idx, a)));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, qx.dx), acc);
}

// One accumulator per row over the groups in order, then reduced across lanes.
template <bool Vnni, int R>
void dot_q4_0_rows(const uint8_t *const *row, const uint8_t *const *pf, const Q8Activation &x, float *y) {
    static const Q4Consts k;
    __m512 acc[R];
    PI_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const size_t nb = x.n_blocks();
    size_t g = 0;
    for (; 4 * g + 4 <= nb; ++g) {
        const QuadX qx = load_quad_x(x, g);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc[r] = q4_0_quad<Vnni>(row[r], pf ? pf[r] : nullptr, qx, k, g, 4, acc[r]);
    }
    if (4 * g < nb) {
        const QuadX qx = load_quad_x(x, g);
        PI_UNROLL
        for (int r = 0; r < R; ++r) acc[r] = q4_0_quad<Vnni>(row[r], nullptr, qx, k, g, nb - 4 * g, acc[r]);
    }
    PI_UNROLL
    for (int r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// Q4_0R (weight_type.h): the steps of q4_0_quad over the same values, but the 4 blocks' codes are one load as they
// lie, and the fp16 scales of 16 blocks are converted once (one vcvtph2ps per 4 steps; a vpermps spreads a step's 4
// scales over their lanes). Two word permutes and a conversion per step and row fewer: from L2, one core of the
// development VM (Zen 4) went from ~31 to ~45 GB/s. Each lane sees the same products in the same order as with
// q4_0_quad, so a Q4_0R row gives the bits of its Q4_0 original.
struct Q4rConsts {
    __m512i spread[4];  // step q of a 16-block group: lanes 4j .. 4j + 3 take the scale of block 4q + j
    Q4rConsts() {
        for (int q = 0; q < 4; ++q) {
            alignas(64) int32_t idx[16];
            for (int i = 0; i < 16; ++i) idx[i] = 4 * q + i / 4;
            spread[q] = _mm512_load_si512(idx);
        }
    }
};

template <bool Vnni, int R>
void dot_q4_0r_rows(const uint8_t *const *row, const uint8_t *const *pf, const Q8Activation &x, float *y) {
    static const Q4rConsts k;
    const size_t nb = x.n_blocks(), scales = 16 * nb;  // the scales follow the nb x 16 code bytes
    __m512 acc[R];
    PI_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (size_t b0 = 0; b0 < nb; b0 += 16) {
        const size_t group = nb - b0 < 16 ? nb - b0 : 16;
        const __mmask16 group_mask = static_cast<__mmask16>((1u << group) - 1);
        __m512 dw[R];
        PI_UNROLL
        for (int r = 0; r < R; ++r) {
            if (pf) prefetch_line(pf[r] + scales + 2 * b0);
            dw[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(group_mask, row[r] + scales + 2 * b0));
        }
        for (size_t q = 0; 4 * q < group; ++q) {
            const size_t g = b0 / 4 + q, blocks = group - 4 * q < 4 ? group - 4 * q : 4;
            const QuadX qx = load_quad_x(x, g);
            PI_UNROLL
            for (int r = 0; r < R; ++r) {
                const uint8_t *p = row[r] + 64 * g;
                if (pf) prefetch_line(pf[r] + 64 * g);
                const __m512i codes = blocks == 4 ? _mm512_loadu_si512(p)
                                                  : _mm512_maskz_loadu_epi8((1ull << (16 * blocks)) - 1, p);
                const __m512i isum = q4_codes_isum<Vnni>(codes, qx);
                const __m512 d = _mm512_permutexvar_ps(k.spread[q], dw[r]);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, qx.dx), acc[r]);
            }
        }
    }
    PI_UNROLL
    for (int r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// Rows of a Q4_0X8 group (q4_0_interleave.h). Each of a row's four code loads per 16-block step holds block j's
// 4 bytes in int32 lane j, so vpdpbusd sums whole blocks: after the step each lane holds one block's exact integer
// sum (the low nibbles' chain starts at the -8 corrections, the high nibbles' at zero, so the two dependency chains
// run side by side; their sum is exact), converted once and scaled by its d_w * d_x. Per row and 16 blocks: 4 loads,
// 12 nibble ops and 8 vpdpbusd, then one add, conversion, scale product and fmadd -- ~25 vector ops where the
// four-block steps of Q4_0R (4 lanes a block) take ~41. From L2 one core of the development VM went from ~110 to
// ~135-150 GB/s. The arithmetic is not Q4_0R's (a block's integer is converted once, not in four parts), so an X8
// row's bits are its own: the same for every R, first row, thread count and with or without VNNI (pmaddubsw +
// pmaddwd give the same integers), and the reference tests bound them like any Q4_0 dot's.
//
// Software prefetch of the whole step two steps ahead (36 lines), issued at the start of each step
// (R = 8 only): with the hardware prefetcher alone one core read ~23 GB/s from DRAM (it followed the shorter
// four-block steps at ~33). `pi-kernel-bench --threads 2 --types Q4_0X8` (docs/PERFORMANCE.md, 2026-11-27 (ninth)),
// two cores of the development VM, % of the read loop at its lower / higher bandwidth level, with prefetchnta: the
// whole step at once 92-104 / 82-89; a line before each load instead 84-89 / 84-89; every 2nd or 4th line 47-81; the
// whole step one step ahead - / 76-87, four steps ahead 90-97 / -; the four-block layout with the hardware prefetcher
// 84-94 / 63-80. prefetcht1 rather than nta: on the GPU machine's Intel Xeon nta read about half as fast (one core
// 56 % of the read loop against 93 %, 16 cores 62 % against 93 %); on the VM t1 read 91-96 / 82-93. The hint is
// prefetch_line's (PI_CPU_PREFETCH_LOCALITY), as for the row kernels: prefetcht0 since 2026-11-28 (one core of the
// Zen 5 VM 92-96 % of the read loop against t1's 87-89 %; with t1 that day three steps ahead read the same, four or
// six steps ahead or a line per 128 or 256 bytes (9-16 KiB ahead) less: 60-82 %).
constexpr size_t kQ4X8PrefetchBytes = 2 * kQ4X8StepBytes;

template <bool Vnni, size_t R>
void dot_q4_0x8_group_rows(const uint8_t *group, size_t first, const Q8Activation &x, bool prefetch, float *y) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 acc[R];
    PI_UNROLL
    for (size_t r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const size_t nb = x.n_blocks();
    // One step: t blocks (t < 16 only in a last step: masked loads, nothing past the group is read; the missing
    // blocks' lanes meet the activation's zeros).
    const auto step_rows = [&](const uint8_t *step, size_t s, size_t t, auto full) {
        const __m512 dx = _mm512_load_ps(x.q4x8_dx() + 16 * s);
        const __m512i corr = _mm512_load_si512(x.q4x8_corr() + 16 * s);
        const int8_t *xq = x.q4x8_q() + 512 * s;
        const __mmask16 scale_mask = static_cast<__mmask16>((1u << t) - 1);
        const __mmask64 chunk_mask = full ? ~0ull : (1ull << (4 * t)) - 1;
        if (prefetch) {
            for (size_t line = 0; line < kQ4X8StepBytes; line += 64) prefetch_line(step + kQ4X8PrefetchBytes + line);
        }
        __m512 d[R];
        PI_UNROLL
        for (size_t r = 0; r < R; ++r) {
            const uint8_t *scales = step + 2 * t * (first + r);
            const __m256i h = full ? _mm256_loadu_si256(reinterpret_cast<const __m256i *>(scales))
                                   : _mm256_maskz_loadu_epi16(scale_mask, scales);
            d[r] = _mm512_mul_ps(_mm512_cvtph_ps(h), dx);
        }
        PI_UNROLL
        for (size_t r = 0; r < R; ++r) {
            const uint8_t *codes = step + 2 * t * kQ4X8Rows + 16 * t * (first + r);
            __m512i lo_sum = corr, hi_sum = _mm512_setzero_si512();
            PI_UNROLL
            for (size_t k = 0; k < 4; ++k) {
                const __m512i c = full ? _mm512_loadu_si512(codes + 64 * k)
                                       : _mm512_maskz_loadu_epi8(chunk_mask, codes + 4 * t * k);
                lo_sum = dot_u8s8<Vnni>(lo_sum, _mm512_and_si512(c, low4), _mm512_load_si512(xq + 128 * k));
                hi_sum = dot_u8s8<Vnni>(hi_sum, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4),
                                        _mm512_load_si512(xq + 128 * k + 64));
            }
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo_sum, hi_sum)), d[r], acc[r]);
        }
    };
    const size_t steps = nb / kQ4X8StepBlocks, tail = nb % kQ4X8StepBlocks;
    for (size_t s = 0; s < steps; ++s) step_rows(group + s * kQ4X8StepBytes, s, kQ4X8StepBlocks, std::true_type{});
    if (tail) step_rows(group + steps * kQ4X8StepBytes, steps, tail, std::false_type{});
    PI_UNROLL
    for (size_t r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(acc[r]);
}

// A Q4_0X8 matrix's rows: whole groups eight rows at a time, the others one at a time (the same bits).
template <bool Vnni>
void dot_q4_0x8_rows(const WeightMatrix &w, const Q8Activation &x, const uint32_t *rows, size_t first, size_t n,
                     float *y) {
    const auto one = [&](size_t r, float *out) {
        dot_q4_0x8_group_rows<Vnni, 1>(q4_0x8_group(w, r / kQ4X8Rows), r % kQ4X8Rows, x, false, out);
    };
    const auto group = [&](size_t g, float *out) {
        dot_q4_0x8_group_rows<Vnni, kQ4X8Rows>(q4_0x8_group(w, g), 0, x, true, out);
    };
    dot_interleaved_rows(kQ4X8Rows, rows, first, n, y, group, one);
}

template <bool Vnni>
inline __m512 q8_0_pair(const uint8_t *row, const uint8_t *pf, const PairX &px, size_t b, bool single, __m512 acc) {
    // Pair bytes: [d_a, 32 codes of a, d_b, 32 codes of b].
    const uint8_t *p = row + b * sizeof(BlockQ8_0);
    if (pf) {  // a pair is 68 bytes: two lines
        prefetch_line(pf + b * sizeof(BlockQ8_0));
        prefetch_line(pf + b * sizeof(BlockQ8_0) + 64);
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
        case WeightType::Q4_0: dot_q4_0_rows<Vnni, R>(row, pf, *x_q8, y); break;
        case WeightType::Q4_0R: dot_q4_0r_rows<Vnni, R>(row, pf, *x_q8, y); break;
        case WeightType::F16X8:
        case WeightType::Q4_0X8: break;  // dot_rows_impl takes these before grouping
    }
}

// Rows [i, n) of the call in groups of R, as far as whole groups go; returns where it stopped.
template <size_t R, bool Vnni>
size_t dot_groups(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                  size_t first, size_t i, size_t n, float *y) {
    const uint8_t *row[R];
    const uint8_t *pf[R];
    const size_t lead = prefetch_lead(R * weight_row_bytes(w.type, w.n_cols));
    for (; i + R <= n; i += R) {
        for (size_t r = 0; r < R; ++r) row[r] = w.row(rows ? rows[i + r] : first + i + r);
        dot_group<static_cast<int>(R), Vnni>(w, x_f32, x_q8, row, prefetch_group(w, rows, first, i, n, lead, pf),
                                             y + i);
    }
    return i;
}

// Groups of eight rows for float weights and for Q4_0 row lists (the sparse FFN's scattered rows), four otherwise.
// From DRAM, more rows in a group keep more row streams in flight: one core, F16 4096-column rows, 24.5 -> 28.8
// GB/s with eight (the plain read loop: 35; sixteen rows spill their accumulators and drop to 19), and Q4_0 lists
// +12 % (11.6 % of 11008 rows); over contiguous Q4_0 rows four are faster (32 against 28 GB/s per core from L2: its
// dot is arithmetic-bound there). Groups never change a row's result.
// Compile-time knob for A/B runs on other machines: PI_CPU_FLOAT_GROUP=4 takes float rows four at a time again.
#ifndef PI_CPU_FLOAT_GROUP
#define PI_CPU_FLOAT_GROUP 8
#endif
static_assert(PI_CPU_FLOAT_GROUP == 8 || PI_CPU_FLOAT_GROUP == 4, "PI_CPU_FLOAT_GROUP must be 4 or 8");
template <bool Vnni>
void dot_rows_impl(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                   size_t first, size_t n, float *y) {
    if (w.type == WeightType::F16X8) return dot_f16x8_rows(w, x_f32, rows, first, n, y);
    if (w.type == WeightType::Q4_0X8) return dot_q4_0x8_rows<Vnni>(w, *x_q8, rows, first, n, y);
    size_t i = 0;
    const bool float_rows = PI_CPU_FLOAT_GROUP == 8 && !weight_type_is_quantized(w.type);
    if (float_rows || (rows && (w.type == WeightType::Q4_0 || w.type == WeightType::Q4_0R))) {
        i = dot_groups<8, Vnni>(w, x_f32, x_q8, rows, first, i, n, y);
    }
    i = dot_groups<4, Vnni>(w, x_f32, x_q8, rows, first, i, n, y);
    dot_groups<1, Vnni>(w, x_f32, x_q8, rows, first, i, n, y);
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
