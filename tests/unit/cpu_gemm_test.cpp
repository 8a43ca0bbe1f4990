// Prefill GEMM (oneDNN panels and the blocked fallback) for every weight type against a double reference.
//
// Tolerances, and why:
// - F32 precision (weights converted exactly): |y - ref| <= 1e-5 * sum |terms| per element, binary32 accumulation
//   as for matvec.
// - BF16 precision: X and W rounded to bf16 (relative error <= 2^-9 each, ~2^-9/sqrt(3) on average); the products'
//   errors add up like a random walk, so the relative L2 error of Y is ~sqrt(2/3) * 2^-9 ~ 1.6e-3 for independent
//   random data. Checked <= 5e-3 (and > 1e-5: the rounding really happened). The engine's logits tolerance is 2e-3
//   relative L2, so BF16 prefill is a speed option whose error budget must be checked end to end.
// - The fallback computes Q8_0/Q4_0 with each token's Q8_0-rounded activation: checked against the integer formula.
#include <cmath>
#include <vector>

#include "backends/cpu/gemm.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

struct Problem {
    TestMatrix m;
    std::vector<float> x;  // n_tokens x ldx
    size_t n_tokens, ldx, ldy;
};

Problem make_problem(WeightType t, size_t n_tokens, size_t k, size_t n, uint32_t seed) {
    Problem p{make_matrix(t, n, k, seed), {}, n_tokens, k + 3, n + 5};  // strided X and Y
    p.x = random_vector(n_tokens * p.ldx, seed + 1);
    return p;
}

// ref[t][o] and the per-element sum of |terms|; quantized: the integer formula with each token's Q8 rounding.
void reference(const Problem &p, bool q8_tokens, std::vector<double> &ref, std::vector<double> &abs_sum) {
    const size_t n = p.m.w.n_rows;
    ref.assign(p.n_tokens * n, 0.0);
    abs_sum.assign(p.n_tokens * n, 0.0);
    for (size_t t = 0; t < p.n_tokens; ++t) {
        const float *x = p.x.data() + t * p.ldx;
        RefQ8 xq;
        if (q8_tokens) xq = ref_quantize(x, p.m.w.n_cols);
        for (size_t o = 0; o < n; ++o) {
            if (q8_tokens) {
                ref[t * n + o] = ref_dot(p.m, o, x, &xq, &abs_sum[t * n + o]);
            } else {
                double s = 0.0, a = 0.0;
                for (size_t c = 0; c < p.m.w.n_cols; ++c) {
                    s += p.m.at(o, c) * static_cast<double>(x[c]);
                    a += std::fabs(p.m.at(o, c) * static_cast<double>(x[c]));
                }
                ref[t * n + o] = s;
                abs_sum[t * n + o] = a;
            }
        }
    }
}

std::vector<float> run(Gemm &g, const Problem &p, GemmPrecision prec) {
    std::vector<float> y(p.n_tokens * p.ldy, -3.0f);
    g.multiply(p.m.w, p.x.data(), p.n_tokens, p.ldx, y.data(), p.ldy, prec);
    // Padding columns of Y untouched.
    for (size_t t = 0; t < p.n_tokens; ++t) {
        for (size_t o = p.m.w.n_rows; o < p.ldy; ++o) REQUIRE(y[t * p.ldy + o] == -3.0f);
    }
    return y;
}

void check_close(const Problem &p, const std::vector<float> &y, const std::vector<double> &ref,
                 const std::vector<double> &abs_sum) {
    const size_t n = p.m.w.n_rows;
    for (size_t t = 0; t < p.n_tokens; ++t) {
        for (size_t o = 0; o < n; ++o) {
            INFO("token " << t << " out " << o << " got " << y[t * p.ldy + o] << " want " << ref[t * n + o]);
            REQUIRE(std::fabs(y[t * p.ldy + o] - ref[t * n + o]) <= 1e-5 * abs_sum[t * n + o] + 1e-30);
        }
    }
}

double rel_l2(const Problem &p, const std::vector<float> &y, const std::vector<double> &ref) {
    const size_t n = p.m.w.n_rows;
    std::vector<float> packed(p.n_tokens * n);
    for (size_t t = 0; t < p.n_tokens; ++t) {
        for (size_t o = 0; o < n; ++o) packed[t * n + o] = y[t * p.ldy + o];
    }
    return relative_l2(ref, packed);
}

}  // namespace

