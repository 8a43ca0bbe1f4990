// The CPU predictor s = fc2 . relu(fc1 . h), active = {i : s_i >= threshold}, for every weight type of fc1 and fc2,
// every ISA level and several thread counts, against a double-precision reference computed here.
//
// Tolerances, and why: each dot is within 1e-5 * (sum of |terms|) of the exact one (as the matvec tests hold). The
// hidden layer z is checked against relu(exact fc1 . h) with that bound. The scores are checked against the exact
// product of fc2 with the kernel's own z (read from the scratch), rounded for quantized fc2 by the independently
// restated Q8 rounding: chaining the references instead would let a q code flip on a z value that sits at a
// rounding midpoint, which is no error of the kernel. The active list is checked against a threshold planted in a
// wide gap of the reference scores, so no rounding can move a neuron across it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/predictor.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

constexpr double kTol = 1e-5;

std::vector<float> as_vector(const float *p, size_t n) { return std::vector<float>(p, p + n); }

int status_of(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const pi::Error &e) {
        return e.status();
    }
    return PI_OK;
}

// Checks scratch.hidden against relu(fc1 . h) and the scores against fc2 . (kernel z); returns the reference scores.
std::vector<double> check_scores(const TestMatrix &fc1, const TestMatrix &fc2, const std::vector<float> &h,
                                 const PredictorScratch &scratch, const std::vector<float> &s) {
    const size_t width = fc1.w.n_rows, n_ff = fc2.w.n_rows;
    RefQ8 hq;
    if (weight_type_is_quantized(fc1.w.type)) hq = ref_quantize(h.data(), h.size());
    const std::vector<float> z = as_vector(scratch.hidden.data(), width);
    for (size_t i = 0; i < width; ++i) {
        double abs_sum = 0.0;
        const double want = std::max(0.0, ref_dot(fc1, i, h.data(), &hq, &abs_sum));
        INFO("hidden " << i << " got " << z[i] << " want " << want);
        REQUIRE(z[i] >= 0.0f);
        REQUIRE(std::fabs(z[i] - want) <= kTol * abs_sum + 1e-30);
    }
    RefQ8 zq;
    if (weight_type_is_quantized(fc2.w.type)) zq = ref_quantize(z.data(), width);
    std::vector<double> ref(n_ff);
    for (size_t k = 0; k < n_ff; ++k) {
        double abs_sum = 0.0;
        ref[k] = ref_dot(fc2, k, z.data(), &zq, &abs_sum);
        INFO("score " << k << " got " << s[k] << " want " << ref[k]);
        REQUIRE(std::fabs(s[k] - ref[k]) <= kTol * abs_sum + 1e-30);
    }
    return ref;
}

// A threshold in the middle of the widest gap between neighbouring reference scores around the median.
float planted_threshold(std::vector<double> s) {
    std::sort(s.begin(), s.end());
    size_t best = s.size() / 2;
    for (size_t i = s.size() / 4; i + 1 < s.size() * 3 / 4; ++i) {
        if (s[i + 1] - s[i] > s[best + 1] - s[best]) best = i;
    }
    return static_cast<float>((s[best] + s[best + 1]) / 2);
}

}  // namespace

TEST_CASE("predict matches the double reference for every type pair, level and thread count", "[cpu][predictor]") {
    // width 96 = 3 blocks (odd: single-block tails); n_embd 256; 300 neurons (> 64 KiB of F32 fc2: split rows).
    const size_t n_embd = 256, width = 96, n_ff = 300;
    ThreadPool p2(2), p3(3);
    std::vector<std::pair<WeightType, WeightType>> pairs;
    for (WeightType t : all_types()) pairs.push_back({t, t});
    pairs.push_back({WeightType::F16, WeightType::Q4_0});
    pairs.push_back({WeightType::Q8_0, WeightType::BF16});
    for (const auto &[t1, t2] : pairs) {
        const TestMatrix fc1 = make_matrix(t1, width, n_embd, 11);
        const TestMatrix fc2 = make_matrix(t2, n_ff, width, 12);
        const std::vector<float> h = random_vector(n_embd, 13);
        std::vector<float> first;
        for (IsaLevel level : available_levels()) {
            for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                INFO("fc1 " << weight_type_name(t1) << " fc2 " << weight_type_name(t2) << " "
                            << isa_level_name(level) << " threads " << (pool ? pool->size() : 1));
                PredictorScratch scratch;
                std::vector<float> s(n_ff + 1, 777.0f);
                std::vector<uint32_t> active = {5, 6, 7};  // cleared by predict
                predict(fc1.w, fc2.w, h.data(), 0.0f, active, s.data(), pool, level, scratch);
                REQUIRE(s[n_ff] == 777.0f);
                s.pop_back();
                const std::vector<double> ref = check_scores(fc1, fc2, h, scratch, s);
                // threshold 0: exactly the neurons whose computed score is >= 0, ascending.
                std::vector<uint32_t> want;
                for (uint32_t i = 0; i < n_ff; ++i) {
                    if (s[i] >= 0.0f) want.push_back(i);
                }
                REQUIRE(active == want);
                // Scores do not depend on the thread count.
                if (!pool) first = s;
                REQUIRE(same_bits(first, s));

                // A planted threshold: the list equals the reference's, and is the same without the scores output.
                const float thr = planted_threshold(ref);
                predict(fc1.w, fc2.w, h.data(), thr, active, nullptr, pool, level, scratch);
                want.clear();
                for (uint32_t i = 0; i < n_ff; ++i) {
                    if (ref[i] >= thr) want.push_back(i);
                }
                REQUIRE(!want.empty());
                REQUIRE(want.size() < n_ff);
                REQUIRE(active == want);
            }
            first.clear();
        }
    }
}

