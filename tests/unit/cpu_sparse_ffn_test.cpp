// The fused sparse FFN (sparse_ffn) and its gate/up half (ffn_activations_rows) for every weight type, activation,
// ISA level and thread count, against a straightforward double-precision reference computed here from the exact
// weight values (cpu_test_helpers.h) and, for Q8_0/Q4_0, the independently restated activation rounding.
//
// Tolerance, and why: every dot the kernels compute is within 1e-5 * (sum of |terms|) of the exact one (the matvec
// tests hold the dots to that), so a neuron's activation is off by at most L_g * dg + L_u * du, with dg, du those
// dot bounds and L_g, L_u the activation's local slopes (ReGLU/dReLU: |u| and |g|; SiLU: 1.1 |u| and |silu(g)|; ReLU:
// 0 and 1) -- this also covers a gate near 0 that the kernel and the reference put on different sides of the kink.
// The down accumulation is float: at most 1e-5 * sum |a * w| for the few hundred terms here. So each output must be
// within  2 * (1e-5 * sum_j |a_j w_jc| + sum_j |w_jc| * (L_g dg_j + L_u du_j)) + 1e-6 |y0_c|  of the reference; a
// wrong, dropped or doubled term is ~1/sqrt(n) of the output, orders of magnitude beyond.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "backends/cpu/matvec.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/sparse_ffn.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;
using namespace cpu_test;

namespace {

constexpr double kTol = 1e-5;

const FfnActivation kActivations[] = {FfnActivation::Silu, FfnActivation::Reglu, FfnActivation::Drelu,
                                      FfnActivation::Relu};

const char *act_name(FfnActivation a) {
    switch (a) {
        case FfnActivation::Silu: return "silu";
        case FfnActivation::Reglu: return "reglu";
        case FfnActivation::Drelu: return "drelu";
        case FfnActivation::Relu: return "relu";
    }
    return "?";
}

// One FFN layer of random weights of one type, with the exact values and the input in both forms.
struct Layer {
    TestMatrix gate, up, down_t;
    std::vector<float> bias;
    std::vector<float> x;
    Q8Activation q8;
    RefQ8 ref_q8;
    MatvecInput in;
    // Reference dots per neuron and the sums of their |terms|.
    std::vector<double> g, u, g_abs, u_abs;