TEST_CASE("oneDNN GEMM matches the reference for every weight type", "[cpu]") {
    if (!gemm_onednn_compiled()) {
        WARN("built without oneDNN: skipped");
        return;
    }
    ThreadPool pool(2);
    for (WeightType t : all_types()) {
        for (size_t m : {size_t{1}, size_t{5}, size_t{33}}) {
            DYNAMIC_SECTION(weight_type_name(t) << " tokens " << m) {
                // 600 outputs: two full 256-row panels and a partial one.
                const Problem p = make_problem(t, m, 320, 600, static_cast<uint32_t>(m * 7 + 1));
                std::vector<double> ref, abs_sum;
                reference(p, false, ref, abs_sum);
                Gemm serial(nullptr), parallel(&pool);
                REQUIRE(serial.uses_onednn());
                const std::vector<float> y32 = run(serial, p, GemmPrecision::F32);
                check_close(p, y32, ref, abs_sum);
                REQUIRE(same_bits(y32, run(parallel, p, GemmPrecision::F32)));

                const std::vector<float> y16 = run(parallel, p, GemmPrecision::BF16);
                const double err = rel_l2(p, y16, ref);
                INFO("bf16 relative L2 error " << err);
                CHECK(err <= 5e-3);
                CHECK(err > 1e-5);
                REQUIRE(same_bits(y16, run(serial, p, GemmPrecision::BF16)));
            }
        }
    }
}

TEST_CASE("the blocked fallback GEMM matches the reference and the decode rounding", "[cpu]") {
    ThreadPool pool(3);
    for (IsaLevel level : available_levels()) {
        for (WeightType t : all_types()) {
            DYNAMIC_SECTION(isa_level_name(level) << " " << weight_type_name(t)) {
                const Problem p = make_problem(t, 6, 96, 150, 12);
                std::vector<double> ref, abs_sum;
                reference(p, weight_type_is_quantized(t), ref, abs_sum);
                GemmOptions opt;
                opt.use_onednn = false;
                opt.isa = level;
                Gemm serial(nullptr, opt), parallel(&pool, opt);
                REQUIRE_FALSE(serial.uses_onednn());
                const std::vector<float> y = run(serial, p, GemmPrecision::F32);
                check_close(p, y, ref, abs_sum);
                REQUIRE(same_bits(y, run(parallel, p, GemmPrecision::F32)));
                // A BF16 request is computed in f32 by the fallback.
                REQUIRE(same_bits(y, run(parallel, p, GemmPrecision::BF16)));
            }
        }
    }
}

TEST_CASE("converted panels can be cached and give the same results", "[cpu]") {
    if (!gemm_onednn_compiled()) {
        WARN("built without oneDNN: skipped");
        return;
    }
    ThreadPool pool(2);
    for (WeightType t : all_types()) {
        const Problem p = make_problem(t, 4, 128, 300, 31);
        Gemm plain(&pool);
        GemmOptions opt;
        opt.cache_bytes = 64u << 20;
        Gemm cached(&pool, opt);
        for (GemmPrecision prec : {GemmPrecision::F32, GemmPrecision::BF16}) {
            const std::vector<float> want = run(plain, p, prec);
            REQUIRE(same_bits(want, run(cached, p, prec)));  // fills the cache
            REQUIRE(same_bits(want, run(cached, p, prec)));  // uses it
        }
        // F32 weights at F32 precision and BF16 weights at BF16 precision are used in place, never cached.
        const size_t per_matrix = 300 * 128;
        size_t want_bytes = 0;
        if (t != WeightType::F32) want_bytes += per_matrix * 4;
        if (t != WeightType::BF16) want_bytes += per_matrix * 2;
        CHECK(cached.cached_bytes() == want_bytes);
    }
    // A budget too small caches nothing and still computes.
    const Problem p = make_problem(WeightType::Q4_0, 2, 64, 100, 5);
    GemmOptions small;
    small.cache_bytes = 1000;
    Gemm g(&pool, small);
    Gemm plain(&pool);
    REQUIRE(same_bits(run(plain, p, GemmPrecision::F32), run(g, p, GemmPrecision::F32)));
    CHECK(g.cached_bytes() == 0);
}

TEST_CASE("GEMM rejects bad shapes", "[cpu]") {
    const Problem p = make_problem(WeightType::F16, 2, 64, 10, 1);
    Gemm g(nullptr);
    std::vector<float> y(100);
    auto status_of = [](auto &&fn) {
        try {
            fn();
        } catch (const pi::Error &e) {
            return e.status();
        }
        return PI_OK;
    };
    CHECK(status_of([&] { g.multiply(p.m.w, p.x.data(), 2, 63, y.data(), 10); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { g.multiply(p.m.w, p.x.data(), 2, 64, y.data(), 9); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { g.multiply(p.m.w, nullptr, 2, 64, y.data(), 10); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { g.multiply(p.m.w, p.x.data(), 0, 64, nullptr, 10); }) == PI_OK);
}
