// The kernel table of each ISA level (see isa_kernels.h) and the fp16 lookup table, filled on first use.
#include <string>
#include <vector>

#include "backends/cpu/f16_interleave.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/q4_0_interleave.h"
#include "backends/cpu/q4_0_repack.h"
#include "common/error.h"

namespace pi::cpu::detail {

alignas(64) float fp16_table[65536];

// Rows of the engine's own layouts (Q4_0R, F16X8, Q4_0X8: weight_type.h) reach the kernels that have no code for
// them one at a time, unpacked into a per-thread copy in the file's layout (Q4_0, F16): the same values, so the same
// results as that type's kernel of the level. Only the AVX-512 dots read them natively; the model repacks only where
// they run (runtime/repacked_weights.h), so these paths serve the rest (axpy rows are never repacked, the prefill
// GEMM's conversions, forced lower levels, row lists and partial groups of F16X8 and Q4_0X8) at the cost of a row
// copy.
void unpack_repacked_row(const WeightMatrix &w, size_t r, WeightMatrix &one) {
    thread_local std::vector<uint8_t> buf;
    const WeightType plain = w.type == WeightType::F16X8 ? WeightType::F16 : WeightType::Q4_0;
    const size_t bytes = weight_row_bytes(plain, w.n_cols);
    if (buf.size() < bytes) buf.resize(bytes);
    if (w.type == WeightType::F16X8) {
        gather_f16x8_row(w, r, reinterpret_cast<uint16_t *>(buf.data()));
    } else if (w.type == WeightType::Q4_0X8) {
        gather_q4_0x8_row(w, r, buf.data());
    } else {
        unpack_q4_0r_row(w.row(r), w.n_cols, buf.data());
    }
    one = make_weight_matrix(buf.data(), plain, 1, w.n_cols);
}

namespace {

using DotRows = void (*)(const WeightMatrix &, const float *, const Q8Activation *, const uint32_t *, size_t, size_t,
                         float *);
using AxpyRows = void (*)(const WeightMatrix &, const float *, const uint32_t *, size_t, size_t, size_t, float *);

template <DotRows Inner>
void dot_rows_unpacking(const WeightMatrix &w, const float *x_f32, const Q8Activation *x_q8, const uint32_t *rows,
                        size_t first, size_t n, float *y) {
    if (!weight_type_is_repacked(w.type)) return Inner(w, x_f32, x_q8, rows, first, n, y);
    WeightMatrix one;
    for (size_t i = 0; i < n; ++i) {
        unpack_repacked_row(w, rows ? rows[i] : first + i, one);
        Inner(one, x_f32, x_q8, nullptr, 0, 1, y + i);
    }
}

template <AxpyRows Inner>
void axpy_rows_unpacking(const WeightMatrix &w, const float *a, const uint32_t *rows, size_t n, size_t c0, size_t c1,
                         float *y) {
    if (!weight_type_is_repacked(w.type)) return Inner(w, a, rows, n, c0, c1, y);
    WeightMatrix one;
    const uint32_t first_row = 0;
    for (size_t i = 0; i < n; ++i) {  // in list order, as the contract requires
        unpack_repacked_row(w, rows[i], one);
        Inner(one, a + i, &first_row, 1, c0, c1, y);
    }
}

template <typename Out, void (*Inner)(const WeightMatrix &, size_t, size_t, Out *, size_t)>
void rows_to_unpacking(const WeightMatrix &w, size_t r0, size_t r1, Out *out, size_t ld) {
    if (!weight_type_is_repacked(w.type)) return Inner(w, r0, r1, out, ld);
    WeightMatrix one;
    for (size_t r = r0; r < r1; ++r) {
        unpack_repacked_row(w, r, one);
        Inner(one, 0, 1, out + (r - r0) * ld, ld);
    }
}

// Every table lists the members in KernelTable's order.
#define PI_CPU_KERNEL_TABLE(level, ns, dot, attend, select)                                                         \
    {                                                                                                               \
        level, dot, axpy_rows_unpacking<ns::axpy_rows>, rows_to_unpacking<float, ns::rows_to_f32>, ns::f32_to_bf16, \
            ns::f32_to_f16, rows_to_unpacking<uint16_t, ns::rows_to_bf16>, ns::quantize_q8, ns::read_sum, attend,   \
            select                                                                                                  \
    }

const KernelTable kScalar = PI_CPU_KERNEL_TABLE(IsaLevel::Scalar, scalar, dot_rows_unpacking<scalar::dot_rows>,
                                                scalar::attend_heads, scalar::select_at_least);
#if defined(PI_CPU_X86_KERNELS)
// AVX2 has no attention or selection kernel of its own (AVX2-only CPUs keep the scalar ones).
const KernelTable kAvx2 = PI_CPU_KERNEL_TABLE(IsaLevel::Avx2, avx2, dot_rows_unpacking<avx2::dot_rows>,
                                              scalar::attend_heads, scalar::select_at_least);
const KernelTable kAvx512 =
    PI_CPU_KERNEL_TABLE(IsaLevel::Avx512, avx512, avx512::dot_rows, avx512::attend_heads, avx512::select_at_least);
const KernelTable kAvx512NoVnni = PI_CPU_KERNEL_TABLE(IsaLevel::Avx512, avx512, avx512::dot_rows_no_vnni,
                                                      avx512::attend_heads, avx512::select_at_least);
#endif
#undef PI_CPU_KERNEL_TABLE

void fill_fp16_table() {
    static const bool filled = [] {
        for (uint32_t h = 0; h < 65536; ++h) fp16_table[h] = fp16_to_fp32(static_cast<uint16_t>(h));
        return true;
    }();
    (void)filled;
}

[[noreturn]] void unsupported(IsaLevel level) {
    fail(PI_ERR_UNSUPPORTED, "the CPU kernels for " + isa_level_name(level) + " are not available: this " +
                                 (level <= best_isa_level() ? "build lacks them" : "CPU lacks the instructions"));
}

}  // namespace

const KernelTable &kernels(IsaLevel level) {
    fill_fp16_table();
    if (level == IsaLevel::Scalar) return kScalar;
#if defined(PI_CPU_X86_KERNELS)
    if (level <= best_isa_level()) {
        if (level == IsaLevel::Avx2) return kAvx2;
        if (level == IsaLevel::Avx512) return cpu_features().avx512_vnni ? kAvx512 : kAvx512NoVnni;
    }
#endif
    unsupported(level);
}

const KernelTable &avx512_kernels(bool vnni) {
    fill_fp16_table();
#if defined(PI_CPU_X86_KERNELS)
    if (best_isa_level() >= IsaLevel::Avx512) {
        if (!vnni) return kAvx512NoVnni;
        if (cpu_features().avx512_vnni) return kAvx512;
        fail(PI_ERR_UNSUPPORTED, "this CPU lacks AVX-512 VNNI");
    }
#else
    (void)vnni;
#endif
    unsupported(IsaLevel::Avx512);
}

}  // namespace pi::cpu::detail