TEST_CASE("predict threshold edges: a score equal to the threshold is active, -inf takes every neuron",
          "[cpu][predictor]") {
    const TestMatrix fc1 = make_matrix(WeightType::Q8_0, 64, 128, 21);
    const TestMatrix fc2 = make_matrix(WeightType::F16, 50, 64, 22);
    const std::vector<float> h = random_vector(128, 23);
    PredictorScratch scratch;
    std::vector<float> s(50);
    std::vector<uint32_t> active;
    predict(fc1.w, fc2.w, h.data(), -std::numeric_limits<float>::infinity(), active, s.data(), nullptr,
            active_isa_level(), scratch);
    REQUIRE(active.size() == 50);
    for (uint32_t i = 0; i < 50; ++i) REQUIRE(active[i] == i);

    // The 10th smallest score as the threshold: it is in, the one just below is out.
    std::vector<float> sorted = s;
    std::sort(sorted.begin(), sorted.end());
    const float thr = sorted[10];
    REQUIRE(sorted[9] < thr);  // distinct scores (random weights)
    predict(fc1.w, fc2.w, h.data(), thr, active, nullptr, nullptr, active_isa_level(), scratch);
    REQUIRE(active.size() == 40);
    for (uint32_t i : active) REQUIRE(s[i] >= thr);
    const uint32_t at = static_cast<uint32_t>(std::find(s.begin(), s.end(), thr) - s.begin());
    REQUIRE(std::find(active.begin(), active.end(), at) != active.end());
    // Just above it: that neuron drops out.
    predict(fc1.w, fc2.w, h.data(), std::nextafter(thr, std::numeric_limits<float>::infinity()), active, nullptr,
            nullptr, active_isa_level(), scratch);
    REQUIRE(active.size() == 39);
    REQUIRE(std::find(active.begin(), active.end(), at) == active.end());
    // +inf: none.
    predict(fc1.w, fc2.w, h.data(), std::numeric_limits<float>::infinity(), active, nullptr, nullptr,
            active_isa_level(), scratch);
    REQUIRE(active.empty());
}

// The selection has no branch (scalar: count += s >= threshold; AVX-512: a compare mask): a NaN score must still be
// out, even at -inf.
TEST_CASE("predict: a NaN score is never active, at every level", "[cpu][predictor]") {
    const TestMatrix fc1 = make_matrix(WeightType::F16, 64, 128, 31);  // float fc1: a NaN in h reaches z
    const TestMatrix fc2 = make_matrix(WeightType::F16, 50, 64, 32);
    std::vector<float> h = random_vector(128, 33);
    h[5] = std::numeric_limits<float>::quiet_NaN();
    for (IsaLevel isa : available_levels()) {
        PredictorScratch scratch;
        std::vector<float> s(50);
        std::vector<uint32_t> active{7};
        predict(fc1.w, fc2.w, h.data(), -std::numeric_limits<float>::infinity(), active, s.data(), nullptr, isa,
                scratch);
        for (float v : s) REQUIRE(std::isnan(v));
        REQUIRE(active.empty());
    }
}

