// Q4_0X8 (backends/cpu/q4_0_interleave.h): the layout's byte positions and round trip; the AVX-512 dot of its
// groups (with and without VNNI) against the integer reference of a Q4_0 dot, with one result per row whatever the
// thread count, the row range, a row list or the VNNI switch; the kernel table's unpacking for the other levels, the
// prefill conversions and axpy give the bits of the same Q4_0 rows.
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/q4_0_interleave.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

// The interleaved copy, ending where an unreadable page begins: the group dot must not load past the last step.
struct Interleaved {
    explicit Interleaved(const TestMatrix &m)
        : bytes(m.w.n_rows * weight_row_bytes(WeightType::Q4_0, m.w.n_cols)),
          w(interleave_q4_0x8(m.w, bytes.data())) {}
    GuardedBytes bytes;
    WeightMatrix w;
};

std::vector<const detail::KernelTable *> every_table() {
    std::vector<const detail::KernelTable *> tables;
    for (IsaLevel level : available_levels()) tables.push_back(&detail::kernels(level));
    if (best_isa_level() >= IsaLevel::Avx512) tables.push_back(&detail::avx512_kernels(false));  // no-VNNI dots
    return tables;
}

}  // namespace

TEST_CASE("Q4_0X8 stores eight rows sixteen blocks at a time, scales then codes, and gathers back to the Q4_0 rows",
          "[cpu]") {
    const size_t rows = 24, cols = 608;  // three groups of 19 blocks: a full step and a last one of 3 blocks
    const TestMatrix m = make_matrix(WeightType::Q4_0, rows, cols, 21);
    REQUIRE(q4_0x8_fits(m.w));
    Interleaved x8(m);
    CHECK(x8.w.type == WeightType::Q4_0X8);
    CHECK(kQ4X8StepBytes == 2304);
    // Row 10 is group 1's third row (i = 2). Group 1 starts after group 0's 8 rows of 19 blocks (18 bytes each).
    const uint8_t *group1 = x8.bytes.data() + 8 * 19 * 18;
    const auto block = [&](size_t b) { return m.w.row(10) + b * 18; };  // [fp16 d][16 code bytes]
    // Block 5 of the full step: its scale after rows 8 and 9's 16 scales and its own blocks 0-4'; its code bytes
    // 4k .. 4k+3 in chunk k (64 bytes) of row 10's 256, after the step's 256 scale bytes and rows 8 and 9's codes.
    CHECK(std::memcmp(group1 + 2 * (2 * 16 + 5), block(5), 2) == 0);
    for (size_t k = 0; k < 4; ++k) {
        INFO("chunk " << k);
        CHECK(std::memcmp(group1 + 256 + 2 * 256 + 64 * k + 4 * 5, block(5) + 2 + 4 * k, 4) == 0);
    }
    // Block 17 is block 1 of the last step (blocks 16..18, t = 3): 6 scale bytes a row, then 48 code bytes a row in
    // chunks of 12.
    const uint8_t *last = group1 + 2304;
    CHECK(std::memcmp(last + 2 * (2 * 3 + 1), block(17), 2) == 0);
    for (size_t k = 0; k < 4; ++k) {
        INFO("chunk " << k);
        CHECK(std::memcmp(last + 8 * 6 + 2 * 48 + 12 * k + 4 * 1, block(17) + 2 + 4 * k, 4) == 0);
    }
    std::vector<uint8_t> back(weight_row_bytes(WeightType::Q4_0, cols));
    for (size_t r = 0; r < rows; ++r) {
        gather_q4_0x8_row(x8.w, r, back.data());
        REQUIRE(std::memcmp(back.data(), m.w.row(r), back.size()) == 0);
    }
    // Shapes it does not take.
    CHECK_FALSE(q4_0x8_fits(make_matrix(WeightType::Q4_0, 20, 352, 1).w));
    CHECK_FALSE(q4_0x8_fits(make_matrix(WeightType::Q8_0, 24, 352, 1).w));
    CHECK_THROWS_AS(weight_row_bytes(WeightType::Q4_0X8, 48), pi::Error);
}

