// Number formats: fp16 / bf16 conversions (scalar, and the SIMD row conversions of every level) against decoders
// and roundings written from the format definitions.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/numeric.h"
#include "backends/cpu/row_convert.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

uint32_t bits(float f) { return float_bits(f); }

// Floats that exercise every rounding path: zeros, subnormals, the fp16 subnormal / normal / overflow edges, exact
// ties, inf, NaN, plus random values over many binades.
std::vector<float> edge_floats() {
    std::vector<float> v = {0.0f,
                            -0.0f,
                            1.0f,
                            -1.0f,
                            65504.0f,
                            65519.99f,
                            65520.0f,
                            -65520.0f,
                            1e9f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::ldexp(1.0f, -14),
                            std::ldexp(1.0f, -15),
                            std::ldexp(1.0f, -24),
                            std::ldexp(1.0f, -25),
                            std::ldexp(1.5f, -25),
                            std::ldexp(1.0f, -26),
                            std::ldexp(3.0f, -25),  // exactly halfway between 2^-24 and 2^-23: tie to even (2^-23)
                            std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max()};
    // Exact fp16 ties: 1 + (2k+1) * 2^-11 lies halfway between two halves.
    for (int k = 0; k < 8; ++k) v.push_back(1.0f + static_cast<float>(2 * k + 1) * std::ldexp(1.0f, -11));
    // Exact bf16 ties: 1 + (2k+1) * 2^-8.
    for (int k = 0; k < 8; ++k) v.push_back(1.0f + static_cast<float>(2 * k + 1) * std::ldexp(1.0f, -8));
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> expo(-30, 20);
    std::uniform_real_distribution<float> mant(-2.0f, 2.0f);
    for (int i = 0; i < 20000; ++i) v.push_back(std::ldexp(mant(rng), expo(rng)));
    // Random bit patterns (subnormal floats included), finite only.
    for (int i = 0; i < 20000; ++i) {
        const float f = bits_float(static_cast<uint32_t>(rng()));
        if (std::isfinite(f)) v.push_back(f);
    }
    return v;
}

}  // namespace

TEST_CASE("fp16 -> fp32 is exact for all 65536 codes", "[cpu]") {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        const double want = half_value(static_cast<uint16_t>(h));
        if (std::isnan(want)) {
            REQUIRE(std::isnan(f));
            REQUIRE(std::signbit(f) == ((h & 0x8000) != 0));
            REQUIRE(((bits(f) >> 13) & 0x3ff) == (h & 0x3ff));  // payload kept
        } else {
            REQUIRE(static_cast<double>(f) == want);
            REQUIRE(std::signbit(f) == std::signbit(want));
        }
    }
}

TEST_CASE("fp32 -> fp16 rounds to nearest even, overflows to inf, keeps subnormals", "[cpu]") {
    for (float f : edge_floats()) {
        INFO("f = " << f << " bits " << std::hex << bits(f));
        REQUIRE(fp32_to_fp16(f) == ref_fp16(f));
    }
    CHECK(fp32_to_fp16(std::ldexp(3.0f, -25)) == 0x0002);  // tie 1.5 * 2^-24 -> even (2 * 2^-24)
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);  // tie 0.5 * 2^-24 -> even (0)
    CHECK(fp32_to_fp16(65520.0f) == 0x7c00);
    CHECK(fp32_to_fp16(65519.99f) == 0x7bff);
    const uint16_t nan = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
    CHECK((nan & 0x7c00) == 0x7c00);
    CHECK((nan & 0x03ff) != 0);
    CHECK((fp32_to_fp16(-std::numeric_limits<float>::quiet_NaN()) & 0x8000) == 0x8000);
    // A signalling NaN whose payload sits only in the dropped bits must stay a NaN, not become inf.
    CHECK((fp32_to_fp16(bits_float(0x7f800001u)) & 0x03ff) != 0);
    // Every half survives the round trip.
    for (uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaNs: checked above
        REQUIRE(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))) == h);
    }
}

