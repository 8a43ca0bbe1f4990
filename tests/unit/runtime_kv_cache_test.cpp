// KvCache::store: the F16 cache holds exactly cpu::fp32_to_fp16 of each value (the SIMD conversion it uses must
// round like the scalar definition: ties to even, overflow to inf, subnormals, NaN), the F32 cache the values
// themselves; rows of other positions and layers are untouched.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/cpu/numeric.h"
#include "runtime/kv_cache.h"

using namespace pi;

namespace {

// kv_dim values with the conversion's edge cases up front, random values over many binades after them.
std::vector<float> kv_values(uint32_t kv_dim, uint32_t seed) {
    std::vector<float> v = {0.0f, -0.0f, 65504.0f, 65520.0f, -65520.0f, 1e9f,
                            std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                            std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(3.0f, -25),
                            1.0f + std::ldexp(1.0f, -11), 1.0f + 3.0f * std::ldexp(1.0f, -11)};
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> expo(-28, 17);
    std::uniform_real_distribution<float> mant(-2.0f, 2.0f);
    while (v.size() < kv_dim) v.push_back(std::ldexp(mant(rng), expo(rng)));
    v.resize(kv_dim);
    return v;
}

}  // namespace

TEST_CASE("KvCache::store rounds like fp32_to_fp16 and writes only its row", "[kv_cache]") {
    for (uint32_t kv_dim : {4096u, 37u, 16u}) {  // 37: a tail shorter than a vector
        for (KvType type : {KvType::F16, KvType::F32}) {
            INFO("kv_dim " << kv_dim << " type " << int(type));
            KvCache cache(2, 4, kv_dim, type);
            const std::vector<float> k = kv_values(kv_dim, 1), v = kv_values(kv_dim, 2);
            cache.store(1, 2, k.data(), v.data());
            for (uint32_t i = 0; i < kv_dim; ++i) {
                if (type == KvType::F16) {
                    const auto *kr = static_cast<const uint16_t *>(cache.key_row(1, 2));
                    const auto *vr = static_cast<const uint16_t *>(cache.value_row(1, 2));
                    REQUIRE(kr[i] == cpu::fp32_to_fp16(k[i]));
                    REQUIRE(vr[i] == cpu::fp32_to_fp16(v[i]));
                } else {
                    REQUIRE(std::memcmp(static_cast<const float *>(cache.key_row(1, 2)) + i, &k[i], 4) == 0);
                    REQUIRE(std::memcmp(static_cast<const float *>(cache.value_row(1, 2)) + i, &v[i], 4) == 0);
                }
            }
            // Independent of the scalar helper: a few values whose halves are known.
            if (type == KvType::F16) {
                const auto *kr = static_cast<const uint16_t *>(cache.key_row(1, 2));
                REQUIRE(kr[0] == 0x0000);
                REQUIRE(kr[1] == 0x8000);
                REQUIRE(kr[2] == 0x7bff);  // 65504, the largest half
                if (kv_dim > 12) {
                    REQUIRE(kr[3] == 0x7c00);   // 65520 rounds to inf
                    REQUIRE(kr[6] == 0x7c00);   // inf
                    REQUIRE((kr[7] & 0x7c00) == 0x7c00);
                    REQUIRE((kr[7] & 0x03ff) != 0);  // NaN stays NaN
                    REQUIRE(kr[8] == 0x0001);   // 2^-24, the smallest subnormal
                    REQUIRE(kr[9] == 0x0000);   // 2^-25: a tie, to even zero
                    REQUIRE(kr[10] == 0x0002);  // 3 * 2^-25: a tie, to even 2^-23
                    REQUIRE(kr[11] == 0x3c00);  // 1 + 2^-11: a tie, to even 1
                    REQUIRE(kr[12] == 0x3c02);  // 1 + 3 * 2^-11: a tie, to even 1 + 2^-9
                }
            }
            // Every other row is still zero.
            const size_t row_bytes = kv_dim * cache.element_bytes();
            for (uint32_t l = 0; l < 2; ++l) {
                for (uint32_t p = 0; p < 4; ++p) {
                    if (l == 1 && p == 2) continue;
                    for (const void *row : {cache.key_row(l, p), cache.value_row(l, p)}) {
                        const auto *b = static_cast<const uint8_t *>(row);
                        for (size_t i = 0; i < row_bytes; ++i) REQUIRE(b[i] == 0);
                    }
                }
            }
        }
    }
}
