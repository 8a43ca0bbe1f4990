// RoPE through a per-position angle table (RopeAngles + rope_rotate) against rope(), which computes the angles per
// pair: bit-identical, since decode and the readable reference must round the same way; and both against a rotation
// written from the definition (double cos/sin of the same float angle), so a shared mistake cannot pass.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/cpu/layer_math.h"

using namespace pi::cpu;

namespace {

std::vector<float> random_head(uint32_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(-3.0f, 3.0f);
    std::vector<float> v(n);
    for (float &x : v) x = d(rng);
    return v;
}

// Pair i of a head: (2i, 2i+1) in Normal style, (i, i + half) in NeoX style.
void pair_index(RopeStyle style, uint32_t i, uint32_t half, uint32_t &a, uint32_t &b) {
    a = style == RopeStyle::Normal ? 2 * i : i;
    b = style == RopeStyle::Normal ? 2 * i + 1 : i + half;
}

}  // namespace

TEST_CASE("rope_rotate with a RopeAngles table gives rope()'s bits", "[rope]") {
    const uint32_t head_dim = 128;
    RopeAngles table;  // one table reused across cases: set() must refill it whenever its key changes
    for (RopeStyle style : {RopeStyle::Normal, RopeStyle::Neox}) {
        for (uint32_t rope_dim : {128u, 64u, 2u}) {  // 64: partial rotary, the rest of the head untouched
            for (float base : {10000.0f, 1000000.0f}) {
                for (uint32_t pos : {0u, 1u, 2u, 17u, 511u, 4095u, 100000u, 2u}) {
                    const std::vector<float> x = random_head(head_dim, pos * 31 + rope_dim);
                    std::vector<float> want = x, got = x;
                    rope(want.data(), rope_dim, pos, base, style);
                    table.set(pos, rope_dim, base);
                    REQUIRE(table.rope_dim() == rope_dim);
                    rope_rotate(got.data(), table, style);
                    INFO("style " << int(style) << " rope_dim " << rope_dim << " base " << base << " pos " << pos);
                    REQUIRE(std::memcmp(want.data(), got.data(), head_dim * sizeof(float)) == 0);

                    // Independent check: each pair rotated by its angle (the float angle both compute, then double
                    // trigonometry); values outside the rotated dims are unchanged.
                    const uint32_t half = rope_dim / 2;
                    std::vector<bool> touched(head_dim, false);
                    for (uint32_t i = 0; i < half; ++i) {
                        const float theta = float(pos) * std::pow(base, -2.0f * float(i) / float(rope_dim));
                        const double c = std::cos(double(theta)), s = std::sin(double(theta));
                        uint32_t a, b;
                        pair_index(style, i, half, a, b);
                        touched[a] = touched[b] = true;
                        const double ea = x[a] * c - x[b] * s, eb = x[a] * s + x[b] * c;
                        REQUIRE(std::fabs(got[a] - ea) <= 1e-5 * (1.0 + std::fabs(ea)));
                        REQUIRE(std::fabs(got[b] - eb) <= 1e-5 * (1.0 + std::fabs(eb)));
                    }
                    for (uint32_t j = 0; j < head_dim; ++j) {
                        if (!touched[j]) REQUIRE(got[j] == x[j]);
                    }
                }
            }
        }
    }
}

TEST_CASE("RopeAngles refills only for a new position, width or base", "[rope]") {
    RopeAngles t;
    t.set(5, 64, 10000.0f);
    const float c5 = t.cos()[1], s5 = t.sin()[1];
    t.set(6, 64, 10000.0f);
    REQUIRE(t.cos()[1] != c5);
    t.set(5, 64, 10000.0f);
    REQUIRE(t.cos()[1] == c5);
    REQUIRE(t.sin()[1] == s5);
    t.set(5, 64, 500000.0f);  // another base: another angle for pair 1
    REQUIRE(t.cos()[1] != c5);
    t.set(5, 32, 10000.0f);  // another width: pair 1's exponent is -2/32, not -2/64
    REQUIRE(t.rope_dim() == 32);
    REQUIRE(t.cos()[1] != c5);
}
