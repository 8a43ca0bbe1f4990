// Internal: the single-threaded kernels of each ISA level, behind one table per level. The public entry points
// (matvec.h, row_convert.h, q8_activation.h, gemm.h, bandwidth.h) validate arguments, split work over threads and
// pick a table; the kernels trust their arguments.
//
// Each level's kernels live in files compiled with that level's flags only (kernels_avx512_*.cpp with
// -mavx512f/bw/vl/vnni/bf16, kernels_avx2_*.cpp with -mavx2 -mfma -mf16c); the rest of the library is built for the
// baseline x86-64, so it loads and runs on CPUs without AVX.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/numeric.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/weight_type.h"

// Fully unrolls a short loop over the rows of a group, so each row's accumulators stay in registers (GCC -O2 would
// otherwise keep them in memory).
#define PI_UNROLL _Pragma("GCC unroll 8")

namespace pi::cpu::detail {

// Destination of quantize_q8 (see Q8Activation for the meaning of each array).
struct Q8Out {
    int8_t *q;
    uint16_t *d16;
    float *d_lanes;
    int32_t *neg8;
    int32_t *neg128;
};

struct KernelTable {
    IsaLevel level;
    // y[i] = dot(row(rows ? rows[i] : first + i), x) for i < n. Float weights read x_f32, Q8_0/Q4_0 read x_q8.
    // Each row is computed by one fixed sequence of operations that depends only on n_cols, so a row's result does
    // not depend on which other rows share the call.
    void (*dot_rows)(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                     size_t first, size_t n, float *y);
    // For i = 0..n-1 in order, for c in [c0, c1): y[c] = y[c] + (a[i] * W[rows[i]][c]), the product rounded to
    // binary32 before the addition (no fused multiply-add; for Q8_0/Q4_0 the product is (a[i] * d) * q). Every
    // level gives bit-identical results. c0 is a multiple of 64; c1 is too, unless it is n_cols.
    void (*axpy_rows)(const WeightMatrix &w, const float *a, const uint32_t *rows, size_t n, size_t c0, size_t c1,
                      float *y);
    // out[(r - r0) * ld + c] = W[r][c] exactly (every supported type is exact in binary32).
    void (*rows_to_f32)(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld);
    // out[i] = fp32_to_bf16(x[i]) (round-to-nearest-even, subnormals kept): bit-identical on every level.
    void (*f32_to_bf16)(const float *x, size_t n, uint16_t *out);
    // out[i] = fp32_to_fp16(x[i]) (round-to-nearest-even; F16C's vcvtps2ph where the level has it): bit-identical on
    // every level.
    void (*f32_to_f16)(const float *x, size_t n, uint16_t *out);
    // out[(r - r0) * ld + c] = fp32_to_bf16(W[r][c]): bit-identical on every level. (F16/Q8_0/Q4_0 values are never
    // subnormal in binary32, so a converting instruction that flushes subnormals gives the same bits for them.)
    void (*rows_to_bf16)(const WeightMatrix &w, size_t r0, size_t r1, uint16_t *out, size_t ld);
    // Quantizes n values (a multiple of 32) as Q8Activation documents: bit-identical on every level.
    void (*quantize_q8)(const float *x, size_t n, const Q8Out &out);
    // Reads `bytes` (a multiple of 256, 64-byte aligned) as fast as the level can and returns their sum as floats
    // (so the reads cannot be optimized away): the memory bandwidth probe's inner loop.
    float (*read_sum)(const void *data, size_t bytes);
    // Attention of query heads [h0, h1) over n_pos cache rows (see layer_math.h attend_heads for the contract);
    // stats: NULL, or 2 * (h1 - h0) floats for each head's largest score and sum of exp(score - largest).
    void (*attend_heads)(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset,
                         uint32_t head_dim, uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos,
                         float scale, float *scores, float *out, float *stats);
    // Writes the indices i < n with s[i] >= threshold (never a NaN score) to out in increasing order and returns
    // their count; out has room for n. The predictor's selection of the active neurons.
    size_t (*select_at_least)(const float *s, size_t n, float threshold, uint32_t *out);
};

// The table of a level. Throws pi::Error(PI_ERR_UNSUPPORTED) when this CPU (or this build) lacks the level.
// Also makes sure fp16_table is filled, so kernels reached through a table may use it.
const KernelTable &kernels(IsaLevel level);

// fp16 -> fp32 for all 65536 codes (256 KiB, filled once by kernels()). Converting one scale per block with a load
// from here is cheaper in the quantized kernels than vcvtph2ps plus the shuffles that spread its result, and the
// scales of a model use few distinct codes, so the entries in use stay in L1.
extern float fp16_table[65536];

inline float fp16_table_value(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return fp16_table[h];
}

// The AVX-512 table with or without VNNI int8 dots (kernels(Avx512) picks by the CPU; tests run both). Throws like
// kernels() when the CPU lacks AVX-512, or VNNI when asked for it.
const KernelTable &avx512_kernels(bool vnni);

// Software prefetch. On the development machine (Zen 4) a quantized kernel streaming from DRAM on one core reached
// only ~8 GB/s of the ~22 GB/s a plain read loop gets: its arithmetic keeps few loads in flight and the hardware
// prefetchers do not run far enough ahead (and never across rows of a scattered list). So the kernels, which take
// rows in groups, prefetch, while computing group g, the rows of group g + lead at the offset they are reading, with
// lead chosen so that about kPrefetchBytes lie between the two. That doubled Q4_0 from DRAM.
//
// The hint is prefetcht0 (locality 3: into L1 and L2). It was prefetcht1 until the kernels read interleaved groups
// (F16X8, Q4_0X8), measured on the development VM's Zen 5 cores: 2026-11-28, whole trees rebuilt with
// -DPI_CPU_PREFETCH_LOCALITY=2|3, alternating, t0 read Q4_0X8 products at 92-96 % of the one-core read loop against
// 87-89 % with t1, and bench-7b's sparse decode was faster at the VM's higher bandwidth level (Q4_0 2.5-4.6 %, F16
// 1-3 %; unchanged at its lower level) and 8-12 % faster on the GPU machine's 16-core Intel Xeon (F16, CPU only);
// plain F16 row lists lost ~5 % on one core. docs/PERFORMANCE.md, "2026-11-28 (fourth)". prefetchnta (0) was no
// better on the VM and is half as fast on the Xeon.
#ifndef PI_CPU_PREFETCH_BYTES  // compile-time knobs, for tuning on other machines
#define PI_CPU_PREFETCH_BYTES (16 * 1024)
#endif
#ifndef PI_CPU_PREFETCH_LOCALITY
#define PI_CPU_PREFETCH_LOCALITY 3
#endif
constexpr size_t kPrefetchBytes = PI_CPU_PREFETCH_BYTES;

// Groups ahead for groups of group_bytes (the bytes a group reads), at least 1.
inline size_t prefetch_lead(size_t group_bytes) {
    const size_t lead = group_bytes ? (kPrefetchBytes + group_bytes - 1) / group_bytes : 1;
    return lead ? lead : 1;
}

// One cache line, with the kernels' hint (3: prefetcht0, 2: prefetcht1, 0: prefetchnta).
inline void prefetch_line(const void *p) { __builtin_prefetch(p, 0, PI_CPU_PREFETCH_LOCALITY); }

// Fills pf with the rows of the group `lead` groups after the one starting at entry i of a row range/list of n
// entries, and returns pf, or nullptr when there is no such group.
template <size_t R>
inline const uint8_t *const *prefetch_group(const WeightMatrix &w, const uint32_t *rows, size_t first, size_t i,
                                            size_t n, size_t lead, const uint8_t *(&pf)[R]) {
    const size_t j = i + lead * R;
    if (j + R > n) return nullptr;
    for (size_t r = 0; r < R; ++r) pf[r] = w.row(rows ? rows[j + r] : first + j + r);
    return pf;
}

// One block quantized: the scalar definition every level's quantize_q8 must reproduce bit for bit.
struct Q8BlockValues {
    uint16_t d16;
    int8_t q[32];
    int32_t group_sum[8];  // q[4j] + ... + q[4j+3]
};

inline Q8BlockValues quantize_block_q8(const float *x) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[i]));  // fmax skips NaNs
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    Q8BlockValues v;
    v.d16 = fp32_to_fp16(d);
    for (int i = 0; i < 32; ++i) {
        // Half to even (the default rounding mode). |x * id| <= 127 up to rounding; the clamp only matters when 1 / d
        // overflows for a subnormal amax, and a NaN (from inf or NaN input) becomes 0, as the SIMD code does.
        float r = std::nearbyint(x[i] * id);
        if (r > 127.0f) r = 127.0f;
        if (r < -127.0f) r = -127.0f;
        v.q[i] = r == r ? static_cast<int8_t>(r) : 0;
    }
    for (int j = 0; j < 8; ++j) v.group_sum[j] = v.q[4 * j] + v.q[4 * j + 1] + v.q[4 * j + 2] + v.q[4 * j + 3];
    return v;
}

