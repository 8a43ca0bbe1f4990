// Activation quantization to Q8_0: the documented rounding, identical on every ISA level, and the derived per-block
// data the SIMD dots rely on.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/q8_activation.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

std::vector<float> tricky_activations() {
    std::vector<float> x = random_vector(32 * 40, 3, 2.0f);
    // Block 1: all zero. Block 2: exact ties of x * id at +-0.5 and +-2.5 (amax 127 makes id exactly 1).
    for (int j = 0; j < 32; ++j) x[32 + j] = 0.0f;
    for (int j = 0; j < 32; ++j) x[64 + j] = 0.0f;
    x[64] = 127.0f;
    x[65] = 0.5f;
    x[66] = -0.5f;
    x[67] = 2.5f;
    x[68] = -2.5f;
    x[69] = 1.5f;
    // Block 3: a subnormal amax (1 / d overflows): values must clamp, not wrap.
    for (int j = 0; j < 32; ++j) x[96 + j] = std::ldexp(static_cast<float>(j - 16), -140);
    // Block 4: huge values (d overflows fp16 to inf). Block 5: a NaN and an inf among normal values.
    for (int j = 0; j < 32; ++j) x[128 + j] = 1e30f * static_cast<float>(j - 10);
    x[160 + 3] = std::numeric_limits<float>::quiet_NaN();
    x[192 + 5] = -std::numeric_limits<float>::infinity();
    // Block 6: one large value among tiny ones, block 7: all equal negative.
    for (int j = 0; j < 32; ++j) x[224 + j] = 1e-6f * static_cast<float>(j);
    x[224 + 31] = 1000.0f;
    for (int j = 0; j < 32; ++j) x[256 + j] = -3.25f;
    return x;
}

}  // namespace

TEST_CASE("Q8_0 activation quantization follows the documented rounding", "[cpu]") {
    const std::vector<float> x = random_vector(32 * 64, 5, 3.0f);
    const RefQ8 ref = ref_quantize(x.data(), x.size());
    std::vector<BlockQ8_0> blocks(x.size() / 32);
    quantize_row_q8_0(x.data(), x.size(), blocks.data());
    for (size_t b = 0; b < blocks.size(); ++b) {
        REQUIRE(blocks[b].d == ref.d16[b]);
        int amax_code = 0;
        for (int j = 0; j < 32; ++j) {
            REQUIRE(blocks[b].q[j] == ref.q[b * 32 + j]);
            amax_code = std::max(amax_code, std::abs(static_cast<int>(blocks[b].q[j])));
        }
        REQUIRE(amax_code == 127);  // the largest magnitude maps to +-127
    }
    // Ties go to even.
    std::vector<float> t(32, 0.0f);
    t[0] = 127.0f;
    t[1] = 0.5f;
    t[2] = 1.5f;
    t[3] = -2.5f;
    quantize_row_q8_0(t.data(), 32, blocks.data());
    CHECK(blocks[0].q[1] == 0);
    CHECK(blocks[0].q[2] == 2);
    CHECK(blocks[0].q[3] == -2);
    CHECK(fp16_to_fp32(blocks[0].d) == 1.0f);
}

TEST_CASE("Q8Activation gives the same values on every ISA level, edge cases included", "[cpu]") {
    const std::vector<float> x = tricky_activations();
    std::vector<BlockQ8_0> want(x.size() / 32);
    quantize_row_q8_0(x.data(), x.size(), want.data());
    // The NaN / inf / overflow blocks have no meaningful values, but they must be well defined: no |q| > 127.
    for (const BlockQ8_0 &b : want) {
        for (int j = 0; j < 32; ++j) REQUIRE(std::abs(static_cast<int>(b.q[j])) <= 127);
    }
    CHECK(want[3].q[31] == 127);  // subnormal block: clamped
    CHECK(want[5].q[3] == 0);     // NaN -> 0
    for (IsaLevel level : available_levels()) {
        DYNAMIC_SECTION(isa_level_name(level)) {
            Q8Activation a;
            a.quantize(x.data(), x.size(), level);
            REQUIRE(a.size() == x.size());
            std::vector<BlockQ8_0> got(a.n_blocks());
            a.to_blocks(got.data());
            for (size_t b = 0; b < got.size(); ++b) {
                INFO("block " << b);
                REQUIRE(got[b].d == want[b].d);
                REQUIRE(std::memcmp(got[b].q, want[b].q, 32) == 0);
                for (int j = 0; j < 8; ++j) {
                    const int gs =
                        want[b].q[4 * j] + want[b].q[4 * j + 1] + want[b].q[4 * j + 2] + want[b].q[4 * j + 3];
                    REQUIRE(a.neg8_sums()[b * 8 + j] == -8 * gs);
                    REQUIRE(a.neg128_sums()[b * 8 + j] == -128 * gs);
                    const float d = fp16_to_fp32(want[b].d);
                    REQUIRE(std::memcmp(&a.d_lanes()[b * 8 + j], &d, 4) == 0);
                }
            }
            REQUIRE(reinterpret_cast<uintptr_t>(a.q()) % 64 == 0);
        }
    }
}

TEST_CASE("quantizing a length that is not whole blocks is rejected", "[cpu]") {
    std::vector<float> x(40, 1.0f);
    Q8Activation a;
    try {
        a.quantize(x.data(), 40);
        FAIL("no error");
    } catch (const pi::Error &e) {
        CHECK(e.status() == PI_ERR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("40") != std::string::npos);
    }
    std::vector<BlockQ8_0> blocks(2);
    CHECK_THROWS_AS(quantize_row_q8_0(x.data(), 33, blocks.data()), pi::Error);
}