TEST_CASE("predict rejects bad arguments before doing any work", "[cpu][predictor]") {
    const TestMatrix fc1 = make_matrix(WeightType::Q4_0, 64, 128, 31);
    const TestMatrix fc2 = make_matrix(WeightType::Q4_0, 40, 64, 32);
    const TestMatrix fc2_wide = make_matrix(WeightType::Q4_0, 40, 96, 33);
    const std::vector<float> h = random_vector(128, 34);
    PredictorScratch scratch;
    std::vector<uint32_t> active = {1, 2};
    std::vector<float> s(40, 3.0f);
    auto run = [&](const WeightMatrix &a, const WeightMatrix &b, const float *hh, float thr) {
        return status_of([&] { predict(a, b, hh, thr, active, s.data(), nullptr, IsaLevel::Scalar, scratch); });
    };
    CHECK(run(fc1.w, fc2_wide.w, h.data(), 0.0f) == PI_ERR_INVALID_ARGUMENT);  // fc2 rows != fc1 outputs
    CHECK(run(fc1.w, fc2.w, nullptr, 0.0f) == PI_ERR_INVALID_ARGUMENT);
    CHECK(run(fc1.w, fc2.w, h.data(), std::numeric_limits<float>::quiet_NaN()) == PI_ERR_INVALID_ARGUMENT);
    WeightMatrix broken = fc1.w;
    broken.n_cols = 100;  // not whole blocks
    CHECK(run(broken, fc2.w, h.data(), 0.0f) == PI_ERR_INVALID_ARGUMENT);
    CHECK(active == std::vector<uint32_t>{1, 2});  // untouched on failure
    for (float v : s) CHECK(v == 3.0f);
    if (best_isa_level() < IsaLevel::Avx512) {
        CHECK(status_of([&] {
                  predict(fc1.w, fc2.w, h.data(), 0.0f, active, nullptr, nullptr, IsaLevel::Avx512, scratch);
              }) == PI_ERR_UNSUPPORTED);
    }
    CHECK(run(fc1.w, fc2.w, h.data(), 0.0f) == PI_OK);
}

namespace {

// fc2 (n_ff x width, float type) transposed into `bytes` (width rows of n_ff, each row padded by `pad` bytes).
WeightMatrix transposed(const TestMatrix &fc2, std::vector<uint8_t> &bytes, size_t pad) {
    const size_t es = weight_row_bytes(fc2.w.type, 1), n_ff = fc2.w.n_rows, width = fc2.w.n_cols;
    const size_t stride = n_ff * es + pad;
    bytes.assign(width * stride, 0);
    for (size_t i = 0; i < n_ff; ++i) {
        for (size_t j = 0; j < width; ++j) std::memcpy(&bytes[j * stride + i * es], fc2.w.row(i) + j * es, es);
    }
    WeightMatrix t = make_weight_matrix(bytes.data(), fc2.w.type, width, n_ff);
    t.row_stride = stride;
    return t;
}

// Overwrites row j of a transposed float matrix with NaN.
void poison_row(WeightMatrix &t, std::vector<uint8_t> &bytes, size_t j) {
    const size_t es = weight_row_bytes(t.type, 1);
    const uint32_t nan32 = 0x7fc00000u;
    const uint16_t nan16 = t.type == WeightType::F16 ? 0x7e00 : 0x7fc0;
    for (size_t i = 0; i < t.n_cols; ++i) {
        uint8_t *p = &bytes[j * t.row_stride + i * es];
        if (es == 4) std::memcpy(p, &nan32, 4);
        else std::memcpy(p, &nan16, 2);
    }
}

}  // namespace

TEST_CASE("predict over fc2 transposed: the reference's scores and active sets, zero hidden units never read, the "
          "same bits at every thread count",
          "[cpu][predictor]") {
    // width 100 (not a multiple of 16: the axpy tails), 700 neurons (above the parallel threshold for F32 and F16).
    const size_t n_embd = 128, width = 100, n_ff = 700;
    ThreadPool p2(2), p3(3);
    for (WeightType t2 : {WeightType::F32, WeightType::F16, WeightType::BF16}) {
        const TestMatrix fc1 = make_matrix(WeightType::F16, width, n_embd, 41);
        const TestMatrix fc2 = make_matrix(t2, n_ff, width, 42);
        std::vector<uint8_t> bytes;
        WeightMatrix fc2_t = transposed(fc2, bytes, /*pad=*/t2 == WeightType::F16 ? 64 : 0);
        const std::vector<float> h = random_vector(n_embd, 43);

        // The row-dot path first: its hidden layer tells which rows the transposed path may skip.
        PredictorScratch rows_scratch;
        std::vector<uint32_t> active;
        predict(fc1.w, fc2.w, h.data(), 0.0f, active, nullptr, nullptr, IsaLevel::Scalar, rows_scratch);
        CHECK(rows_scratch.fc2_rows_read == width);
        size_t nonzero = 0;
        for (size_t j = 0; j < width; ++j) {
            if (rows_scratch.hidden.data()[j] == 0.0f) {
                poison_row(fc2_t, bytes, j);  // must never be read
            } else {
                ++nonzero;
            }
        }
        REQUIRE(nonzero > width / 4);
        REQUIRE(nonzero < width);  // ReLU zeroes some: the skip is exercised

        std::vector<float> first;
        for (IsaLevel level : available_levels()) {
            for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                INFO("fc2 " << weight_type_name(t2) << " " << isa_level_name(level) << " threads "
                            << (pool ? pool->size() : 1));
                PredictorScratch scratch;
                std::vector<float> s(n_ff + 1, 777.0f);
                predict(fc1.w, fc2.w, h.data(), 0.0f, active, s.data(), pool, level, scratch, &fc2_t);
                REQUIRE(s[n_ff] == 777.0f);
                s.pop_back();
                CHECK(scratch.fc2_rows_read == nonzero);
                const std::vector<double> ref = check_scores(fc1, fc2, h, scratch, s);  // no NaN: rows skipped
                if (first.empty()) first = s;
                REQUIRE(same_bits(first, s));  // axpy_rows: one order for every thread count (z is per level)

                const float thr = planted_threshold(ref);
                predict(fc1.w, fc2.w, h.data(), thr, active, nullptr, pool, level, scratch, &fc2_t);
                std::vector<uint32_t> want;
                for (uint32_t i = 0; i < n_ff; ++i) {
                    if (ref[i] >= thr) want.push_back(i);
                }
                REQUIRE(!want.empty());
                REQUIRE(active == want);
            }
            first.clear();
        }
    }
}

