// The kernel table of each ISA level (see isa_kernels.h) and the fp16 lookup table, filled on first use.
#include <string>

#include "backends/cpu/isa_kernels.h"
#include "common/error.h"

namespace pi::cpu::detail {

alignas(64) float fp16_table[65536];

namespace {

// Every table lists the members in KernelTable's order.
#define PI_CPU_KERNEL_TABLE(level, ns, dot, attend)                                                        \
    {                                                                                                      \
        level, ns::dot, ns::axpy_rows, ns::rows_to_f32, ns::f32_to_bf16, ns::f32_to_f16, ns::rows_to_bf16, \
            ns::quantize_q8, ns::read_sum, attend                                                          \
    }

const KernelTable kScalar = PI_CPU_KERNEL_TABLE(IsaLevel::Scalar, scalar, dot_rows, scalar::attend_head);
#if defined(PI_CPU_X86_KERNELS)
// AVX2 has no attention kernel of its own (prefill on AVX2-only CPUs keeps the scalar one).
const KernelTable kAvx2 = PI_CPU_KERNEL_TABLE(IsaLevel::Avx2, avx2, dot_rows, scalar::attend_head);
const KernelTable kAvx512 = PI_CPU_KERNEL_TABLE(IsaLevel::Avx512, avx512, dot_rows, avx512::attend_head);
const KernelTable kAvx512NoVnni = PI_CPU_KERNEL_TABLE(IsaLevel::Avx512, avx512, dot_rows_no_vnni, avx512::attend_head);
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
