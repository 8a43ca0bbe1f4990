// The sampler: each filter on its own, the distribution it draws from, seeding, and broken logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include "runtime/sampler.h"

using pi::Sampler;
using pi::SamplingParams;
using pi::Token;

namespace {

SamplingParams plain(float temperature) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 0;
    return p;
}

std::map<Token, int> histogram(Sampler &s, const std::vector<float> &logits, int draws,
                               const std::vector<Token> &history = {}) {
    std::map<Token, int> h;
    for (int i = 0; i < draws; ++i) ++h[s.sample(logits.data(), logits.size(), history)];
    return h;
}

}  // namespace

TEST_CASE("greedy takes the argmax, the lowest id on ties", "[sampler]") {
    Sampler s(plain(0.0f));
    CHECK(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 2.0f}.data(), 4, {}) == 1);
    CHECK(s.sample(std::vector<float>{-5.0f, -3.0f, -4.0f}.data(), 3, {}) == 1);
}

TEST_CASE("temperature 1 draws from the softmax", "[sampler]") {
    const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = k / 10
    Sampler s(plain(1.0f));
    const int n = 40000;
    const auto h = histogram(s, logits, n);
    for (int k = 0; k < 4; ++k) {
        const double p = (k + 1) / 10.0, sd = std::sqrt(p * (1 - p) / n);
        const double freq = h.count(k) ? h.at(k) / double(n) : 0.0;
        INFO("token " << k << ": " << freq << " vs " << p);
        CHECK(std::abs(freq - p) < 5 * sd);
    }
}

TEST_CASE("a higher temperature flattens, a lower one sharpens", "[sampler]") {
    const std::vector<float> logits = {0.0f, 1.0f};
    auto share_of_best = [&](float t) {
        Sampler s(plain(t));
        return histogram(s, logits, 20000)[1] / 20000.0;
    };
    const double cold = share_of_best(0.25f), warm = share_of_best(1.0f), hot = share_of_best(4.0f);
    CHECK(cold > 0.95);                                        // 1 / (1 + e^-4) = 0.982
    CHECK(warm == Approx(1.0 / (1.0 + std::exp(-1.0))).margin(0.02));
    CHECK(hot < 0.6);                                          // 1 / (1 + e^-0.25) = 0.562
}

TEST_CASE("top-k keeps only the k best", "[sampler]") {
    SamplingParams p = plain(5.0f);
    p.top_k = 2;
    Sampler s(p);
    const auto h = histogram(s, {1.0f, 3.0f, 2.9f, 0.5f, 2.0f}, 5000);
    CHECK(h.size() == 2);
    CHECK(h.count(1) == 1);
    CHECK(h.count(2) == 1);
}

TEST_CASE("top-p keeps the smallest prefix reaching the mass", "[sampler]") {
    // p = 0.5, 0.3, 0.2: top_p 0.7 keeps the first two, top_p 0.5 only the first.
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    SamplingParams p = plain(1.0f);
    p.top_p = 0.7f;
    Sampler two(p);
    const auto h = histogram(two, logits, 5000);
    CHECK(h.size() == 2);
    CHECK(h.count(2) == 0);
    p.top_p = 0.5f;
    Sampler one(p);
    CHECK(histogram(one, logits, 2000).size() == 1);
}

TEST_CASE("min-p drops tokens below a fraction of the best probability", "[sampler]") {
    // p proportional to 10, 6, 4, 1: min_p 0.5 keeps 10 and 6 only.
    const std::vector<float> logits = {std::log(10.0f), std::log(6.0f), std::log(4.0f), std::log(1.0f)};
    SamplingParams p = plain(1.0f);
    p.min_p = 0.5f;
    Sampler s(p);
    const auto h = histogram(s, logits, 5000);
    CHECK(h.size() == 2);
    CHECK(h.count(0) == 1);
    CHECK(h.count(1) == 1);
}

TEST_CASE("the repetition penalty divides positive and multiplies negative logits of recent tokens", "[sampler]") {
    SamplingParams p = plain(0.0f);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    Sampler s(p);
    // Token 0 (logit 3) was seen: 3 / 2 = 1.5 < 2, so token 1 wins.
    CHECK(s.sample(std::vector<float>{3.0f, 2.0f}.data(), 2, {0}) == 1);
    // Only the last 2 tokens count: token 0 three back is not penalized.
    CHECK(s.sample(std::vector<float>{3.0f, 2.0f}.data(), 2, {0, 1, 1}) == 0);
    // Negative logits get more negative: -1 * 2 = -2 < -1.5.
    CHECK(s.sample(std::vector<float>{-1.0f, -1.5f}.data(), 2, {0}) == 1);
    // A token repeated in the window is penalized once.
    CHECK(s.sample(std::vector<float>{3.0f, 1.4f}.data(), 2, {0, 0}) == 0);  // once: 1.5 > 1.4; twice would be 0.75
}

