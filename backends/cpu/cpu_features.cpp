#include "backends/cpu/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace pi::cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// XGETBV: which register states the OS saves on context switch. AVX needs XMM|YMM (bits 1,2), AVX-512 also the
// opmask and upper ZMM states (bits 5,6,7).
uint64_t read_xcr0() {
    uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx = (ecx >> 28) & 1;
    f.fma = (ecx >> 12) & 1;
    f.f16c = (ecx >> 29) & 1;
    if (!osxsave || !avx) return CpuFeatures{};
    const uint64_t xcr0 = read_xcr0();
    const bool os_avx = (xcr0 & 0x6) == 0x6;
    const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;
    if (!os_avx) return CpuFeatures{};
    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        f.avx2 = (ebx >> 5) & 1;
        if (os_avx512) {
            f.avx512f = (ebx >> 16) & 1;
            f.avx512bw = (ebx >> 30) & 1;
            f.avx512vl = (ebx >> 31) & 1;
            f.avx512_vnni = (ecx >> 11) & 1;
        }
        f.amx_tile = (edx >> 24) & 1;
        __cpuid_count(7, 1, eax, ebx, ecx, edx);
        f.avx512_bf16 = os_avx512 && ((eax >> 5) & 1);
    }
    return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

}  // namespace

const CpuFeatures &cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

IsaLevel best_isa_level() {
    const CpuFeatures &f = cpu_features();
    if (f.avx512f && f.avx512bw && f.avx512vl && f.fma && f.f16c) return IsaLevel::Avx512;
    if (f.avx2 && f.fma && f.f16c) return IsaLevel::Avx2;
    return IsaLevel::Scalar;
}

IsaLevel active_isa_level() {
    IsaLevel best = best_isa_level();
    const char *forced = std::getenv("PI_CPU_ISA");
    if (!forced) return best;
    IsaLevel wanted = best;
    if (std::strcmp(forced, "scalar") == 0) wanted = IsaLevel::Scalar;
    else if (std::strcmp(forced, "avx2") == 0) wanted = IsaLevel::Avx2;
    else if (std::strcmp(forced, "avx512") == 0) wanted = IsaLevel::Avx512;
    return wanted < best ? wanted : best;
}

std::string isa_level_name(IsaLevel level) {
    switch (level) {
        case IsaLevel::Scalar: return "scalar";
        case IsaLevel::Avx2: return "avx2";
        case IsaLevel::Avx512: return "avx512";
    }
    return "unknown";
}

}  // namespace pi::cpu
