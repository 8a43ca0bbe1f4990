#include "runtime/cpu_step_profile.h"

#include <cstdio>

#include "common/env_switch.h"

namespace pi {

const char *CpuStepProfile::part_name(Part p) {
    switch (p) {
        case kQkv: return "q|k|v projections";
        case kAttention: return "attention";
        case kOutProj: return "output projection";
        case kPredictor: return "predictor";
        case kFfn: return "FFN";
        case kGlue: return "norms, residuals";
        case kOutside: return "embedding, logits";
        case kPartCount: break;
    }
    return "?";
}

bool CpuStepProfile::requested() { return env_switch_on("PI_CPU_PROFILE"); }

std::string CpuStepProfile::report() const {
    if (steps_ == 0) return {};
    double total_s = 0;
    uint64_t total_b = 0;
    for (unsigned p = 0; p < kPartCount; ++p) {
        total_s += seconds_[p];
        total_b += bytes_[p];
    }
    const double per_step = 1.0 / double(steps_);
    char line[200];
    auto speed = [](uint64_t bytes, double s) {
        char buf[32];
        if (bytes == 0 || s <= 0) return std::string("     -");
        std::snprintf(buf, sizeof buf, "%6.1f", double(bytes) / s / 1e9);
        return std::string(buf);
    };
    std::snprintf(line, sizeof line, "PI_CPU_PROFILE: %llu decode steps, %.3f ms and %.3f MB a step, %s GB/s\n",
                  (unsigned long long)steps_, total_s * per_step * 1e3, double(total_b) * per_step / 1e6,
                  speed(total_b, total_s).c_str());
    std::string out = line;
    for (unsigned p = 0; p < kPartCount; ++p) {
        std::snprintf(line, sizeof line, "  %-20s %8.3f ms %5.1f %% %10.3f MB %s GB/s\n", part_name(Part(p)),
                      seconds_[p] * per_step * 1e3, total_s > 0 ? 100.0 * seconds_[p] / total_s : 0.0,
                      double(bytes_[p]) * per_step / 1e6, speed(bytes_[p], seconds_[p]).c_str());
        out += line;
    }
    return out;
}

}  // namespace pi