// Stores one quantized block b into `out` (shared by the levels' quantize_q8 for their scalar tails and checks).
inline void store_q8_block(const Q8BlockValues &v, size_t b, const Q8Out &out) {
    out.d16[b] = v.d16;
    const float d = fp16_to_fp32(v.d16);
    for (int i = 0; i < 32; ++i) out.q[b * 32 + i] = v.q[i];
    for (int j = 0; j < 8; ++j) {
        out.d_lanes[b * 8 + j] = d;
        out.neg8[b * 8 + j] = -8 * v.group_sum[j];
        out.neg128[b * 8 + j] = -128 * v.group_sum[j];
    }
}

// Sets `one` to a 1-row view in the file's layout (Q4_0, F16) of row r of a repacked matrix w (Q4_0R, F16X8,
// Q4_0X8), unpacked into this thread's buffer (valid until the thread's next call). kernel_table.cpp.
void unpack_repacked_row(const WeightMatrix &w, size_t r, WeightMatrix &one);

#define PI_CPU_DECLARE_ISA_KERNELS(ns)                                                                          \
    namespace ns {                                                                                              \
    void dot_rows(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,    \
                  size_t first, size_t n, float *y);                                                            \
    void axpy_rows(const WeightMatrix &w, const float *a, const uint32_t *rows, size_t n, size_t c0, size_t c1, \
                   float *y);                                                                                   \
    void rows_to_f32(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld);                       \
    void f32_to_bf16(const float *x, size_t n, uint16_t *out);                                                  \
    void f32_to_f16(const float *x, size_t n, uint16_t *out);                                                   \
    void rows_to_bf16(const WeightMatrix &w, size_t r0, size_t r1, uint16_t *out, size_t ld);                   \
    void quantize_q8(const float *x, size_t n, const Q8Out &out);                                               \
    float read_sum(const void *data, size_t bytes);                                                             \
    void attend_heads(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset,         \
                      uint32_t head_dim, uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, \
                      float scale, float *scores, float *out, float *stats);                                      \
    }

PI_CPU_DECLARE_ISA_KERNELS(scalar)
namespace scalar {
size_t select_at_least(const float *s, size_t n, float threshold, uint32_t *out);
}
#if defined(PI_CPU_X86_KERNELS)
PI_CPU_DECLARE_ISA_KERNELS(avx2)
PI_CPU_DECLARE_ISA_KERNELS(avx512)
namespace avx512 {
size_t select_at_least(const float *s, size_t n, float threshold, uint32_t *out);
// The same dots through pmaddubsw + pmaddwd, for AVX-512 CPUs without VNNI (Skylake-X).
void dot_rows_no_vnni(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                      size_t first, size_t n, float *y);
}  // namespace avx512
#endif

#undef PI_CPU_DECLARE_ISA_KERNELS

}  // namespace pi::cpu::detail
