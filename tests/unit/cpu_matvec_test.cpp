// Matrix-vector kernels (dense rows, row lists, axpy rows) for every weight type on every ISA level this machine
// has, against double-precision references computed here from the exact weight values.
//
// Tolerances, and why:
// - F32/F16/BF16 weights: |y - ref| <= 1e-5 * sum |w_i x_i|. The weights are exact in binary32, so the only error is
//   binary32 accumulation: with >= 4 partial sums over at most ~1100 terms it is bounded by ~300 * 2^-24 * sum|terms|
//   (2e-5) in the worst case and in practice (random signs) by ~sqrt(300) * 2^-24 (1e-6); 1e-5 catches any wrong or
//   dropped term (each term is ~1/n of the sum, n <= 1100, i.e. >= 1e-3 of it).
// - Q8_0/Q4_0 weights: against the integer formula (per block the exact integer dot of the codes with the same
//   Q8_0-rounded activation, times d_w * d_x) with the same 1e-5 * sum |block terms|: the integer part must be exact,
//   only the float sum of block terms may round.
// - Q8_0/Q4_0 against the f32 activation: relative L2 error of the whole output <= 1e-2 (8-bit activation rounding,
//   relative error ~ 1/(2 * 127 * sqrt(3)) per value).
// - axpy_rows: every level and every thread count must give the same bits (the kernels promise it), and the result
//   is within 1e-5 * sum |terms| of the double reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/q8_activation.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

constexpr double kTol = 1e-5;

struct Prepared {
    std::vector<float> x;
    Q8Activation q8;
    RefQ8 ref_q8;
    MatvecInput in;
};

void prepare(Prepared &p, const TestMatrix &m, uint32_t seed, IsaLevel level) {
    p.x = random_vector(m.w.n_cols, seed);
    p.in = MatvecInput{};
    p.in.f32 = p.x.data();
    p.in.n = p.x.size();
    if (weight_type_is_quantized(m.w.type)) {
        p.q8.quantize(p.x.data(), p.x.size(), level);
        p.ref_q8 = ref_quantize(p.x.data(), p.x.size());
        p.in.q8 = &p.q8;
    }
}

void check_row(const TestMatrix &m, size_t r, const Prepared &p, float got) {
    double abs_sum = 0.0;
    const double want = ref_dot(m, r, p.x.data(), weight_type_is_quantized(m.w.type) ? &p.ref_q8 : nullptr, &abs_sum);
    INFO(weight_type_name(m.w.type) << " " << m.w.n_rows << "x" << m.w.n_cols << " row " << r << " got " << got
                                    << " want " << want);
    REQUIRE(std::fabs(got - want) <= kTol * abs_sum + 1e-30);
}

// Shapes: odd row counts (not a multiple of SIMD width or thread count), columns with every tail length for the
// float types, and for the quantized ones 1, 2, 3, 4 and 5 blocks per row (odd counts take the single-block tail).
std::vector<size_t> column_counts(WeightType t) {
    if (weight_type_is_quantized(t)) return {32, 64, 96, 128, 160, 1088};
    return {1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000};
}

}  // namespace

TEST_CASE("matvec matches the reference for every type, level and shape", "[cpu]") {
    for (IsaLevel level : available_levels()) {
        for (WeightType t : all_types()) {
            for (size_t cols : column_counts(t)) {
                DYNAMIC_SECTION(isa_level_name(level) << " " << weight_type_name(t) << " cols " << cols) {
                    const size_t rows = 13;
                    const TestMatrix m = make_matrix(t, rows, cols, static_cast<uint32_t>(cols * 31 + 1),
                                                     /*row_pad=*/cols % 2 ? 2 : 0);
                    Prepared p;
                    prepare(p, m, 99, level);
                    std::vector<float> y(rows + 1, -7.0f);
                    matvec(m.w, p.in, 2, 11, y.data(), nullptr, level);
                    for (size_t r = 2; r < 11; ++r) check_row(m, r, p, y[r - 2]);
                    REQUIRE(y[9] == -7.0f);  // only r1 - r0 outputs written
                }
            }
        }
    }
}

