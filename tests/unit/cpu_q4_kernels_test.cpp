// The AVX-512 Q4_0 kernels' own inputs and edges: the activation's Q4_0 arrangement (Q8Activation::q4_*), rows that
// end right before an unreadable page (the four-block steps and the 16-block scale windows must never read past a
// row's last byte), every block count of a short row, and extreme fp16 scales (subnormal, largest, infinite, zero)
// in the Q4_0 and Q8_0 axpy coefficients, which the AVX-512 level converts with vcvtph2ps a window of blocks at a
// time and the scalar level through its table, block by block.
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/q4_0_repack.h"
#include "backends/cpu/q8_activation.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

bool have_avx512() { return best_isa_level() >= IsaLevel::Avx512; }

// The arrangement as its documentation states it, from q(), d16() and nothing else.
void check_q4_arrangement(const Q8Activation &a) {
    const size_t nb = a.n_blocks();
    REQUIRE(a.n_quads() == (nb + 3) / 4);
    for (size_t g = 0; g < a.n_quads(); ++g) {
        for (size_t j = 0; j < 4; ++j) {
            const size_t b = 4 * g + j;
            INFO("block " << b << " of " << nb);
            for (size_t t = 0; t < 16; ++t) {
                const int lo = b < nb ? a.q()[b * 32 + t] : 0, hi = b < nb ? a.q()[b * 32 + 16 + t] : 0;
                REQUIRE(a.q4_lohi()[g * 128 + j * 16 + t] == lo);
                REQUIRE(a.q4_lohi()[g * 128 + 64 + j * 16 + t] == hi);
            }
            for (size_t i = 0; i < 4; ++i) {
                int sum = 0;
                for (size_t k = 0; k < 4; ++k) {
                    if (b < nb) sum += a.q()[b * 32 + 4 * i + k] + a.q()[b * 32 + 16 + 4 * i + k];
                }
                REQUIRE(a.q4_corr()[g * 16 + 4 * j + i] == -8 * sum);
                const double d = b < nb ? half_value(a.d16()[b]) : 0.0;
                REQUIRE(static_cast<double>(a.q4_dx()[g * 16 + 4 * j + i]) == d);
            }
        }
    }
}

}  // namespace

TEST_CASE("Q8Activation's Q4_0 arrangement restates q, the group sums and the scales", "[cpu]") {
    Q8Activation a;
    for (size_t nb : {1, 2, 3, 4, 5, 7, 8, 9, 34, 128}) {
        DYNAMIC_SECTION(nb << " blocks") {
            std::vector<float> x = random_vector(nb * 32, static_cast<uint32_t>(nb), 3.0f);
            x[0] = 1e30f;  // a block whose values are mostly 0 and one 127
            a.quantize(x.data(), x.size());
            check_q4_arrangement(a);
        }
    }
    // A shorter x after a longer one on the same object: the padding of its last group is zeros again, not the
    // previous x's values.
    const std::vector<float> longer = random_vector(9 * 32, 5), shorter = random_vector(5 * 32, 6);
    a.quantize(longer.data(), longer.size());
    a.quantize(shorter.data(), shorter.size());
    check_q4_arrangement(a);
}