    SparseFfnWeights weights(FfnActivation act, bool with_bias) const {
        SparseFfnWeights w;
        if (act != FfnActivation::Relu) w.gate = gate.w;
        w.up = up.w;
        w.down_t = down_t.w;
        w.up_bias = with_bias ? bias.data() : nullptr;
        w.activation = act;
        return w;
    }
};

void build_layer(Layer &l, WeightType t, size_t n_ff, size_t n_embd, uint32_t seed) {
    l.gate = make_matrix(t, n_ff, n_embd, seed);
    l.up = make_matrix(t, n_ff, n_embd, seed + 1, /*row_pad=*/t == WeightType::F32 ? 4 : 0);
    l.down_t = make_matrix(t, n_ff, n_embd, seed + 2);
    l.bias = random_vector(n_ff, seed + 3, 0.5f);
    l.x = random_vector(n_embd, seed + 4, 0.2f);
    l.in = MatvecInput{};
    l.in.f32 = l.x.data();
    l.in.n = n_embd;
    const bool quant = weight_type_is_quantized(t);
    if (quant) {
        l.q8.quantize(l.x.data(), n_embd, IsaLevel::Scalar);  // the same values on every level (matvec tests)
        l.ref_q8 = ref_quantize(l.x.data(), n_embd);
        l.in.q8 = &l.q8;
    }
    l.g.resize(n_ff);
    l.u.resize(n_ff);
    l.g_abs.resize(n_ff);
    l.u_abs.resize(n_ff);
    for (size_t r = 0; r < n_ff; ++r) {
        l.g[r] = ref_dot(l.gate, r, l.x.data(), quant ? &l.ref_q8 : nullptr, &l.g_abs[r]);
        l.u[r] = ref_dot(l.up, r, l.x.data(), quant ? &l.ref_q8 : nullptr, &l.u_abs[r]);
    }
}

struct RefNeuron {
    double a;
    double slack;  // bound on |a_kernel - a| from the dot errors (see the top of the file)
};

RefNeuron ref_neuron(const Layer &l, FfnActivation act, bool with_bias, uint32_t r) {
    const double g = l.g[r];
    const double u = l.u[r] + (with_bias ? static_cast<double>(l.bias[r]) : 0.0);
    const double dg = kTol * l.g_abs[r], du = kTol * l.u_abs[r];
    switch (act) {
        case FfnActivation::Silu: {
            const double s = g / (1.0 + std::exp(-g));
            return {s * u, 1.1 * (std::fabs(u) + du) * dg + (std::fabs(s) + 1.1 * dg) * du + 1e-6 * std::fabs(s * u)};
        }
        case FfnActivation::Reglu:
            return {g > 0 ? g * u : 0.0, (std::fabs(u) + du) * dg + (std::fabs(g) + dg) * du};
        case FfnActivation::Drelu:
            return {g > 0 && u > 0 ? g * u : 0.0, (std::fabs(u) + du) * dg + (std::fabs(g) + dg) * du};
        case FfnActivation::Relu: return {u > 0 ? u : 0.0, du};
    }
    return {0, 0};
}

// The reference of one list: y0 + sum over the list of a_ref * down_t row, and each output's error bound.
struct RefOutput {
    std::vector<double> y, bound;
};

RefOutput ref_output(const Layer &l, FfnActivation act, bool with_bias, const std::vector<uint32_t> &rows,
                     const std::vector<float> &y0) {
    const size_t n_out = l.down_t.w.n_cols;
    RefOutput r;
    r.y.resize(n_out);
    r.bound.resize(n_out);
    for (size_t c = 0; c < n_out; ++c) {
        r.y[c] = y0[c];
        r.bound[c] = 1e-6 * std::fabs(y0[c]);
    }
    for (uint32_t n : rows) {
        const RefNeuron nr = ref_neuron(l, act, with_bias, n);
        for (size_t c = 0; c < n_out; ++c) {
            const double w = l.down_t.at(n, c);
            r.y[c] += nr.a * w;
            r.bound[c] += 2.0 * (kTol * std::fabs(nr.a * w) + std::fabs(w) * nr.slack);
        }
    }
    return r;
}

// One REQUIRE per output vector (not per element: millions of assertions would dominate the run time).
void check_output(const RefOutput &ref, const std::vector<float> &y) {
    size_t bad = 0, first_bad = 0;
    for (size_t c = 0; c < ref.y.size(); ++c) {
        if (!(std::fabs(y[c] - ref.y[c]) <= ref.bound[c] + 1e-30)) {
            if (bad++ == 0) first_bad = c;
        }
    }
    INFO(bad << " outputs out of bounds; first: column " << first_bad << " got " << y[first_bad] << " want "
             << ref.y[first_bad] << " bound " << ref.bound[first_bad]);
    REQUIRE(bad == 0);
}

void check_ffn_output(const Layer &l, FfnActivation act, bool with_bias, const std::vector<uint32_t> &rows,
                      const std::vector<float> &y0, const std::vector<float> &y) {
    check_output(ref_output(l, act, with_bias, rows, y0), y);
}

// Lists: unsorted subset, sorted subset, all neurons, repeated entries, a single neuron, empty.
std::vector<std::vector<uint32_t>> test_lists(size_t n_ff, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint32_t> all(n_ff);
    std::iota(all.begin(), all.end(), 0u);
    std::vector<uint32_t> subset;
    for (uint32_t i = 0; i < n_ff; ++i) {
        if (rng() % 100 < 40) subset.push_back(i);
    }
    std::vector<uint32_t> shuffled = subset;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    std::vector<uint32_t> repeated = shuffled;
    repeated.insert(repeated.begin() + 5, repeated[0]);
    repeated.push_back(repeated[7]);
    repeated.push_back(repeated[7]);
    return {shuffled, subset, all, repeated, {static_cast<uint32_t>(n_ff - 1)}, {}};
}

// Overwrites row r with NaN: every float, or every block scale of a quantized row.
void poison_row(TestMatrix &m, size_t r) {
    uint8_t *row = m.bytes.data() + r * m.w.row_stride;
    const size_t cols = m.w.n_cols;
    const uint16_t nan16 = 0x7fc0;  // a NaN in both fp16 and bf16
    const float nan32 = std::numeric_limits<float>::quiet_NaN();
    switch (m.w.type) {
        case WeightType::F32:
            for (size_t c = 0; c < cols; ++c) std::memcpy(row + 4 * c, &nan32, 4);
            break;
        case WeightType::F16:
        case WeightType::BF16:
            for (size_t c = 0; c < cols; ++c) std::memcpy(row + 2 * c, &nan16, 2);
            break;
        case WeightType::Q8_0:
            for (size_t b = 0; b < cols / 32; ++b) std::memcpy(row + b * sizeof(BlockQ8_0), &nan16, 2);
            break;
        case WeightType::Q4_0:
            for (size_t b = 0; b < cols / 32; ++b) std::memcpy(row + b * sizeof(BlockQ4_0), &nan16, 2);
            break;
        case WeightType::Q4_0R:
        case WeightType::F16X8:
        case WeightType::Q4_0X8: FAIL("the sparse FFN tests build file layouts, not repacked ones"); break;
    }
}

ThreadPool *pool_of(int threads) {
    static ThreadPool p2(2), p3(3);
    return threads == 1 ? nullptr : threads == 2 ? &p2 : &p3;
}

int status_of(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const pi::Error &e) {
        return e.status();
    }
    return PI_OK;
}

}  // namespace

