// Q4_0X8 (backends/cpu/q4_0_interleave.h): the layout's byte positions and round trip, and every path that reads
// it -- the AVX-512 dot's interleaved groups (with and without VNNI), its gathered rows (partial groups, row lists),
// and the kernel table's unpacking for the other levels, the prefill conversions and axpy -- gives the bits of the
// same matrix's eight-row Q4_0R dot (and so of its Q4_0 rows), whatever the thread count and wherever a row range
// starts.
#include <cstring>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/q4_0_interleave.h"
#include "backends/cpu/q4_0_repack.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

// The Q4_0R copy of a Q4_0 matrix (the layout the CPU executor used for these matrices before Q4_0X8).
struct Repacked {
    std::vector<uint8_t> bytes;
    WeightMatrix w;
};

Repacked repack(const TestMatrix &m) {
    Repacked out;
    const size_t row = weight_row_bytes(WeightType::Q4_0, m.w.n_cols);
    out.bytes.assign(m.w.n_rows * row, 0);
    for (size_t r = 0; r < m.w.n_rows; ++r) repack_q4_0_row(m.w.row(r), m.w.n_cols, out.bytes.data() + r * row);
    out.w = make_weight_matrix(out.bytes.data(), WeightType::Q4_0R, m.w.n_rows, m.w.n_cols);
    return out;
}

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

TEST_CASE("Q4_0X8 stores eight rows four blocks at a time, codes then scales, and gathers back to the Q4_0 rows",
          "[cpu]") {
    const size_t rows = 24, cols = 352;  // three groups of 11 blocks: two full steps and a last one of 3 blocks
    const TestMatrix m = make_matrix(WeightType::Q4_0, rows, cols, 21);
    REQUIRE(q4_0x8_fits(m.w));
    Interleaved x8(m);
    CHECK(x8.w.type == WeightType::Q4_0X8);
    CHECK(kQ4X8StepBytes == 576);
    // Row 10 is group 1's third row (i = 2). Group 1 starts after group 0's 8 rows of 11 blocks (18 bytes each).
    const uint8_t *group1 = x8.bytes.data() + 8 * 11 * 18;
    const auto block = [&](size_t b) { return m.w.row(10) + b * 18; };  // [fp16 d][16 code bytes]
    // Block 5 is block 1 of full step 1: its codes after rows 8 and 9's 64 bytes and its own block 4, its scale after
    // the step's 512 code bytes, rows 8 and 9's 4 scales and block 4's.
    CHECK(std::memcmp(group1 + 576 + 2 * 64 + 16, block(5) + 2, 16) == 0);
    CHECK(std::memcmp(group1 + 576 + 512 + 2 * (2 * 4 + 1), block(5), 2) == 0);
    // Block 9 is block 1 of the last step (blocks 8..10, t = 3): 48 code bytes a row, then 6 scale bytes a row.
    CHECK(std::memcmp(group1 + 2 * 576 + 2 * 48 + 16, block(9) + 2, 16) == 0);
    CHECK(std::memcmp(group1 + 2 * 576 + 8 * 48 + 2 * (2 * 3 + 1), block(9), 2) == 0);
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

TEST_CASE("Q4_0X8 dots give the Q4_0R dot's bits at every level, thread count and row range", "[cpu]") {
    ThreadPool p2(2), p3(3);
    // The first shape is 285 KB of weights, so the pools split its rows (chunks of whole groups); the others end in
    // a step of 3, 2 or 1 blocks (the tiny test models' 64- and 32-column rows among them).
    const std::pair<size_t, size_t> shapes[] = {{248, 2048}, {40, 352}, {16, 64}, {24, 160}, {8, 32}};
    for (const auto &[rows, cols] : shapes) {
        const TestMatrix m = make_matrix(WeightType::Q4_0, rows, cols, static_cast<uint32_t>(rows + cols));
        const Repacked q4r = repack(m);
        const Interleaved x8(m);
        const std::vector<float> x = random_vector(cols, 6, 2.0f);
        for (const detail::KernelTable *k : every_table()) {
            DYNAMIC_SECTION(rows << " x " << cols << ", " << isa_level_name(k->level)
                                 << (k == &detail::kernels(k->level) ? "" : " without VNNI")) {
                Q8Activation xq;
                xq.quantize(x.data(), cols, k->level);
                MatvecInput in;
                in.q8 = &xq;
                in.n = cols;
                // Eight-row groups of Q4_0R (row lists of eight) and the plain Q4_0 rows agree (tested elsewhere).
                std::vector<uint32_t> all(rows);
                for (size_t r = 0; r < rows; ++r) all[r] = static_cast<uint32_t>(r);
                std::vector<float> want(rows), got(rows);
                k->dot_rows(q4r.w, nullptr, &xq, all.data(), 0, rows, want.data());
                std::vector<float> plain(rows);
                k->dot_rows(m.w, nullptr, &xq, nullptr, 0, rows, plain.data());
                REQUIRE(same_bits(plain, want));
                k->dot_rows(x8.w, nullptr, &xq, nullptr, 0, rows, got.data());
                REQUIRE(same_bits(got, want));
                for (ThreadPool *pool : {static_cast<ThreadPool *>(nullptr), &p2, &p3}) {
                    std::fill(got.begin(), got.end(), 0.0f);
                    matvec(x8.w, in, 0, rows, got.data(), pool, k->level);
                    REQUIRE(same_bits(got, want));
                    // A range starting and ending inside groups: gathered edges, interleaved middle.
                    std::vector<float> part(rows - 6);
                    matvec(x8.w, in, 3, rows - 3, part.data(), pool, k->level);
                    REQUIRE(same_bits(part, std::vector<float>(want.begin() + 3, want.end() - 3)));
                }
                // Row lists (gathered rows), duplicates included.
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