TEST_CASE("AVX-512 Q4_0 dots stay inside the rows for every block count and match the integer reference", "[cpu]") {
    if (!have_avx512()) {
        WARN("no AVX-512 on this CPU: skipped");
        return;
    }
    for (size_t nb = 1; nb <= 14; ++nb) {
        for (size_t rows : {1, 4, 7}) {  // a group of four rows, a single row, both
            DYNAMIC_SECTION(nb << " blocks, " << rows << " rows") {
                const size_t cols = nb * 32;
                const TestMatrix m = make_matrix(WeightType::Q4_0, rows, cols, static_cast<uint32_t>(nb * 7 + rows));
                GuardedBytes g(m.bytes.size());
                std::memcpy(g.data(), m.bytes.data(), m.bytes.size());
                WeightMatrix w = m.w;
                w.data = g.data();
                const std::vector<float> x = random_vector(cols, static_cast<uint32_t>(nb));
                Q8Activation xq;
                xq.quantize(x.data(), cols, IsaLevel::Avx512);
                const RefQ8 ref = ref_quantize(x.data(), cols);
                std::vector<float> y(rows), y_no_vnni(rows);
                detail::avx512_kernels(false).dot_rows(w, nullptr, &xq, nullptr, 0, rows, y_no_vnni.data());
                if (cpu_features().avx512_vnni) {
                    detail::avx512_kernels(true).dot_rows(w, nullptr, &xq, nullptr, 0, rows, y.data());
                    REQUIRE(same_bits(y, y_no_vnni));
                }
                for (size_t r = 0; r < rows; ++r) {
                    double abs_sum = 0.0;
                    const double want = ref_dot(m, r, x.data(), &ref, &abs_sum);
                    INFO("row " << r << " got " << y_no_vnni[r] << " want " << want);
                    REQUIRE(std::fabs(y_no_vnni[r] - want) <= 1e-5 * abs_sum + 1e-30);
                }
                // A row list (13 entries: a group of 8, one of 4, a single; the last row, next to the guard page,
                // in each): every entry bit for bit what the range call gave its row.
                std::vector<uint32_t> list;
                for (size_t k = 0; k < 13; ++k) list.push_back(static_cast<uint32_t>((rows - 1 + 3 * k) % rows));
                std::vector<float> z(list.size());
                detail::avx512_kernels(false).dot_rows(w, nullptr, &xq, list.data(), 0, list.size(), z.data());
                for (size_t k = 0; k < list.size(); ++k) {
                    INFO("list entry " << k << " row " << list[k]);
                    REQUIRE(float_bits(z[k]) == float_bits(y_no_vnni[list[k]]));
                }
            }
        }
    }
}

TEST_CASE("AVX-512 Q4_0/Q8_0 axpy stays inside the rows and equals the scalar level bit for bit, extreme scales "
          "included",
          "[cpu]") {
    if (!have_avx512()) {
        WARN("no AVX-512 on this CPU: skipped");
        return;
    }
    // Scales beyond make_matrix's range: smallest subnormal, a subnormal, the largest finite, +-inf, +-0, negative.
    const uint16_t special[] = {0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x0000, 0x8000, 0xbc00};
    // Scale windows (Q4_0: 16 blocks, Q8_0: 8) and their scalar tails: 1..3 blocks, one window + tails, two
    // windows + tail, a 64-block chunk + 3.
    for (WeightType t : {WeightType::Q4_0, WeightType::Q8_0}) {
        for (size_t nb : {1, 2, 3, 8, 9, 16, 17, 18, 21, 35, 67}) {
            DYNAMIC_SECTION(weight_type_name(t) << " " << nb << " blocks") {
                const size_t cols = nb * 32, rows = 11, block_bytes = t == WeightType::Q4_0 ? 18 : 34;
                TestMatrix m = make_matrix(t, rows, cols, static_cast<uint32_t>(nb + 100));
                for (size_t r = 0; r < rows; ++r) {
                    for (size_t b = r % 3; b < nb; b += 5) {
                        std::memcpy(m.bytes.data() + r * m.w.row_stride + b * block_bytes, &special[(r + b) % 8], 2);
                    }
                }
                GuardedBytes g(m.bytes.size());
                std::memcpy(g.data(), m.bytes.data(), m.bytes.size());
                WeightMatrix w = m.w;
                w.data = g.data();
                // Every row once: two groups of 4, then 3 single rows, the last row (next to the guard page) last.
                const std::vector<uint32_t> list = {3, 0, 7, 1, 2, 9, 4, 6, 5, 8, 10};
                const std::vector<float> a = random_vector(list.size(), static_cast<uint32_t>(nb));
                const std::vector<float> y0 = random_vector(cols, 9);
                // The whole row, and column ranges that start at multiples of 64 and end at one or at n_cols.
                std::vector<std::pair<size_t, size_t>> ranges = {{0, cols}};
                if (cols > 64) ranges.push_back({64, cols});
                if (cols > 128) ranges.push_back({0, 128});
                for (const auto &range : ranges) {
                    std::vector<float> want = y0, got = y0;
                    detail::kernels(IsaLevel::Scalar)
                        .axpy_rows(w, a.data(), list.data(), list.size(), range.first, range.second, want.data());
                    detail::avx512_kernels(cpu_features().avx512_vnni)
                        .axpy_rows(w, a.data(), list.data(), list.size(), range.first, range.second, got.data());
                    INFO("columns " << range.first << ".." << range.second);
                    REQUIRE(same_bits(want, got));
                }
            }
        }
    }
}

