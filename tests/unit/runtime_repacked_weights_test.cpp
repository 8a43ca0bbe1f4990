// Repacked weights (runtime/repacked_weights.h): which matrices a CPU-executor model copies as Q4_0R (every
// dot-kernel matrix, FFN gate/up in the bundles, never down_t), as Q4_0X8 (the Q4_0 ones decode reads whole:
// attention, fc1, a quantized fc2, the output head, where n_rows % 8 == 0) and as F16X8 (attention, fc1, the output
// head; never the FFN or fc2), that each copy unpacks to its file rows, that the session bindings use them, that
// PI_Q4_REPACK=0, PI_Q4_INTERLEAVE=0 and PI_F16_INTERLEAVE=0 turn them off, and that sessions give the same bits
// either way (Q4_0X8: the same tokens, logits within a tolerance) -- sparse decode, dense decode and prefill, one
// and two threads, a sparse and a dense model of each type.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/cpu/f16_interleave.h"
#include "backends/cpu/q4_0_interleave.h"
#include "backends/cpu/q4_0_repack.h"
#include "model/model.h"
#include "runtime/ffn_bundle.h"
#include "runtime/host_layers.h"
#include "runtime/repacked_weights.h"
#include "session_test_helpers.h"
#include "tiny_model_builder.h"

using namespace pi;

namespace {

const std::string kSparseQ4 = std::string(PI_MODELS_DIR) + "/relu-llama-q4_0.gguf";
const std::string kDenseQ4 = std::string(PI_MODELS_DIR) + "/llama-q4_0.gguf";
const std::string kSparseF16 = std::string(PI_MODELS_DIR) + "/relu-llama-f16.gguf";
const std::string kDenseF16 = std::string(PI_MODELS_DIR) + "/llama-f16.gguf";

// An F16X8 matrix's rows gathered equal the F16 matrix's rows.
bool gathers_to(const cpu::WeightMatrix &packed, const cpu::WeightMatrix &file) {
    if (packed.type != cpu::WeightType::F16X8 || file.type != cpu::WeightType::F16) return false;
    if (packed.n_rows != file.n_rows || packed.n_cols != file.n_cols) return false;
    std::vector<uint16_t> back(file.n_cols);
    for (size_t r = 0; r < file.n_rows; ++r) {
        cpu::gather_f16x8_row(packed, r, back.data());
        if (std::memcmp(back.data(), file.row(r), file.n_cols * 2) != 0) return false;
    }
    return true;
}

// A Q4_0R matrix's rows unpacked equal the Q4_0 matrix's rows.
bool unpacks_to(const cpu::WeightMatrix &packed, const cpu::WeightMatrix &file) {
    if (packed.type != cpu::WeightType::Q4_0R || file.type != cpu::WeightType::Q4_0) return false;
    if (packed.n_rows != file.n_rows || packed.n_cols != file.n_cols) return false;
    const size_t row = cpu::weight_row_bytes(file.type, file.n_cols);
    std::vector<uint8_t> back(row);
    for (size_t r = 0; r < file.n_rows; ++r) {
        cpu::unpack_q4_0r_row(packed.row(r), packed.n_cols, back.data());
        if (std::memcmp(back.data(), file.row(r), row) != 0) return false;
    }
    return true;
}

// A Q4_0X8 matrix's rows gathered equal the Q4_0 matrix's rows.
bool interleaves_to(const cpu::WeightMatrix &packed, const cpu::WeightMatrix &file) {
    if (packed.type != cpu::WeightType::Q4_0X8 || file.type != cpu::WeightType::Q4_0) return false;
    if (packed.n_rows != file.n_rows || packed.n_cols != file.n_cols) return false;
    const size_t row = cpu::weight_row_bytes(file.type, file.n_cols);
    std::vector<uint8_t> back(row);
    for (size_t r = 0; r < file.n_rows; ++r) {
        cpu::gather_q4_0x8_row(packed, r, back.data());
        if (std::memcmp(back.data(), file.row(r), row) != 0) return false;
    }
    return true;
}

// Sessions on a sparse and a dense model decode the same tokens with the same logit bits whether the load-time
// copies that `switch_env` controls are made (=1) or not (=0): sparse and dense decode, prefill, 1 and 2 threads.
// A copy whose dot has its own arithmetic (Q4_0X8: a block's integer converted once) gives logits within a relative
// L2 error of `tolerance` instead, and the same bits when run again.
void check_same_sessions(const char *switch_env, const std::string &sparse_model, const std::string &dense_model,
                         const std::vector<pi_token> &prompt = test::short_prompt(), double tolerance = 0.0,
                         bool dense_logits_change = true) {
    for (const std::string &path : {sparse_model, dense_model}) {
        REQUIRE(std::filesystem::exists(path));
        for (int32_t sparse : {PI_SPARSE_ON, PI_SPARSE_OFF}) {
            if (sparse == PI_SPARSE_ON && path == dense_model) continue;  // no predictors
            for (int32_t threads : {1, 2}) {
                INFO(path << (sparse == PI_SPARSE_ON ? " sparse" : " dense") << " threads " << threads);
                const pi_session_params p = test::greedy_params(threads, sparse);
                std::vector<pi_token> ta, tb, tc;
                std::vector<float> a, b, c;
                {
                    test::ScopedEnv on(switch_env, "1");
                    test::ModelHandle model(path);
                    a = test::run_session(model.model, p, prompt, 8, ta);
                    if (tolerance > 0.0) c = test::run_session(model.model, p, prompt, 8, tc);
                }
                {
                    test::ScopedEnv off(switch_env, "0");
                    test::ModelHandle model(path);
                    b = test::run_session(model.model, p, prompt, 8, tb);
                }
                CHECK(ta == tb);
                if (tolerance == 0.0) {
                    CHECK(test::same_bits(a, b));
                    continue;
                }
                REQUIRE(a.size() == b.size());
                double diff = 0.0, norm = 0.0;
                for (size_t i = 0; i < a.size(); ++i) {
                    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
                    norm += double(b[i]) * b[i];
                }
                // The copy's dot did run (its arithmetic differs in the last bits). On the dense model only where
                // the caller asks: its Q4_0 output head reads x quantized to 8-bit blocks with fp16 scales, which
                // absorbs last-bit differences unless one flips a rounding -- the 768-wide dense model's final x
                // differs with and without Q4_0X8 while its logits do not (with the head-major attention kernel;
                // with the position-major one a rounding flipped). Its bound types are checked instead.
                if (path == sparse_model || dense_logits_change) CHECK(diff > 0.0);
                CHECK(std::sqrt(diff / norm) <= tolerance);
                CHECK(tc == ta);
                CHECK(test::same_bits(c, a));
            }
        }
    }
}

}  // namespace