TEST_CASE("quantized matvec is within 1e-2 of the product with the f32 activation", "[cpu]") {
    for (IsaLevel level : available_levels()) {
        for (WeightType t : {WeightType::Q8_0, WeightType::Q4_0}) {
            const TestMatrix m = make_matrix(t, 64, 1024, 5);
            Prepared p;
            prepare(p, m, 6, level);
            std::vector<float> y(64);
            matvec(m.w, p.in, 0, 64, y.data(), nullptr, level);
            std::vector<double> ref(64);
            for (size_t r = 0; r < 64; ++r) {
                for (size_t c = 0; c < 1024; ++c) ref[r] += m.at(r, c) * static_cast<double>(p.x[c]);
            }
            const double err = relative_l2(ref, y);
            INFO(isa_level_name(level) << " " << weight_type_name(t) << " relative L2 error " << err);
            CHECK(err <= 1e-2);
            CHECK(err > 0.0);  // the activation really was rounded
        }
    }
}

#if defined(PI_CPU_X86_KERNELS)
TEST_CASE("AVX-512 int8 dots give the same results with and without VNNI", "[cpu]") {
    if (best_isa_level() < IsaLevel::Avx512) {
        WARN("no AVX-512 on this CPU: skipped");
        return;
    }
    for (WeightType t : {WeightType::Q8_0, WeightType::Q4_0}) {
        for (size_t cols : {size_t{32}, size_t{96}, size_t{128}, size_t{4096}}) {
            const TestMatrix m = make_matrix(t, 9, cols, 77);
            Prepared p;
            prepare(p, m, 78, IsaLevel::Avx512);
            std::vector<float> a(9), b(9);
            detail::avx512_kernels(false).dot_rows(m.w, nullptr, &p.q8, nullptr, 0, 9, a.data());
            for (size_t r = 0; r < 9; ++r) check_row(m, r, p, a[r]);
            if (cpu_features().avx512_vnni) {
                detail::avx512_kernels(true).dot_rows(m.w, nullptr, &p.q8, nullptr, 0, 9, b.data());
                // Same integer lanes, same float operations: identical bits.
                REQUIRE(same_bits(a, b));
            }
        }
    }
}
#endif

TEST_CASE("matvec results do not depend on the thread count or on which rows share a call", "[cpu]") {
    ThreadPool p2(2), p3(3), p4(4);
    for (IsaLevel level : available_levels()) {
        for (WeightType t : all_types()) {
            DYNAMIC_SECTION(isa_level_name(level) << " " << weight_type_name(t)) {
                // Large enough (> 64 KiB of weights) that the pools really split the rows.
                const size_t rows = 301, cols = 544;
                const TestMatrix m = make_matrix(t, rows, cols, 4);
                Prepared p;
                prepare(p, m, 8, level);
                std::vector<float> y1(rows), y2(rows), y3(rows), y4(rows);
                matvec(m.w, p.in, 0, rows, y1.data(), nullptr, level);
                matvec(m.w, p.in, 0, rows, y2.data(), &p2, level);
                matvec(m.w, p.in, 0, rows, y3.data(), &p3, level);
                matvec(m.w, p.in, 0, rows, y4.data(), &p4, level);
                REQUIRE(same_bits(y1, y2));
                REQUIRE(same_bits(y1, y3));
                REQUIRE(same_bits(y1, y4));
                for (size_t r = 0; r < rows; r += 37) check_row(m, r, p, y1[r]);

                // A shuffled row list with duplicates gives each row's value from the range call, bit for bit.
                std::vector<uint32_t> idx;
                for (uint32_t r = 0; r < rows; r += 3) idx.push_back(r);
                idx.push_back(5);
                idx.push_back(5);
                idx.push_back(static_cast<uint32_t>(rows - 1));
                std::reverse(idx.begin(), idx.end());
                std::swap(idx[3], idx[40]);
                std::vector<float> z(idx.size()), z3(idx.size());
                matvec_rows(m.w, p.in, idx.data(), idx.size(), z.data(), nullptr, level);
                matvec_rows(m.w, p.in, idx.data(), idx.size(), z3.data(), &p3, level);
                REQUIRE(same_bits(z, z3));
                for (size_t i = 0; i < idx.size(); ++i) REQUIRE(float_bits(z[i]) == float_bits(y1[idx[i]]));
            }
        }
    }
}