TEST_CASE("bf16 conversions: exact widening, round-to-nearest-even narrowing", "[cpu]") {
    for (uint32_t b = 0; b < 65536; ++b) {
        const double want = bf16_value(static_cast<uint16_t>(b));
        const float f = bf16_to_fp32(static_cast<uint16_t>(b));
        if (std::isnan(want))
            REQUIRE(std::isnan(f));
        else
            REQUIRE(static_cast<double>(f) == want);
    }
    for (float f : edge_floats()) {
        INFO("f = " << f << " bits " << std::hex << bits(f));
        REQUIRE(fp32_to_bf16(f) == ref_bf16(f));
    }
    CHECK(fp32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds up to inf
    CHECK(fp32_to_bf16(std::numeric_limits<float>::denorm_min()) == 0x0000);
    CHECK(fp32_to_bf16(bits_float(0x00018000u)) == 0x0002);      // subnormal tie -> even, not flushed
    const uint16_t nan = fp32_to_bf16(bits_float(0x7f800001u));  // payload only in the dropped half
    CHECK((nan & 0x7f80) == 0x7f80);
    CHECK((nan & 0x007f) != 0);
}

TEST_CASE("SIMD row conversions equal the scalar conversions bit for bit", "[cpu]") {
    // All 65536 fp16 and bf16 codes as one row.
    std::vector<uint16_t> codes(65536);
    for (uint32_t i = 0; i < 65536; ++i) codes[i] = static_cast<uint16_t>(i);
    const std::vector<float> floats = edge_floats();
    for (IsaLevel level : available_levels()) {
        DYNAMIC_SECTION(isa_level_name(level)) {
            for (WeightType t : {WeightType::F16, WeightType::BF16}) {
                const WeightMatrix w = make_weight_matrix(codes.data(), t, 1, codes.size());
                std::vector<float> out(codes.size());
                dequantize_rows(w, 0, 1, out.data(), out.size(), level);
                for (uint32_t i = 0; i < 65536; ++i) {
                    const float want = t == WeightType::F16 ? fp16_to_fp32(codes[i]) : bf16_to_fp32(codes[i]);
                    INFO(weight_type_name(t) << " code " << std::hex << i);
                    if (std::isnan(want)) {
                        REQUIRE(std::isnan(out[i]));
                        REQUIRE(std::signbit(out[i]) == std::signbit(want));
                    } else {
                        REQUIRE(bits(out[i]) == bits(want));
                    }
                }
            }
            // f32 -> bf16 and f32 -> fp16 over the edge values plus NaNs, in odd lengths (masked / scalar tails).
            std::vector<float> in = floats;
            in.push_back(std::numeric_limits<float>::quiet_NaN());
            in.push_back(bits_float(0xff800001u));
            for (size_t len : {in.size(), size_t{1}, size_t{15}, size_t{17}, size_t{33}}) {
                std::vector<uint16_t> got(len + 1, 0xabcd);
                convert_f32_to_bf16(in.data(), len, got.data(), level);
                for (size_t i = 0; i < len; ++i) {
                    INFO("i = " << i << " bits " << std::hex << bits(in[i]));
                    REQUIRE(got[i] == fp32_to_bf16(in[i]));
                }
                REQUIRE(got[len] == 0xabcd);  // nothing written past the end
                std::vector<uint16_t> h(len + 1, 0xabcd);
                convert_f32_to_f16(in.data(), len, h.data(), level);
                for (size_t i = 0; i < len; ++i) {
                    INFO("fp16: i = " << i << " bits " << std::hex << bits(in[i]));
                    REQUIRE(h[i] == fp32_to_fp16(in[i]));
                }
                REQUIRE(h[len] == 0xabcd);
            }
        }
    }
}

TEST_CASE("quantized rows dequantize exactly; odd lengths and strides are honoured", "[cpu]") {
    for (IsaLevel level : available_levels()) {
        for (WeightType t : all_types()) {
            for (size_t cols : {size_t{32}, size_t{96}, size_t{544}, size_t{57}}) {
                if (weight_type_is_quantized(t) && cols % 32 != 0) continue;
                const TestMatrix m = make_matrix(t, 5, cols, 11, /*row_pad=*/6);
                std::vector<float> out(5 * (cols + 3), -1.0f);
                dequantize_rows(m.w, 1, 5, out.data(), cols + 3, level);
                for (size_t r = 1; r < 5; ++r) {
                    for (size_t c = 0; c < cols; ++c) {
                        INFO(isa_level_name(level) << " " << weight_type_name(t) << " r " << r << " c " << c);
                        REQUIRE(static_cast<double>(out[(r - 1) * (cols + 3) + c]) == m.at(r, c));
                    }
                    for (size_t c = cols; c < cols + 3; ++c) REQUIRE(out[(r - 1) * (cols + 3) + c] == -1.0f);
                }
                // Straight to bf16 (the GEMM's panel conversion): fp32_to_bf16 of the exact values, same bits.
                std::vector<uint16_t> b16(5 * (cols + 1), 0xabcd);
                pi::cpu::detail::kernels(level).rows_to_bf16(m.w, 1, 5, b16.data(), cols + 1);
                for (size_t r = 1; r < 5; ++r) {
                    for (size_t c = 0; c < cols; ++c) {
                        INFO(isa_level_name(level) << " " << weight_type_name(t) << " bf16 r " << r << " c " << c);
                        REQUIRE(b16[(r - 1) * (cols + 1) + c] == fp32_to_bf16(static_cast<float>(m.at(r, c))));
                    }
                    REQUIRE(b16[(r - 1) * (cols + 1) + cols] == 0xabcd);
                }
            }
        }
    }
}

TEST_CASE("weight row sizes follow ggml and reject partial blocks", "[cpu]") {
    CHECK(weight_row_bytes(WeightType::F32, 7) == 28);
    CHECK(weight_row_bytes(WeightType::F16, 7) == 14);
    CHECK(weight_row_bytes(WeightType::BF16, 7) == 14);
    CHECK(weight_row_bytes(WeightType::Q8_0, 64) == 68);
    CHECK(weight_row_bytes(WeightType::Q4_0, 64) == 36);
    CHECK_THROWS_AS(weight_row_bytes(WeightType::Q4_0, 48), pi::Error);
    CHECK_THROWS_AS(weight_row_bytes(static_cast<WeightType>(3), 32), pi::Error);
    CHECK_FALSE(weight_type_valid(static_cast<WeightType>(12)));
    WeightMatrix w = make_weight_matrix(nullptr, WeightType::F32, 2, 4);
    CHECK_THROWS_AS(check_weight_matrix(w, "test"), pi::Error);
    float data[8] = {};
    w = make_weight_matrix(data, WeightType::F32, 2, 4);
    w.row_stride = 8;
    CHECK_THROWS_AS(check_weight_matrix(w, "test"), pi::Error);
}

TEST_CASE("PI_CPU_ISA lowers the active level and never raises it", "[cpu]") {
    const char *old = std::getenv("PI_CPU_ISA");
    const std::string saved = old ? old : "";
    setenv("PI_CPU_ISA", "scalar", 1);
    CHECK(active_isa_level() == IsaLevel::Scalar);
    setenv("PI_CPU_ISA", "avx512", 1);
    CHECK(active_isa_level() == best_isa_level());
    if (best_isa_level() >= IsaLevel::Avx2) {
        setenv("PI_CPU_ISA", "avx2", 1);
        CHECK(active_isa_level() == IsaLevel::Avx2);
    }
    if (old)
        setenv("PI_CPU_ISA", saved.c_str(), 1);
    else
        unsetenv("PI_CPU_ISA");
}