TEST_CASE("predict rejects an fc2_t that is not fc2 transposed", "[cpu][predictor]") {
    const TestMatrix fc1 = make_matrix(WeightType::F16, 64, 128, 51);
    const TestMatrix fc2 = make_matrix(WeightType::F16, 40, 64, 52);
    const TestMatrix same_shape = make_matrix(WeightType::F16, 40, 64, 53);  // not transposed
    const TestMatrix as_f32 = make_matrix(WeightType::F32, 64, 40, 54);
    const TestMatrix quantized = make_matrix(WeightType::Q8_0, 64, 64, 55);
    const TestMatrix quantized_t = make_matrix(WeightType::Q8_0, 64, 64, 56);
    const std::vector<float> h = random_vector(128, 57);
    PredictorScratch scratch;
    std::vector<uint32_t> active = {1, 2};
    auto run = [&](const WeightMatrix &f2, const WeightMatrix &t) {
        return status_of([&] { predict(fc1.w, f2, h.data(), 0.0f, active, nullptr, nullptr, IsaLevel::Scalar, scratch, &t); });
    };
    CHECK(run(fc2.w, same_shape.w) == PI_ERR_INVALID_ARGUMENT);
    CHECK(run(fc2.w, as_f32.w) == PI_ERR_INVALID_ARGUMENT);  // another type
    CHECK(run(quantized.w, quantized_t.w) == PI_ERR_INVALID_ARGUMENT);  // quantized fc2 keeps its row dots
    CHECK(active == std::vector<uint32_t>{1, 2});
    std::vector<uint8_t> bytes;
    const WeightMatrix good = transposed(fc2, bytes, 0);
    CHECK(run(fc2.w, good) == PI_OK);
}

// The selection kernel alone (KernelTable::select_at_least), every level against a plain loop: NaN never in, +-inf
// and scores equal to the threshold, lengths around the AVX-512 block of 16, and an output of exactly n entries
// (the AVX-512 form stores whole blocks; the sanitizer build catches a store past the end).
TEST_CASE("select_at_least: the indices of the scores at or above the threshold, in order, at every level",
          "[cpu][predictor]") {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    std::mt19937 rng(41);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (size_t n :
         {size_t(0), size_t(1), size_t(15), size_t(16), size_t(17), size_t(33), size_t(100), size_t(11008)}) {
        std::vector<float> s(n);
        for (size_t i = 0; i < n; ++i) {
            const unsigned kind = rng() % 16;
            s[i] = kind == 0 ? nan : kind == 1 ? inf : kind == 2 ? -inf : kind == 3 ? 0.25f : uniform(rng);
        }
        for (float t : {-inf, -0.5f, 0.0f, 0.25f, 0.9f, inf}) {
            std::vector<uint32_t> expected;
            for (size_t i = 0; i < n; ++i) {
                if (s[i] >= t) expected.push_back(static_cast<uint32_t>(i));
            }
            for (IsaLevel isa : available_levels()) {
                INFO("n = " << n << ", threshold " << t << ", level " << isa_level_name(isa));
                std::vector<uint32_t> out(n);
                const size_t count = pi::cpu::detail::kernels(isa).select_at_least(s.data(), n, t, out.data());
                REQUIRE(count == expected.size());
                out.resize(count);
                REQUIRE(out == expected);
            }
        }
    }
}