TEST_CASE("sparse_ffn and ffn_activations_rows match the double reference", "[cpu][sparse]") {
    // 1056 = 33 blocks (odd: the quantized kernels' single-block tail); 640 neurons: > 64 KiB of rows for every type
    // at 40%, so the pools of 2 and 3 really cut the lists into several chunks.
    const size_t n_ff = 640, n_embd = 1056;
    for (WeightType t : all_types()) {
        Layer l;
        build_layer(l, t, n_ff, n_embd, 100 + static_cast<uint32_t>(t));
        const auto lists = test_lists(n_ff, 7);
        const std::vector<float> y0 = random_vector(n_embd, 55, 0.1f);
        SparseFfnScratch scratch;
        for (FfnActivation act : kActivations) {
            for (bool with_bias : {false, true}) {
                const SparseFfnWeights w = l.weights(act, with_bias);
                for (size_t li = 0; li < lists.size(); ++li) {
                    const auto &rows = lists[li];
                    const RefOutput ref = ref_output(l, act, with_bias, rows, y0);
                    for (IsaLevel level : available_levels()) {
                        for (int threads : {1, 2, 3}) {
                            INFO(weight_type_name(t) << " " << isa_level_name(level) << " " << act_name(act)
                                                     << (with_bias ? " bias" : "") << " threads " << threads
                                                     << " list " << li << " of " << rows.size() << " neurons");
                            std::vector<float> y = y0;
                            sparse_ffn(w, l.in, rows.data(), rows.size(), y.data(), pool_of(threads), level,
                                       scratch);
                            check_output(ref, y);

                            std::vector<float> a(rows.size() + 1, 12345.0f);
                            ffn_activations_rows(w, l.in, rows.data(), rows.size(), a.data(), pool_of(threads), level,
                                                 scratch);
                            size_t bad = 0;
                            for (size_t j = 0; j < rows.size(); ++j) {
                                const RefNeuron nr = ref_neuron(l, act, with_bias, rows[j]);
                                if (!(std::fabs(a[j] - nr.a) <= 2.0 * nr.slack + 1e-6 * std::fabs(nr.a) + 1e-30)) {
                                    ++bad;
                                }
                            }
                            REQUIRE(bad == 0);
                            REQUIRE(a[rows.size()] == 12345.0f);  // nothing written past n
                        }
                    }
                }
            }
        }
    }
}