TEST_CASE("Q4_0R rows give their Q4_0 originals' bits at every level, and the AVX-512 dots stay inside them", "[cpu]") {
    std::vector<const detail::KernelTable *> tables;
    for (IsaLevel level : available_levels()) tables.push_back(&detail::kernels(level));
    if (have_avx512()) tables.push_back(&detail::avx512_kernels(false));  // the no-VNNI dots
    std::vector<size_t> block_counts;
    for (size_t nb = 1; nb <= 36; ++nb) block_counts.push_back(nb);  // partial steps and 16-block scale groups
    for (size_t nb : {128, 344}) block_counts.push_back(nb);         // bench-7b's 4096 and 11008 columns
    for (size_t nb : block_counts) {
        for (size_t rows : {1, 4, 9}) {
            DYNAMIC_SECTION(nb << " blocks, " << rows << " rows") {
                const size_t cols = nb * 32, row_bytes = nb * 18;
                const TestMatrix m = make_matrix(WeightType::Q4_0, rows, cols, static_cast<uint32_t>(nb * 11 + rows));
                // The repacked copy ends where an unreadable page begins: the masked code and scale loads of a
                // row's last step must not read past it.
                GuardedBytes g(rows * row_bytes);
                for (size_t r = 0; r < rows; ++r) repack_q4_0_row(m.w.row(r), cols, g.data() + r * row_bytes);
                WeightMatrix packed = make_weight_matrix(g.data(), WeightType::Q4_0R, rows, cols);
                std::vector<uint8_t> back(row_bytes);
                for (size_t r = 0; r < rows; ++r) {
                    unpack_q4_0r_row(packed.row(r), cols, back.data());
                    REQUIRE(std::memcmp(back.data(), m.w.row(r), row_bytes) == 0);
                }
                const std::vector<float> x = random_vector(cols, static_cast<uint32_t>(nb + 5));
                std::vector<uint32_t> list;  // 13 entries: groups of 8 and 4 and a single, every row in some
                for (size_t k = 0; k < 13; ++k) list.push_back(static_cast<uint32_t>((rows - 1 + 3 * k) % rows));
                const std::vector<float> coeff = random_vector(list.size(), 3);
                for (const detail::KernelTable *k : tables) {
                    INFO("level " << int(k->level) << (k == tables.back() && have_avx512() ? " (last table)" : ""));
                    Q8Activation xq;
                    xq.quantize(x.data(), cols, k->level);
                    std::vector<float> want(rows), got(rows), want_list(list.size()), got_list(list.size());
                    k->dot_rows(m.w, nullptr, &xq, nullptr, 0, rows, want.data());
                    k->dot_rows(packed, nullptr, &xq, nullptr, 0, rows, got.data());
                    REQUIRE(same_bits(want, got));
                    k->dot_rows(m.w, nullptr, &xq, list.data(), 0, list.size(), want_list.data());
                    k->dot_rows(packed, nullptr, &xq, list.data(), 0, list.size(), got_list.data());
                    REQUIRE(same_bits(want_list, got_list));
                    // axpy rows and the GEMM's conversions take the unpacking path: the same bits as Q4_0.
                    std::vector<float> ya(cols, 0.25f), yb(cols, 0.25f);
                    k->axpy_rows(m.w, coeff.data(), list.data(), list.size(), 0, cols, ya.data());
                    k->axpy_rows(packed, coeff.data(), list.data(), list.size(), 0, cols, yb.data());
                    REQUIRE(same_bits(ya, yb));
                    std::vector<float> fa(rows * cols), fb(rows * cols);
                    k->rows_to_f32(m.w, 0, rows, fa.data(), cols);
                    k->rows_to_f32(packed, 0, rows, fb.data(), cols);
                    REQUIRE(same_bits(fa, fb));
                    std::vector<uint16_t> ba(rows * cols), bb(rows * cols, 1);
                    k->rows_to_bf16(m.w, 0, rows, ba.data(), cols);
                    k->rows_to_bf16(packed, 0, rows, bb.data(), cols);
                    REQUIRE(ba == bb);
                }
            }
        }
    }
}
