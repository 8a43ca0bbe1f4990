#include "host_data.h"

#include <cmath>
#include <cstring>

#include "backends/cpu/numeric.h"

namespace pi::conformance {

std::vector<float> random_floats(Rng &rng, size_t n, float scale) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> v(n);
    for (float &x : v) x = normal(rng);
    return v;
}

HostMatrix random_matrix(Rng &rng, uint32_t type, uint64_t n_rows, uint64_t n_cols, float scale, uint64_t pad) {
    HostMatrix m;
    m.type = type;
    m.n_rows = n_rows;
    m.n_cols = n_cols;
    uint64_t row = 0;
    switch (type) {
        case PI_BK_F32: row = 4 * n_cols; break;
        case PI_BK_F16:
        case PI_BK_BF16: row = 2 * n_cols; break;
        case PI_BK_Q8_0: row = n_cols / 32 * 34; break;
        case PI_BK_Q4_0: row = n_cols / 32 * 18; break;
    }
    m.row_stride = row + pad;
    m.bytes.assign(m.row_stride * n_rows, 0);
    std::normal_distribution<float> normal(0.0f, scale);
    std::uniform_real_distribution<float> d_scale(0.5f, 1.5f);
    std::uniform_int_distribution<int> code8(-127, 127), code4(0, 15);
    for (uint64_t r = 0; r < n_rows; ++r) {
        uint8_t *p = m.bytes.data() + r * m.row_stride;
        for (uint64_t c = 0; c < n_cols; ++c) {
            if (type == PI_BK_F32) {
                const float v = normal(rng);
                std::memcpy(p + 4 * c, &v, 4);
            } else if (type == PI_BK_F16 || type == PI_BK_BF16) {
                const float v = normal(rng);
                const uint16_t h = type == PI_BK_F16 ? cpu::fp32_to_fp16(v) : cpu::fp32_to_bf16(v);
                std::memcpy(p + 2 * c, &h, 2);
            }
        }
        if (type == PI_BK_Q8_0 || type == PI_BK_Q4_0) {
            const size_t block = type == PI_BK_Q8_0 ? 34 : 18;
            for (uint64_t b = 0; b < n_cols / 32; ++b) {
                uint8_t *blk = p + b * block;
                const uint16_t d = cpu::fp32_to_fp16(scale * d_scale(rng) / (type == PI_BK_Q8_0 ? 64.0f : 4.0f));
                std::memcpy(blk, &d, 2);
                for (size_t i = 2; i < block; ++i) {
                    blk[i] = type == PI_BK_Q8_0 ? uint8_t(int8_t(code8(rng)))
                                                : uint8_t(code4(rng) | (code4(rng) << 4));
                }
            }
        }
    }
    return m;
}

const char *type_name(uint32_t type) {
    switch (type) {
        case PI_BK_F32: return "F32";
        case PI_BK_F16: return "F16";
        case PI_BK_BF16: return "BF16";
        case PI_BK_Q8_0: return "Q8_0";
        case PI_BK_Q4_0: return "Q4_0";
        default: return "?";
    }
}

const std::vector<uint32_t> &all_weight_types() {
    static const std::vector<uint32_t> types = {PI_BK_F32, PI_BK_F16, PI_BK_BF16, PI_BK_Q8_0, PI_BK_Q4_0};
    return types;
}

double relative_error(const std::vector<float> &got, const std::vector<float> &want) {
    if (got.size() != want.size()) return INFINITY;
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::isfinite(want[i]) && !std::isfinite(got[i])) return INFINITY;
        if (!std::isfinite(want[i])) {
            // Both must be the same non-finite kind (NaN vs NaN, or the same infinity).
            if (std::isnan(want[i]) ? !std::isnan(got[i]) : got[i] != want[i]) return INFINITY;
            continue;
        }
        diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        norm += double(want[i]) * want[i];
    }
    return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

}  // namespace pi::conformance
