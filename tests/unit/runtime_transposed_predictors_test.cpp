// Transposed predictor weights (runtime/transposed_predictors.h): a CPU-executor model with float predictors keeps
// every layer's fc2 transposed (the file's values, moved), sessions bind it, quantized predictors and
// PI_PRED_TRANSPOSE=0 keep the row dots, and a sparse session decodes the same tokens either way with scores that
// differ only by rounding; pi_session_predictor_read reports the bytes skipped.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "model/model.h"
#include "runtime/host_layers.h"
#include "runtime/transposed_predictors.h"
#include "session_test_helpers.h"

using namespace pi;

namespace {

std::string model_path(const char *name) { return std::string(PI_MODELS_DIR) + "/" + name + ".gguf"; }

// t is m transposed, element for element.
bool is_transpose(const cpu::WeightMatrix &t, const cpu::WeightMatrix &m) {
    if (t.type != m.type || t.n_rows != m.n_cols || t.n_cols != m.n_rows) return false;
    const size_t es = cpu::weight_row_bytes(m.type, 1);
    for (size_t i = 0; i < m.n_rows; ++i) {
        for (size_t j = 0; j < m.n_cols; ++j) {
            if (std::memcmp(t.row(j) + i * es, m.row(i) + j * es, es) != 0) return false;
        }
    }
    return true;
}

std::vector<float> layer_values(pi_session *s, pi_status (*fn)(const pi_session *, float *, size_t, size_t *)) {
    size_t n = 0;
    std::vector<float> out(64);
    REQUIRE(fn(s, out.data(), out.size(), &n) == PI_OK);
    out.resize(n);
    return out;
}

}  // namespace

TEST_CASE("a CPU model keeps float fc2 transposed, quantized predictors and PI_PRED_TRANSPOSE=0 do not",
          "[predictor]") {
    LoadOptions options;
    options.backend = "cpu";
    for (const char *name : {"relu-llama-f16", "relu-llama-f32", "relu-llama-bf16", "falcon-f16", "opt-f32"}) {
        INFO(name);
        REQUIRE(std::filesystem::exists(model_path(name)));
        auto model = Model::load(model_path(name), options);
        REQUIRE(model->transposed_predictors());
        const HostWeights bound = bind_host_weights(*model, true);
        for (size_t l = 0; l < model->hparams().n_layer; ++l) {
            INFO("layer " << l);
            const cpu::WeightMatrix &t = bound.layers[l].fc2_t;
            REQUIRE(t.data == model->transposed_predictors()->fc2_t(l)->data);
            CHECK(t.row_stride % 64 == 0);
            // The file's rows, read back after their pages were released.
            CHECK(is_transpose(t, as_matrix(model->weights().layers[l].fc2)));
        }
    }
    for (const char *name : {"relu-llama-q4_0", "bamboo-q8_0"}) {
        INFO(name);
        auto model = Model::load(model_path(name), options);
        CHECK_FALSE(model->transposed_predictors());
        CHECK(bind_host_weights(*model, true).layers[0].fc2_t.data == nullptr);
    }
    {
        auto dense = Model::load(model_path("llama-f16"), options);
        CHECK_FALSE(dense->transposed_predictors());
    }
    test::ScopedEnv off("PI_PRED_TRANSPOSE", "0");
    auto model = Model::load(model_path("relu-llama-f16"), options);
    CHECK_FALSE(model->transposed_predictors());
}

namespace {

// One model's greedy run (prompt + 12 steps: tokens and last logits) and, in a second session, the predictor bytes
// read per layer over 6 decode steps (checked to be 0 before the first).
struct Decoded {
    std::vector<pi_token> tokens;
    std::vector<float> logits, predictor_read;
};

Decoded decode(const char *name, const pi_session_params &p) {
    Decoded d;
    test::ModelHandle model(model_path(name));
    d.logits = test::run_session(model.model, p, test::short_prompt(), 12, d.tokens);
    pi_session *raw = nullptr;
    REQUIRE(pi_session_create(model.model, &p, &raw) == PI_OK);
    test::SessionPtr s(raw, pi_session_free);
    for (float f : layer_values(s.get(), pi_session_predictor_read)) CHECK(f == 0.0f);
    REQUIRE(pi_session_eval(s.get(), test::short_prompt().data(), test::short_prompt().size()) == PI_OK);
    std::vector<pi_token> out;
    REQUIRE(test::generate(s.get(), 6, out) == PI_OK);
    d.predictor_read = layer_values(s.get(), pi_session_predictor_read);
    return d;
}

}  // namespace

TEST_CASE("sparse sessions decode the same tokens with and without the transposed fc2, and report what they read",
          "[predictor]") {
    for (const char *name : {"relu-llama-f16", "prosparse-f32", "falcon-bf16", "bamboo-f16", "opt-f16"}) {
        for (int32_t threads : {1, 2}) {
            INFO(name << " threads " << threads);
            const pi_session_params p = test::greedy_params(threads, PI_SPARSE_ON);
            const Decoded t = decode(name, p);
            Decoded rows;
            {
                test::ScopedEnv off("PI_PRED_TRANSPOSE", "0");
                rows = decode(name, p);
            }
            CHECK(t.tokens == rows.tokens);
            REQUIRE(t.logits.size() == rows.logits.size());
            double err = 0.0, norm = 0.0;
            for (size_t i = 0; i < t.logits.size(); ++i) {
                err += (double(t.logits[i]) - rows.logits[i]) * (double(t.logits[i]) - rows.logits[i]);
                norm += double(rows.logits[i]) * rows.logits[i];
            }
            CHECK(std::sqrt(err / norm) < 1e-4);  // rounding of the scores only: the same neurons fire
            // Row dots read the whole predictor; the transposed fc2 skips the rows of zero hidden units (the tiny
            // models' predictors have random fc1 rows: some units are zero on every token, never all of them).
            REQUIRE(rows.predictor_read.size() == t.predictor_read.size());
            for (size_t l = 0; l < t.predictor_read.size(); ++l) {
                INFO("layer " << l);
                CHECK(rows.predictor_read[l] == 1.0f);
                CHECK(t.predictor_read[l] > 0.2f);
                CHECK(t.predictor_read[l] < 1.0f);
            }
        }
    }
}

TEST_CASE("pi_session_predictor_read rejects bad arguments", "[predictor]") {
    test::ModelHandle model(model_path("relu-llama-f16"));
    pi_session_params p;
    pi_session_params_init(&p);
    p.sparse = PI_SPARSE_ON;
    pi_session *raw = nullptr;
    REQUIRE(pi_session_create(model.model, &p, &raw) == PI_OK);
    test::SessionPtr s(raw, pi_session_free);
    size_t n = 0;
    float one = 0.0f;
    CHECK(pi_session_predictor_read(nullptr, &one, 1, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_predictor_read(s.get(), &one, 1, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_predictor_read(s.get(), &one, 0, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n > 0);
    std::vector<float> out(n);
    CHECK(pi_session_predictor_read(s.get(), nullptr, n, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_predictor_read(s.get(), out.data(), out.size(), &n) == PI_OK);
    test::ModelHandle dense(model_path("llama-f16"));
    pi_session *draw = nullptr;
    REQUIRE(pi_session_create(dense.model, nullptr, &draw) == PI_OK);
    test::SessionPtr ds(draw, pi_session_free);
    CHECK(pi_session_predictor_read(ds.get(), out.data(), out.size(), &n) == PI_ERR_INVALID_ARGUMENT);  // no predictors
}