TEST_CASE("a CPU model's Q4_0 dot matrices are repacked, unpack to the file rows, and are what sessions bind",
          "[repack]") {
    REQUIRE(std::filesystem::exists(kSparseQ4));
    LoadOptions options;
    options.backend = "cpu";
    {
        test::ScopedEnv on("PI_Q4_REPACK", "1");
        test::ScopedEnv not_interleaved("PI_Q4_INTERLEAVE", "0");  // Q4_0R for the whole-read matrices too
        ::setenv("PI_FFN_BUNDLE", "1", 1);
        auto model = Model::load(kSparseQ4, options);
        ::unsetenv("PI_FFN_BUNDLE");
        REQUIRE(model->repacked());
        REQUIRE(model->ffn_bundles());
        const HostWeights bound = bind_host_weights(*model, true);
        for (size_t l = 0; l < model->hparams().n_layer; ++l) {
            INFO("layer " << l);
            const LayerWeights &L = model->weights().layers[l];
            const HostLayer &M = bound.layers[l];
            // Read back from the file after its pages were released (re-faulted from the page cache).
            CHECK(unpacks_to(M.wq, as_matrix(L.wq)));
            CHECK(unpacks_to(M.wk, as_matrix(L.wk)));
            CHECK(unpacks_to(M.wv, as_matrix(L.wv)));
            CHECK(unpacks_to(M.wo, as_matrix(L.wo)));
            CHECK(unpacks_to(M.fc1, as_matrix(L.fc1)));
            CHECK(unpacks_to(M.fc2, as_matrix(L.fc2)));
            // The bundle repacks gate and up; down_t (axpy rows) stays Q4_0; the store does not copy them again.
            const FfnBundle *b = model->ffn_bundles()->layer(l);
            REQUIRE(b);
            CHECK(M.ffn.gate.data == b->gate().data);
            CHECK(unpacks_to(M.ffn.gate, as_matrix(L.ffn_gate)));
            CHECK(unpacks_to(M.ffn.up, as_matrix(L.ffn_up)));
            CHECK(M.ffn.down_t.type == cpu::WeightType::Q4_0);
            CHECK(model->repacked()->find(L.ffn_gate.data) == nullptr);
            CHECK(model->repacked()->find(L.ffn_down_t.data) == nullptr);
        }
        CHECK(unpacks_to(bound.output, as_matrix(model->weights().output)));
    }
    {
        test::ScopedEnv off("PI_Q4_REPACK", "0");
        test::ScopedEnv not_interleaved("PI_Q4_INTERLEAVE", "0");
        auto model = Model::load(kSparseQ4, options);
        CHECK_FALSE(model->repacked());
        const HostWeights bound = bind_host_weights(*model, true);
        CHECK(bound.layers[0].wq.type == cpu::WeightType::Q4_0);
        CHECK(bound.layers[0].ffn.gate.type == cpu::WeightType::Q4_0);
    }
}