TEST_CASE("float weights with widths that are not a multiple of the SIMD width", "[cpu][sparse]") {
    for (WeightType t : {WeightType::F32, WeightType::F16, WeightType::BF16}) {
        for (size_t n_embd : {size_t{7}, size_t{1000}}) {
            Layer l;
            build_layer(l, t, 300, n_embd, 9);
            const auto lists = test_lists(300, 3);
            const std::vector<float> y0 = random_vector(n_embd, 5, 0.1f);
            for (IsaLevel level : available_levels()) {
                for (int threads : {1, 3}) {
                    SparseFfnScratch scratch;
                    for (FfnActivation act : kActivations) {
                        const SparseFfnWeights w = l.weights(act, true);
                        std::vector<float> y = y0;
                        sparse_ffn(w, l.in, lists[0].data(), lists[0].size(), y.data(), pool_of(threads), level,
                                   scratch);
                        INFO(weight_type_name(t) << " n_embd " << n_embd << " " << isa_level_name(level) << " "
                                                 << act_name(act));
                        check_ffn_output(l, act, true, lists[0], y0, y);
                    }
                }
            }
        }
    }
}

TEST_CASE("a neuron whose activation is 0 reads neither its down row nor (after a gate <= 0) its up row",
          "[cpu][sparse]") {
    const size_t n_ff = 400, n_embd = 256;
    for (WeightType t : all_types()) {
        Layer l;
        build_layer(l, t, n_ff, n_embd, 300 + static_cast<uint32_t>(t));
        std::vector<uint32_t> rows(n_ff);
        std::iota(rows.begin(), rows.end(), 0u);
        std::reverse(rows.begin(), rows.end());
        for (FfnActivation act : {FfnActivation::Reglu, FfnActivation::Drelu, FfnActivation::Relu}) {
            // Poison the rows that must not be read, only where the reference is clear of the kink by a margin far
            // beyond the kernels' error (so the kernel surely agrees that the value is 0).
            Layer poisoned;
            build_layer(poisoned, t, n_ff, n_embd, 300 + static_cast<uint32_t>(t));
            size_t dead = 0, gate_dead_rows = 0, gate_live_rows = 0, live = 0;
            for (uint32_t r = 0; r < n_ff; ++r) {
                const bool gate_dead = act != FfnActivation::Relu && l.g[r] < -1e-3 * l.g_abs[r];
                const bool gate_live = act == FfnActivation::Relu || l.g[r] > 1e-3 * l.g_abs[r];
                const double u = l.u[r] + l.bias[r];
                const double u_margin = 1e-3 * (l.u_abs[r] + std::fabs(l.bias[r]));
                const bool up_dead = act != FfnActivation::Reglu && u < -u_margin;
                const bool up_live = act == FfnActivation::Reglu ? std::fabs(u) > u_margin : u > u_margin;
                if (gate_dead) poison_row(poisoned.up, r);
                if (gate_dead || up_dead) {
                    poison_row(poisoned.down_t, r);
                    ++dead;
                }
                gate_dead_rows += gate_dead;
                gate_live_rows += gate_live;
                live += gate_live && up_live;
            }
            REQUIRE(dead > n_ff / 5);  // the test really poisons something
            for (IsaLevel level : available_levels()) {
                for (int threads : {1, 2, 3}) {
                    INFO(weight_type_name(t) << " " << act_name(act) << " " << isa_level_name(level) << " threads "
                                             << threads);
                    SparseFfnScratch scratch;
                    std::vector<float> clean(n_embd, 0.5f), dirty(n_embd, 0.5f);
                    sparse_ffn(l.weights(act, true), l.in, rows.data(), n_ff, clean.data(), pool_of(threads), level,
                               scratch);
                    sparse_ffn(poisoned.weights(act, true), poisoned.in, rows.data(), n_ff, dirty.data(),
                               pool_of(threads), level, scratch);
                    for (float v : dirty) REQUIRE(std::isfinite(v));
                    REQUIRE(same_bits(clean, dirty));
                    // The rows counted as read: every gate row; up rows of the neurons the gate left alive; down
                    // rows of those with a != 0 (bounded by the clear decisions on either side of the kink).
                    const SparseFfnScratch::RowsRead &read = scratch.last_read;
                    REQUIRE(read.gate == (act == FfnActivation::Relu ? 0u : n_ff));
                    REQUIRE(read.up >= gate_live_rows);
                    REQUIRE(read.up <= n_ff - gate_dead_rows);
                    REQUIRE(read.down >= live);
                    REQUIRE(read.down <= n_ff - dead);
                }
            }
        }
    }
}

