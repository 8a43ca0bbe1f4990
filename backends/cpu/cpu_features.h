// Which SIMD instruction sets this CPU (and OS) supports, detected once at run time. Kernels dispatch on it.
#pragma once

#include <string>

namespace pi::cpu {

enum class IsaLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512vl = false;
    bool avx512_bf16 = false;
    bool avx512_vnni = false;
    bool amx_tile = false;
};

// Detected features (cached after the first call).
const CpuFeatures &cpu_features();

// The best level this CPU supports.
IsaLevel best_isa_level();

// The level kernels use: best_isa_level(), lowered by the environment variable PI_CPU_ISA=scalar|avx2|avx512
// (tests force each level this way) but never raised above what the CPU supports.
IsaLevel active_isa_level();

std::string isa_level_name(IsaLevel level);

}  // namespace pi::cpu