TEST_CASE("sessions give the same bits with and without repacked Q4_0 weights", "[repack]") {
    check_same_sessions("PI_Q4_REPACK", kSparseQ4, kDenseQ4);
}

TEST_CASE("a CPU model's whole-read F16 matrices are interleaved (F16X8), gather to the file rows, and are bound",
          "[repack]") {
    REQUIRE(std::filesystem::exists(kSparseF16));
    LoadOptions options;
    options.backend = "cpu";
    {
        test::ScopedEnv on("PI_F16_INTERLEAVE", "1");
        auto model = Model::load(kSparseF16, options);
        REQUIRE(model->repacked());
        const HostWeights bound = bind_host_weights(*model, true);
        for (size_t l = 0; l < model->hparams().n_layer; ++l) {
            INFO("layer " << l);
            const LayerWeights &L = model->weights().layers[l];
            const HostLayer &M = bound.layers[l];
            CHECK(gathers_to(M.wq, as_matrix(L.wq)));
            CHECK(gathers_to(M.wk, as_matrix(L.wk)));
            CHECK(gathers_to(M.wv, as_matrix(L.wv)));
            CHECK(gathers_to(M.wo, as_matrix(L.wo)));
            CHECK(gathers_to(M.fc1, as_matrix(L.fc1)));
            // Read by row lists (the sparse FFN, axpy): left as they are.
            CHECK(M.fc2.type == cpu::WeightType::F16);
            CHECK(model->repacked()->find(L.ffn_gate.data) == nullptr);
            CHECK(model->repacked()->find(L.ffn_up.data) == nullptr);
            CHECK(model->repacked()->find(L.ffn_down_t.data) == nullptr);
        }
        CHECK(gathers_to(bound.output, as_matrix(model->weights().output)));
    }
    {
        test::ScopedEnv off("PI_F16_INTERLEAVE", "0");
        auto model = Model::load(kSparseF16, options);
        CHECK_FALSE(model->repacked());
        CHECK(bind_host_weights(*model, true).layers[0].wq.type == cpu::WeightType::F16);
    }
}

TEST_CASE("sessions give the same bits with and without interleaved F16 weights", "[repack]") {
    check_same_sessions("PI_F16_INTERLEAVE", kSparseF16, kDenseF16);
}