TEST_CASE("matvec_batch gives each product exactly what matvec gives", "[cpu]") {
    ThreadPool p2(2), p3(3);
    for (IsaLevel level : available_levels()) {
        for (WeightType t : all_types()) {
            DYNAMIC_SECTION(isa_level_name(level) << " " << weight_type_name(t)) {
                // Three matrices of different heights sharing one x, as the query/key/value projections do.
                const size_t cols = 512;
                const TestMatrix a = make_matrix(t, 300, cols, 11), b = make_matrix(t, 77, cols, 12),
                                 c = make_matrix(t, 1, cols, 13);
                Prepared p;
                prepare(p, a, 9, level);
                std::vector<float> want_a(300), want_b(77), want_c(1);
                matvec(a.w, p.in, 0, 300, want_a.data(), nullptr, level);
                matvec(b.w, p.in, 0, 77, want_b.data(), nullptr, level);
                matvec(c.w, p.in, 0, 1, want_c.data(), nullptr, level);
                for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                    std::vector<float> ya(300), yb(77), yc(1);
                    MatvecJob jobs[3] = {{&a.w, p.in, ya.data()}, {&b.w, p.in, yb.data()}, {&c.w, p.in, yc.data()}};
                    matvec_batch(jobs, 3, pool, level);
                    REQUIRE(same_bits(ya, want_a));
                    REQUIRE(same_bits(yb, want_b));
                    REQUIRE(same_bits(yc, want_c));
                }
                MatvecJob bad[1] = {{&a.w, MatvecInput{}, want_a.data()}};
                REQUIRE_THROWS_AS(matvec_batch(bad, 1, &p2, level), pi::Error);
            }
        }
    }
}

TEST_CASE("axpy_rows matches the reference and is bit-identical across levels and thread counts", "[cpu]") {
    ThreadPool p2(2), p3(3);
    for (WeightType t : all_types()) {
        for (size_t cols : {size_t{64}, size_t{96}, size_t{4096}, size_t{4160}}) {
            if (!weight_type_is_quantized(t) && cols == 96) continue;
            DYNAMIC_SECTION(weight_type_name(t) << " n_embd " << cols) {
                const size_t neurons = 200;
                const TestMatrix m = make_matrix(t, neurons, cols, static_cast<uint32_t>(cols + 3));
                // Active list: unsorted, one duplicate, a few exact zeros (ReLU) of both signs.
                // Enough of them (> 64 KiB of rows) that the pools really split the columns.
                std::vector<uint32_t> idx = {17, 3, 150, 4, 199, 0, 88, 3, 42, 120, 121, 122, 123, 7, 60};
                for (uint32_t i = 1; i < neurons; i += 2) idx.push_back(i);
                std::vector<float> a = random_vector(idx.size(), 21);
                a[2] = 0.0f;
                a[9] = -0.0f;
                const std::vector<float> y0 = random_vector(cols, 22);
                std::vector<double> ref(cols), abs_sum(cols);
                for (size_t c = 0; c < cols; ++c) {
                    ref[c] = y0[c];
                    abs_sum[c] = std::fabs(y0[c]);
                    for (size_t i = 0; i < idx.size(); ++i) {
                        ref[c] += static_cast<double>(a[i]) * m.at(idx[i], c);
                        abs_sum[c] += std::fabs(static_cast<double>(a[i]) * m.at(idx[i], c));
                    }
                }
                std::vector<float> first;
                for (IsaLevel level : available_levels()) {
                    for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                        std::vector<float> y = y0;
                        axpy_rows(m.w, a.data(), idx.data(), idx.size(), y.data(), pool, level);
                        if (first.empty()) {
                            first = y;
                            for (size_t c = 0; c < cols; ++c) {
                                INFO("c " << c << " got " << y[c] << " want " << ref[c]);
                                REQUIRE(std::fabs(y[c] - ref[c]) <= kTol * abs_sum[c]);
                            }
                        } else {
                            INFO(isa_level_name(level) << " threads " << (pool ? pool->size() : 1));
                            REQUIRE(same_bits(first, y));
                        }
                    }
                }
                // Repeated runs with a fixed pool: identical.
                for (int rep = 0; rep < 3; ++rep) {
                    std::vector<float> y = y0;
                    axpy_rows(m.w, a.data(), idx.data(), idx.size(), y.data(), &p2);
                    REQUIRE(same_bits(first, y));
                }
            }
        }
    }
}