TEST_CASE("sparse_ffn is bit-identical across runs with the same thread count", "[cpu][sparse]") {
    const size_t n_ff = 1024, n_embd = 512;
    for (WeightType t : {WeightType::F16, WeightType::Q4_0}) {
        Layer l;
        build_layer(l, t, n_ff, n_embd, 41);
        std::vector<uint32_t> rows = test_lists(n_ff, 2)[0];
        const SparseFfnWeights w = l.weights(FfnActivation::Reglu, true);
        for (IsaLevel level : available_levels()) {
            for (int threads : {1, 2, 3}) {
                SparseFfnScratch scratch;
                std::vector<float> first(n_embd, 0.0f);
                sparse_ffn(w, l.in, rows.data(), rows.size(), first.data(), pool_of(threads), level, scratch);
                for (int rep = 0; rep < 6; ++rep) {
                    SparseFfnScratch fresh;  // also: the scratch's history does not matter
                    std::vector<float> again(n_embd, 0.0f);
                    sparse_ffn(w, l.in, rows.data(), rows.size(), again.data(), pool_of(threads), level,
                               rep % 2 ? scratch : fresh);
                    REQUIRE(same_bits(first, again));
                }
                // The activations do not depend on the thread count at all.
                std::vector<float> a1(rows.size()), a3(rows.size());
                ffn_activations_rows(w, l.in, rows.data(), rows.size(), a1.data(), nullptr, level, scratch);
                ffn_activations_rows(w, l.in, rows.data(), rows.size(), a3.data(), pool_of(threads), level, scratch);
                REQUIRE(same_bits(a1, a3));
            }
        }
    }
}

TEST_CASE("sparse_ffn over every neuron equals the dense FFN (matvec, activation, axpy_rows)", "[cpu][sparse]") {
    const size_t n_ff = 512, n_embd = 384;
    for (WeightType t : all_types()) {
        Layer l;
        build_layer(l, t, n_ff, n_embd, 61);
        std::vector<uint32_t> all(n_ff);
        std::iota(all.begin(), all.end(), 0u);
        for (IsaLevel level : available_levels()) {
            for (FfnActivation act : kActivations) {
                INFO(weight_type_name(t) << " " << isa_level_name(level) << " " << act_name(act));
                // Dense: all gate and up dots, the activation in double, then every down row.
                std::vector<float> g(n_ff), u(n_ff), a(n_ff);
                matvec(l.gate.w, l.in, 0, n_ff, g.data(), nullptr, level);
                matvec(l.up.w, l.in, 0, n_ff, u.data(), nullptr, level);
                for (size_t i = 0; i < n_ff; ++i) {
                    const double gi = g[i], ui = static_cast<double>(u[i]) + l.bias[i];
                    double ai = 0.0;
                    if (act == FfnActivation::Silu) ai = gi / (1.0 + std::exp(-gi)) * ui;
                    if (act == FfnActivation::Reglu) ai = gi > 0 ? gi * ui : 0.0;
                    if (act == FfnActivation::Drelu) ai = gi > 0 && ui > 0 ? gi * ui : 0.0;
                    if (act == FfnActivation::Relu) ai = ui > 0 ? ui : 0.0;
                    a[i] = static_cast<float>(ai);
                }
                std::vector<float> dense(n_embd, 0.0f), sparse(n_embd, 0.0f);
                axpy_rows(l.down_t.w, a.data(), nullptr, n_ff, dense.data(), nullptr, level);
                SparseFfnScratch scratch;
                sparse_ffn(l.weights(act, true), l.in, all.data(), n_ff, sparse.data(), pool_of(3), level, scratch);
                std::vector<double> dense_d(dense.begin(), dense.end());
                const double err = relative_l2(dense_d, sparse);
                CHECK(err <= 1e-5);
            }
        }
    }
}

