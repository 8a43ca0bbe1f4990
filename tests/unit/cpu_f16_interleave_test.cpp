// F16X8 (backends/cpu/f16_interleave.h): the layout round-trips, and every path that reads it -- the AVX-512 dot's
// interleaved groups, its gathered rows (partial groups, row lists), and the kernel table's unpacking for the other
// levels, the prefill conversion and axpy -- gives the bits of the same matrix in F16, whatever the thread count
// and wherever a row range starts.
#include <cstring>
#include <vector>

#include "backends/cpu/f16_interleave.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

struct Interleaved {
    std::vector<uint8_t> bytes;
    WeightMatrix w;
};

Interleaved interleave(const TestMatrix &m) {
    Interleaved out;
    out.bytes.assign(m.w.n_rows * m.w.n_cols * 2, 0);
    out.w = interleave_f16x8(m.w, out.bytes.data());
    return out;
}

}  // namespace

TEST_CASE("F16X8 stores eight rows 64 weights at a time and gathers back to the F16 rows", "[cpu]") {
    const TestMatrix m = make_matrix(WeightType::F16, 24, 192, 11);
    REQUIRE(f16x8_fits(m.w));
    const Interleaved x8 = interleave(m);
    CHECK(x8.w.type == WeightType::F16X8);
    // Row 10 is group 1's third row: its weights 64..127 (step 1) follow step 0 (1 KiB) and rows 8 and 9's 128 bytes
    // of step 1. Group 1 starts after group 0's 8 rows.
    const uint8_t *group1 = x8.bytes.data() + 8 * 192 * 2;
    CHECK(std::memcmp(group1 + 1 * kF16X8StepBytes + 2 * 128, m.w.row(10) + 128, 128) == 0);
    std::vector<uint16_t> back(192);
    for (size_t r = 0; r < 24; ++r) {
        gather_f16x8_row(x8.w, r, back.data());
        REQUIRE(std::memcmp(back.data(), m.w.row(r), 192 * 2) == 0);
    }
    // Shapes it does not take.
    CHECK_FALSE(f16x8_fits(make_matrix(WeightType::F16, 20, 192, 1).w));
    CHECK_FALSE(f16x8_fits(make_matrix(WeightType::F16, 24, 96, 1).w));
    CHECK_FALSE(f16x8_fits(make_matrix(WeightType::BF16, 24, 192, 1).w));
    CHECK_THROWS_AS(weight_row_bytes(WeightType::F16X8, 96), pi::Error);
}

TEST_CASE("F16X8 dots give the F16 bits at every level, thread count and row range", "[cpu]") {
    ThreadPool p2(2), p3(3);
    // 96 KiB and more of weights, so the pools split the rows (chunks of whole groups).
    const size_t rows = 112, cols = 1024;
    const TestMatrix m = make_matrix(WeightType::F16, rows, cols, 5);
    const Interleaved x8 = interleave(m);
    const std::vector<float> x = random_vector(cols, 6);
    MatvecInput in;
    in.f32 = x.data();
    in.n = cols;
    for (IsaLevel level : available_levels()) {
        DYNAMIC_SECTION(isa_level_name(level)) {
            std::vector<float> want(rows);
            matvec(m.w, in, 0, rows, want.data(), nullptr, level);
            for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                std::vector<float> got(rows);
                matvec(x8.w, in, 0, rows, got.data(), pool, level);
                REQUIRE(same_bits(got, want));
                // A range starting and ending inside groups: gathered edges, interleaved middle.
                std::vector<float> part(rows - 16);
                matvec(x8.w, in, 3, rows - 13, part.data(), pool, level);
                REQUIRE(same_bits(part, std::vector<float>(want.begin() + 3, want.end() - 13)));
            }
            // Row lists (gathered rows), duplicates included.
            const std::vector<uint32_t> list = {9, 0, 111, 64, 64, 17, 8};
            std::vector<float> got(list.size());
            matvec_rows(x8.w, in, list.data(), list.size(), got.data(), &p2, level);
            for (size_t i = 0; i < list.size(); ++i) REQUIRE(same_bits({got[i]}, {want[list[i]]}));
            // The prefill conversion and axpy read the same values through the kernel table.
            const detail::KernelTable &k = detail::kernels(level);
            std::vector<float> conv_a(5 * cols), conv_b(5 * cols);
            k.rows_to_f32(m.w, 6, 11, conv_a.data(), cols);
            k.rows_to_f32(x8.w, 6, 11, conv_b.data(), cols);
            REQUIRE(same_bits(conv_a, conv_b));
            const std::vector<float> a = random_vector(list.size(), 7);
            std::vector<float> ya(cols, 0.0f), yb(cols, 0.0f);
            axpy_rows(m.w, a.data(), list.data(), list.size(), ya.data(), nullptr, level);
            axpy_rows(x8.w, a.data(), list.data(), list.size(), yb.data(), nullptr, level);
            REQUIRE(same_bits(ya, yb));
        }
    }
}