TEST_CASE("Q4_0X8 dots match the integer reference, one result per row at every thread count, range and list",
          "[cpu]") {
    ThreadPool p2(2), p3(3);
    // The first shape is 1.1 MB of weights, so the pools split its rows (chunks of whole groups), in full steps only;
    // the others end in a step of 3, 4, 2 or 1 blocks (the tiny test models' 64- and 32-column rows among them), and
    // 608 columns have a full step before it.
    const std::pair<size_t, size_t> shapes[] = {{248, 8192}, {40, 608}, {16, 128}, {16, 64}, {24, 160}, {8, 32}, {768, 768}, {256, 1024}};
    for (const auto &[rows, cols] : shapes) {
        const TestMatrix m = make_matrix(WeightType::Q4_0, rows, cols, static_cast<uint32_t>(rows + cols));
        const Interleaved x8(m);
        const std::vector<float> x = random_vector(cols, 6, 2.0f);
        const RefQ8 xr = ref_quantize(x.data(), cols);
        for (const detail::KernelTable *k : every_table()) {
            const bool avx512 = k->level == IsaLevel::Avx512;
            DYNAMIC_SECTION(rows << " x " << cols << ", " << isa_level_name(k->level)
                                 << (k == &detail::kernels(k->level) ? "" : " without VNNI")) {
                Q8Activation xq;
                xq.quantize(x.data(), cols, k->level);
                MatvecInput in;
                in.q8 = &xq;
                in.n = cols;
                std::vector<float> want(rows), got(rows);
                k->dot_rows(x8.w, nullptr, &xq, nullptr, 0, rows, want.data());
                if (avx512) {
                    // The integer formula in double: each block's integer exact, fp32 only in the scale products
                    // and the accumulation (a few ulps of the terms' magnitudes).
                    for (size_t r = 0; r < rows; ++r) {
                        double abs_sum = 0.0;
                        const double ref = ref_dot(m, r, x.data(), &xr, &abs_sum);
                        INFO("row " << r << ": " << want[r] << " vs " << ref);
                        REQUIRE(std::fabs(want[r] - ref) <= 2e-6 * abs_sum + 1e-30);
                    }
                    // With and without VNNI (pmaddubsw + pmaddwd) the same integers, so the same bits.
                    std::vector<float> other(rows);
                    const bool vnni = k == &detail::kernels(k->level);
                    if (!vnni) {
                        detail::kernels(k->level).dot_rows(x8.w, nullptr, &xq, nullptr, 0, rows, other.data());
                        REQUIRE(same_bits(want, other));
                    }
                } else {
                    // The other levels read the rows gathered back to Q4_0: the Q4_0 dot's bits.
                    std::vector<float> plain(rows);
                    k->dot_rows(m.w, nullptr, &xq, nullptr, 0, rows, plain.data());
                    REQUIRE(same_bits(want, plain));
                }
                for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                    std::fill(got.begin(), got.end(), 0.0f);
                    matvec(x8.w, in, 0, rows, got.data(), pool, k->level);
                    REQUIRE(same_bits(got, want));
                    // A range starting and ending inside groups: single rows at the edges, groups in the middle.
                    std::vector<float> part(rows - 6);
                    matvec(x8.w, in, 3, rows - 3, part.data(), pool, k->level);
                    REQUIRE(same_bits(part, std::vector<float>(want.begin() + 3, want.end() - 3)));
                }
                // Row lists (single rows), duplicates included.
                const uint32_t last = static_cast<uint32_t>(rows - 1);
                const std::vector<uint32_t> list = {last, 0, 5, last, 3, 3, 7 % last};
                std::vector<float> listed(list.size());
                k->dot_rows(x8.w, nullptr, &xq, list.data(), 0, list.size(), listed.data());
                for (size_t i = 0; i < list.size(); ++i) REQUIRE(same_bits({listed[i]}, {want[list[i]]}));
                // The prefill conversions and axpy read the same values through the kernel table.
                std::vector<float> fa(5 * cols), fb(5 * cols);
                k->rows_to_f32(m.w, 2, 7, fa.data(), cols);
                k->rows_to_f32(x8.w, 2, 7, fb.data(), cols);
                REQUIRE(same_bits(fa, fb));
                std::vector<uint16_t> ba(5 * cols), bb(5 * cols, 1);
                k->rows_to_bf16(m.w, 2, 7, ba.data(), cols);
                k->rows_to_bf16(x8.w, 2, 7, bb.data(), cols);
                REQUIRE(ba == bb);
                const std::vector<float> a = random_vector(list.size(), 7);
                std::vector<float> ya(cols, 0.25f), yb(cols, 0.25f);
                k->axpy_rows(m.w, a.data(), list.data(), list.size(), 0, cols, ya.data());
                k->axpy_rows(x8.w, a.data(), list.data(), list.size(), 0, cols, yb.data());
                REQUIRE(same_bits(ya, yb));
            }
        }
    }
}