TEST_CASE("sparse_ffn rejects bad arguments before doing any work", "[cpu][sparse]") {
    Layer l;
    build_layer(l, WeightType::Q4_0, 64, 128, 5);
    const SparseFfnWeights good = l.weights(FfnActivation::Reglu, true);
    const std::vector<uint32_t> rows = {1, 5, 63};
    std::vector<float> y(128, 1.0f), a(3, 1.0f);
    const std::vector<float> y_before = y;
    SparseFfnScratch s;
    auto run = [&](const SparseFfnWeights &w, const MatvecInput &in, const uint32_t *r, size_t n, float *out) {
        return status_of([&] { sparse_ffn(w, in, r, n, out, nullptr, IsaLevel::Scalar, s); });
    };
    CHECK(run(good, l.in, rows.data(), 3, y.data()) == PI_OK);
    y = y_before;

    const uint32_t bad_rows[3] = {1, 64, 2};
    CHECK(run(good, l.in, bad_rows, 3, y.data()) == PI_ERR_INVALID_ARGUMENT);
    CHECK(run(good, l.in, nullptr, 3, y.data()) == PI_ERR_INVALID_ARGUMENT);
    CHECK(run(good, l.in, rows.data(), 3, nullptr) == PI_ERR_INVALID_ARGUMENT);
    MatvecInput no_q8 = l.in;
    no_q8.q8 = nullptr;
    CHECK(run(good, no_q8, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);
    MatvecInput short_x = l.in;
    short_x.n = 96;
    CHECK(run(good, short_x, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);
    SparseFfnWeights w = good;
    w.gate = WeightMatrix{};
    CHECK(run(w, l.in, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);  // ReGLU without a gate
    w = good;
    w.gate.n_rows = 32;
    CHECK(run(w, l.in, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);  // gate and up disagree
    w = good;
    w.down_t.n_rows = 63;
    CHECK(run(w, l.in, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);  // one down row per neuron
    w = good;
    w.down_t.n_cols = 100;  // not whole Q4_0 blocks
    CHECK(run(w, l.in, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);
    w = good;
    w.activation = static_cast<FfnActivation>(7);
    CHECK(run(w, l.in, rows.data(), 3, y.data()) == PI_ERR_INVALID_ARGUMENT);
    CHECK(same_bits(y, y_before));  // no failed call wrote anything

    // Empty list: nothing to do, nothing needed.
    CHECK(run(good, l.in, nullptr, 0, nullptr) == PI_OK);
    // ReLU needs no gate; ffn_activations_rows needs no down matrix.
    w = l.weights(FfnActivation::Relu, false);
    CHECK(run(w, l.in, rows.data(), 3, y.data()) == PI_OK);
    w.down_t = WeightMatrix{};
    CHECK(status_of([&] {
              ffn_activations_rows(w, l.in, rows.data(), 3, a.data(), nullptr, IsaLevel::Scalar, s);
          }) == PI_OK);
    CHECK(status_of([&] {
              ffn_activations_rows(w, l.in, rows.data(), 3, nullptr, nullptr, IsaLevel::Scalar, s);
          }) == PI_ERR_INVALID_ARGUMENT);
    CHECK(status_of([&] {
              ffn_activations_rows(w, l.in, bad_rows, 3, a.data(), nullptr, IsaLevel::Scalar, s);
          }) == PI_ERR_INVALID_ARGUMENT);
    if (best_isa_level() < IsaLevel::Avx512) {
        CHECK(status_of([&] { sparse_ffn(good, l.in, rows.data(), 3, y.data(), nullptr, IsaLevel::Avx512, s); }) ==
              PI_ERR_UNSUPPORTED);
    }
}