TEST_CASE("the same seed gives the same draws; reseeding restarts them", "[sampler]") {
    const std::vector<float> logits(50, 0.0f);
    SamplingParams p = plain(1.0f);
    p.seed = 9;
    Sampler a(p), b(p);
    std::vector<Token> first;
    for (int i = 0; i < 100; ++i) {
        first.push_back(a.sample(logits.data(), logits.size(), {}));
        CHECK(b.sample(logits.data(), logits.size(), {}) == first.back());
    }
    a.reseed();
    for (int i = 0; i < 100; ++i) CHECK(a.sample(logits.data(), logits.size(), {}) == first[size_t(i)]);
    p.seed = 10;
    Sampler c(p);
    std::vector<Token> other;
    for (int i = 0; i < 100; ++i) other.push_back(c.sample(logits.data(), logits.size(), {}));
    CHECK(other != first);
}

TEST_CASE("NaN logits never win and never break the sampler", "[sampler]") {
    const float nan = std::nanf("");
    for (float t : {0.0f, 1.0f}) {
        Sampler s(plain(t));
        for (int i = 0; i < 200; ++i) CHECK(s.sample(std::vector<float>{nan, 1.0f, nan, 0.5f}.data(), 4, {}) != 0);
        CHECK(s.sample(std::vector<float>{nan, nan}.data(), 2, {}) == 0);  // nothing sensible: the first id
    }
}

TEST_CASE("bad sampling settings are named", "[sampler]") {
    SamplingParams p = plain(1.0f);
    p.top_p = 0.0f;
    CHECK_THROWS_WITH(p.validate("f"), Catch::Matchers::Contains("top_p"));
    p = plain(-1.0f);
    CHECK_THROWS_WITH(p.validate("f"), Catch::Matchers::Contains("temperature"));
}

TEST_CASE("greedy without a penalty (one pass) chooses as the general path does", "[sampler]") {
    // The general path is reached with a penalty whose window sees no history: it changes no logit.
    SamplingParams fast = plain(0.0f), general = plain(0.0f);
    general.repeat_penalty = 1.5f;
    general.repeat_last_n = 64;
    Sampler a(fast), b(general);
    const float inf = INFINITY, nan = NAN;
    const std::vector<std::vector<float>> cases = {
        {nan, 1.0f, 3.0f, 3.0f, -inf},        // NaN first, a tie
        {-inf, -inf, -inf},                   // nothing finite: the lowest id
        {nan, nan},                           // nothing but NaN
        {1.0f, inf, 2.0f, inf},               // +inf ties
        {-0.0f, 0.0f, -1.0f},                 // signed zeros compare equal: the lower id
    };
    for (const auto &logits : cases) {
        CHECK(a.sample(logits.data(), logits.size(), {}) == b.sample(logits.data(), logits.size(), {}));
    }
    // Random lengths (whole blocks of sixteen and tails) of values that tie, NaNs, infinities and signed zeros.
    uint32_t seed = 12345;
    const auto next = [&seed] { return seed = seed * 1664525u + 1013904223u, seed >> 8; };
    const float pool[] = {nan, -inf, inf, -0.0f, 0.0f, 1.0f, 2.0f, -3.0f, 2.5f};
    for (int trial = 0; trial < 2000; ++trial) {
        std::vector<float> logits(1 + next() % 70);
        for (float &v : logits) v = pool[next() % (trial % 3 == 0 ? 9 : 3)];  // a third from all, the rest non-finite
        INFO("trial " << trial);
        CHECK(a.sample(logits.data(), logits.size(), {}) == b.sample(logits.data(), logits.size(), {}));
    }
    std::vector<float> many(32000);
    for (size_t i = 0; i < many.size(); ++i) many[i] = std::sin(float(i) * 0.37f) * 7.0f;
    many[31999] = 7.5f;
    CHECK(a.sample(many.data(), many.size(), {}) == 31999);
    CHECK(b.sample(many.data(), many.size(), {}) == 31999);
}