TEST_CASE("a CPU model's whole-read Q4_0 matrices are interleaved (Q4_0X8) where they fit, the rest repacked, and "
          "both are bound",
          "[repack]") {
    REQUIRE(std::filesystem::exists(kSparseQ4));
    LoadOptions options;
    options.backend = "cpu";
    {
        test::ScopedEnv on("PI_Q4_INTERLEAVE", "1");
        test::ScopedEnv repack("PI_Q4_REPACK", "1");
        test::ScopedEnv bundles("PI_FFN_BUNDLE", "1");
        auto model = Model::load(kSparseQ4, options);
        REQUIRE(model->repacked());
        const HostWeights bound = bind_host_weights(*model, true);
        size_t interleaved = 0;
        // Eight-row matrices become Q4_0X8, the others Q4_0R (the tiny model's key and value rows and its output
        // head, depending on its shapes).
        const auto check_whole = [&](const cpu::WeightMatrix &got, const WeightView &file) {
            const cpu::WeightMatrix m = as_matrix(file);
            if (cpu::q4_0x8_fits(m)) {
                CHECK(interleaves_to(got, m));
                ++interleaved;
            } else {
                CHECK(unpacks_to(got, m));
            }
        };
        for (size_t l = 0; l < model->hparams().n_layer; ++l) {
            INFO("layer " << l);
            const LayerWeights &L = model->weights().layers[l];
            const HostLayer &M = bound.layers[l];
            check_whole(M.wq, L.wq);
            check_whole(M.wk, L.wk);
            check_whole(M.wv, L.wv);
            check_whole(M.wo, L.wo);
            check_whole(M.fc1, L.fc1);
            check_whole(M.fc2, L.fc2);  // quantized: one matvec per step
            // Read by row lists (the sparse FFN): Q4_0R in the bundle, down_t as in the file.
            CHECK(unpacks_to(M.ffn.gate, as_matrix(L.ffn_gate)));
            CHECK(unpacks_to(M.ffn.up, as_matrix(L.ffn_up)));
            CHECK(M.ffn.down_t.type == cpu::WeightType::Q4_0);
        }
        check_whole(bound.output, model->weights().output);
        CHECK(cpu::q4_0x8_fits(as_matrix(model->weights().layers[0].wq)));  // so the model tests the layout
        CHECK(interleaved >= model->hparams().n_layer);
    }
    {
        test::ScopedEnv off("PI_Q4_INTERLEAVE", "0");
        test::ScopedEnv repack("PI_Q4_REPACK", "1");
        auto model = Model::load(kSparseQ4, options);
        REQUIRE(model->repacked());
        const HostWeights bound = bind_host_weights(*model, true);
        CHECK(bound.layers[0].wq.type == cpu::WeightType::Q4_0R);
        CHECK(bound.layers[0].fc1.type == cpu::WeightType::Q4_0R);
    }
}

// Q4_0X8 logits against the Q4_0R ones: the same integers rounded differently in float, and so now and then an
// activation rounded to the next int8 step in a later product; the reference suite's bound for quantized models.
constexpr double kQ4X8Tolerance = 2e-3;

TEST_CASE("sessions give the same tokens with and without interleaved Q4_0 weights", "[repack]") {
    check_same_sessions("PI_Q4_INTERLEAVE", kSparseQ4, kDenseQ4, test::short_prompt(), kQ4X8Tolerance);
}

// The tiny test models' rows are 64 or 32 weights: only the dot's last, short step. A model of 768-column rows (a
// full 2304-byte step of 16 blocks, then a last one of 8) takes its main loop too.
TEST_CASE("sessions give the same tokens with and without Q4_0X8 on a model of full steps", "[repack]") {
    test::TinyModelSpec spec;
    spec.n_embd = 768;
    spec.n_ff = 1024;
    spec.n_head = 6;
    spec.n_head_kv = 2;
    spec.n_ctx_train = 128;
    spec.q4_0 = true;
    spec.predictors = true;
    const std::string sparse = test::write_tiny_model(spec, "q4x8-sparse");
    spec.predictors = false;
    const std::string dense = test::write_tiny_model(spec, "q4x8-dense");
    {
        test::ScopedEnv on("PI_Q4_INTERLEAVE", "1");
        LoadOptions options;
        options.backend = "cpu";
        auto model = Model::load(sparse, options);
        const HostWeights bound = bind_host_weights(*model, true);
        CHECK(bound.layers[0].wq.type == cpu::WeightType::Q4_0X8);
        CHECK(bound.layers[0].wq.n_cols == 768);
        CHECK(bound.layers[0].fc1.type == cpu::WeightType::Q4_0X8);
        auto dense_model = Model::load(dense, options);
        const HostWeights dense_bound = bind_host_weights(*dense_model, true);
        for (const cpu::WeightMatrix *m : {&dense_bound.layers[0].wq, &dense_bound.layers[0].wk,
                                           &dense_bound.layers[0].wv, &dense_bound.layers[0].wo}) {
            CHECK(m->type == cpu::WeightType::Q4_0X8);
        }
    }
    // This model's random weights amplify rounding far more than the reference suite's: two existing paths of the
    // same Q4_0 values, AVX2 and AVX-512 (Q4_0R), differ by a relative L2 of 0.009-0.084 in these sessions (measured
    // when Q4_0X8 changed, docs/CPU.md). So the bound here only catches a wrong layout (errors of order 1); the
    // kernel test (cpu_q4_0_interleave_test.cpp) holds each row to the integer reference.
    check_same_sessions("PI_Q4_INTERLEAVE", sparse, dense, {5, 70, 200, 41, 9, 123, 17, 88}, 0.1,
                        /*dense_logits_change=*/false);
}