TEST_CASE("axpy_rows skips zero coefficients: a non-finite row behind a zero never reaches y", "[cpu]") {
    for (IsaLevel level : available_levels()) {
        for (WeightType t : {WeightType::F32, WeightType::F16, WeightType::BF16}) {
            TestMatrix m = make_matrix(t, 4, 64, 1);
            // Row 2 all NaN.
            for (size_t c = 0; c < 64; ++c) {
                uint8_t *row = m.bytes.data() + 2 * m.w.row_stride;
                if (t == WeightType::F32) {
                    const float nan = std::numeric_limits<float>::quiet_NaN();
                    std::memcpy(row + 4 * c, &nan, 4);
                } else {
                    const uint16_t nan = 0x7fc0;  // a NaN in both fp16 and bf16
                    std::memcpy(row + 2 * c, &nan, 2);
                }
            }
            const uint32_t idx[3] = {1, 2, 3};
            const float a[3] = {0.5f, 0.0f, -1.0f};
            std::vector<float> y(64, 1.0f);
            axpy_rows(m.w, a, idx, 3, y.data(), nullptr, level);
            for (float v : y) REQUIRE(std::isfinite(v));
            // rows == nullptr: neurons 0..n-1.
            std::vector<float> y2(64, 0.0f);
            const float a4[4] = {1.0f, 0.0f, 0.0f, 0.0f};
            axpy_rows(m.w, a4, nullptr, 4, y2.data(), nullptr, level);
            for (size_t c = 0; c < 64; ++c) REQUIRE(static_cast<double>(y2[c]) == m.at(0, c));
        }
    }
}

TEST_CASE("matvec and axpy reject bad arguments before doing any work", "[cpu]") {
    const TestMatrix m = make_matrix(WeightType::Q4_0, 8, 64, 2);
    Prepared p;
    prepare(p, m, 3, IsaLevel::Scalar);
    std::vector<float> y(8, 0.0f);
    auto status_of = [](auto &&fn) {
        try {
            fn();
        } catch (const pi::Error &e) {
            return e.status();
        }
        return PI_OK;
    };
    MatvecInput no_q8 = p.in;
    no_q8.q8 = nullptr;
    CHECK(status_of([&] { matvec(m.w, no_q8, 0, 8, y.data()); }) == PI_ERR_INVALID_ARGUMENT);
    MatvecInput short_x = p.in;
    short_x.n = 32;
    CHECK(status_of([&] { matvec(m.w, short_x, 0, 8, y.data()); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { matvec(m.w, p.in, 0, 9, y.data()); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { matvec(m.w, p.in, 5, 4, y.data()); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { matvec(m.w, p.in, 0, 8, nullptr); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { matvec(m.w, p.in, 3, 3, nullptr); }) == PI_OK);  // empty range: nothing to do
    const uint32_t bad[2] = {1, 8};
    std::vector<float> before = y;
    CHECK(status_of([&] { matvec_rows(m.w, p.in, bad, 2, y.data()); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(same_bits(before, y));
    CHECK(status_of([&] { matvec_rows(m.w, p.in, nullptr, 0, y.data()); }) == PI_OK);  // empty list
    CHECK(status_of([&] { matvec_rows(m.w, p.in, nullptr, 2, y.data()); }) == PI_ERR_INVALID_ARGUMENT);
    const float a[2] = {1.0f, 1.0f};
    std::vector<float> yy(64, 0.0f);
    CHECK(status_of([&] { axpy_rows(m.w, a, bad, 2, yy.data()); }) == PI_ERR_INVALID_ARGUMENT);
    for (float v : yy) CHECK(v == 0.0f);
    CHECK(status_of([&] { axpy_rows(m.w, a, nullptr, 9, yy.data()); }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] { axpy_rows(m.w, a, nullptr, 0, yy.data()); }) == PI_OK);
    if (best_isa_level() < IsaLevel::Avx512) {
        CHECK(status_of([&] { matvec(m.w, p.in, 0, 8, y.data(), nullptr, IsaLevel::Avx512); }) == PI_ERR_UNSUPPORTED);
    }
}
