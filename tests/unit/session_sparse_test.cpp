// Sparse sessions through the C API: the sparse mode and threshold settings, the measured sparsity, activation
// counts and profiles, their errors, determinism, and sparse sessions on several threads at once (this binary also
// runs under ThreadSanitizer in CI).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "session_test_helpers.h"
#include "common/error.h"
#include "sparse/profile_file.h"

using namespace pi::test;

namespace {

TinyModelSpec sparse_spec() {
    TinyModelSpec spec;
    spec.predictors = true;
    spec.n_ff = 96;
    return spec;
}

SessionPtr make_sparse_session(pi_model *model, int32_t mode, bool profile, int32_t n_threads = 1,
                               float threshold = NAN) {
    pi_session_params p = session_params(SessionSettings());
    p.n_threads = n_threads;
    p.sparse = mode;
    p.profile_activations = profile ? 1 : 0;
    p.sparse_threshold = threshold;
    pi_session *s = nullptr;
    REQUIRE(pi_session_create(model, &p, &s) == PI_OK);
    return SessionPtr(s, pi_session_free);
}

std::vector<float> sparsity(const pi_session *s, uint64_t *n_tokens = nullptr) {
    size_t n = 0;
    REQUIRE(pi_session_sparsity(s, nullptr, 0, &n, nullptr) == PI_ERR_BUFFER_TOO_SMALL);
    std::vector<float> out(n);
    REQUIRE(pi_session_sparsity(s, out.data(), out.size(), &n, n_tokens) == PI_OK);
    return out;
}

std::vector<pi_token> run(pi_session *s, size_t n_prompt, size_t n_gen, uint32_t salt) {
    const std::vector<pi_token> prompt = prompt_tokens(n_prompt, salt);
    REQUIRE(pi_session_eval(s, prompt.data(), prompt.size()) == PI_OK);
    std::vector<pi_token> out;
    REQUIRE(generate(s, n_gen, out) == PI_OK);
    return out;
}

}  // namespace

TEST_CASE("sparse sessions: modes, defaults and errors", "[sparse]") {
    ModelHandle sparse(sparse_spec(), "sparse_modes");
    ModelHandle dense(TinyModelSpec(), "dense_modes");
    pi_session_params p;
    pi_session_params_init(&p);
    CHECK(p.sparse == PI_SPARSE_AUTO);
    CHECK(std::isnan(p.sparse_threshold));
    CHECK(p.profile_activations == 0);

    pi_session *s = nullptr;
    p.sparse = 7;
    CHECK(pi_session_create(sparse.model, &p, &s) == PI_ERR_INVALID_ARGUMENT);
    CHECK(std::string(pi_last_error()).find("pi_sparse_mode") != std::string::npos);
    CHECK(s == nullptr);
    p.sparse = PI_SPARSE_ON;
    CHECK(pi_session_create(dense.model, &p, &s) == PI_ERR_INVALID_ARGUMENT);
    CHECK(std::string(pi_last_error()).find("predictors") != std::string::npos);
    p.sparse = PI_SPARSE_AUTO;
    p.profile_activations = 1;
    CHECK(pi_session_create(dense.model, &p, &s) == PI_ERR_INVALID_ARGUMENT);
    CHECK(s == nullptr);

    // A dense model: no statistics to report.
    SessionPtr d = make_session(dense.model);
    size_t n = 0;
    CHECK(pi_session_sparsity(d.get(), nullptr, 0, &n, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_save_profile(d.get(), "/tmp/never-written.gguf") == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_reset_stats(d.get()) == PI_OK);

    // NULLs.
    CHECK(pi_session_sparsity(nullptr, nullptr, 0, &n, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_sparsity(d.get(), nullptr, 0, nullptr, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_activation_counts(nullptr, 0, nullptr, 0, &n, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_save_profile(nullptr, "x") == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_reset_stats(nullptr) == PI_ERR_INVALID_ARGUMENT);
}

TEST_CASE("sparse sessions: measured sparsity and counts", "[sparse]") {
    ModelHandle model(sparse_spec(), "sparse_stats");
    SessionPtr s = make_sparse_session(model.model, PI_SPARSE_ON, true);
    uint64_t tokens = 99;
    std::vector<float> f = sparsity(s.get(), &tokens);
    CHECK(tokens == 0);
    REQUIRE(f.size() == 2);
    CHECK(f[0] == 0.0f);

    run(s.get(), 6, 10, 1);
    f = sparsity(s.get(), &tokens);
    CHECK(tokens == 16);  // profiling: the 6 prompt tokens are predicted too, then 10 decode steps
    std::vector<uint64_t> counts(96);
    for (uint32_t l = 0; l < 2; ++l) {
        size_t n_out = 0;
        uint64_t n_tok = 0;
        CHECK(pi_session_activation_counts(s.get(), l, nullptr, 0, &n_out, nullptr) == PI_ERR_BUFFER_TOO_SMALL);
        CHECK(n_out == 96);
        REQUIRE(pi_session_activation_counts(s.get(), l, counts.data(), counts.size(), &n_out, &n_tok) == PI_OK);
        CHECK(n_tok == 16);
        uint64_t sum = 0;
        for (uint64_t c : counts) {
            CHECK(c <= 16);
            sum += c;
        }
        // The counts and the reported mean fraction describe the same decisions.
        CHECK(std::fabs(double(sum) / (16.0 * 96.0) - f[l]) < 1e-6);
        CHECK(f[l] > 0.0f);
        CHECK(f[l] < 1.0f);
    }
    size_t n_out = 0;
    CHECK(pi_session_activation_counts(s.get(), 2, counts.data(), counts.size(), &n_out, nullptr) ==
          PI_ERR_INVALID_ARGUMENT);

    // pi_session_reset keeps the statistics; pi_session_reset_stats clears them.
    REQUIRE(pi_session_reset(s.get()) == PI_OK);
    sparsity(s.get(), &tokens);
    CHECK(tokens == 16);
    REQUIRE(pi_session_reset_stats(s.get()) == PI_OK);
    f = sparsity(s.get(), &tokens);
    CHECK(tokens == 0);
    CHECK(f[1] == 0.0f);

    // Without profiling: sparsity yes (decode steps only), counts no.
    SessionPtr q = make_sparse_session(model.model, PI_SPARSE_ON, false);
    run(q.get(), 6, 4, 2);
    sparsity(q.get(), &tokens);
    CHECK(tokens == 4);
    CHECK(pi_session_activation_counts(q.get(), 0, counts.data(), counts.size(), &n_out, nullptr) ==
          PI_ERR_INVALID_ARGUMENT);
    CHECK(std::string(pi_last_error()).find("profile_activations") != std::string::npos);
}

TEST_CASE("sparse sessions: FFN rows read", "[sparse]") {
    ModelHandle model(sparse_spec(), "sparse_rows_read");
    const auto rows_read = [](const pi_session *s) {
        size_t n = 0;
        REQUIRE(pi_session_ffn_rows_read(s, nullptr, 0, &n) == PI_ERR_BUFFER_TOO_SMALL);
        REQUIRE(n == 2);
        std::vector<float> out(n, -1.0f);
        REQUIRE(pi_session_ffn_rows_read(s, out.data(), out.size(), &n) == PI_OK);
        return out;
    };
    SessionPtr s = make_sparse_session(model.model, PI_SPARSE_ON, false);
    CHECK(rows_read(s.get()) == std::vector<float>{0.0f, 0.0f});
    run(s.get(), 6, 10, 3);
    const std::vector<float> f = sparsity(s.get()), r = rows_read(s.get());
    for (size_t l = 0; l < 2; ++l) {
        INFO("layer " << l << ": active " << f[l] << ", rows read " << r[l]);
        // This model keeps the dense ffn_down layout: the gate rows of the active neurons (f of the layer's
        // neurons), the up rows of those whose gate is positive (0 .. f), and the whole down matrix, over the
        // layer's three matrices. Both statistics average over the same 10 decode steps.
        CHECK(r[l] >= (f[l] + 1.0f) / 3.0f - 1e-6f);
        CHECK(r[l] <= (2.0f * f[l] + 1.0f) / 3.0f + 1e-6f);
        CHECK(f[l] > 0.0f);
    }
    REQUIRE(pi_session_reset_stats(s.get()) == PI_OK);
    CHECK(rows_read(s.get()) == std::vector<float>{0.0f, 0.0f});

    // Dense decode steps of this layout read every row (its ffn_down is not transposed); prompts count nothing.
    SessionPtr d = make_sparse_session(model.model, PI_SPARSE_OFF, false);
    run(d.get(), 6, 0, 4);
    CHECK(rows_read(d.get()) == std::vector<float>{0.0f, 0.0f});
    run(d.get(), 6, 4, 4);
    CHECK(rows_read(d.get()) == std::vector<float>{1.0f, 1.0f});

    // Errors: NULLs, a buffer too small, a model without predictors.
    size_t n = 0;
    float one = 0.0f;
    CHECK(pi_session_ffn_rows_read(nullptr, &one, 1, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_ffn_rows_read(s.get(), &one, 1, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_ffn_rows_read(s.get(), &one, 1, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 2);
    std::vector<float> two(2);
    CHECK(pi_session_ffn_rows_read(s.get(), nullptr, 2, &n) == PI_ERR_INVALID_ARGUMENT);
    ModelHandle dense(TinyModelSpec(), "dense_rows_read");
    SessionPtr ds = make_session(dense.model);
    CHECK(pi_session_ffn_rows_read(ds.get(), two.data(), two.size(), &n) == PI_ERR_INVALID_ARGUMENT);
}

TEST_CASE("dense decode steps of a PowerInfer-layout file read only the down rows of nonzero activations", "[sparse]") {
    ModelHandle model(std::string(PI_MODELS_DIR) + "/relu-llama-f16.gguf");  // ffn_down_t, ReGLU
    SessionPtr d = make_sparse_session(model.model, PI_SPARSE_OFF, false);
    run(d.get(), 6, 8, 5);
    size_t n = 0;
    std::vector<float> r(64);
    REQUIRE(pi_session_ffn_rows_read(d.get(), r.data(), r.size(), &n) == PI_OK);
    REQUIRE(n > 0);
    for (size_t l = 0; l < n; ++l) {
        INFO("layer " << l << ": " << r[l]);
        // Every gate and up row (2/3 of the rows), and the down rows of the neurons whose gate was positive.
        CHECK(r[l] > 2.0f / 3.0f + 0.05f);
        CHECK(r[l] < 1.0f - 0.05f);
    }
}

TEST_CASE("sparse sessions: profiles round-trip through the file", "[sparse]") {
    ModelHandle model(sparse_spec(), "sparse_profile");
    SessionPtr s = make_sparse_session(model.model, PI_SPARSE_AUTO, true);
    const std::string path =
        (std::filesystem::temp_directory_path() / ("pi-profile-" + std::to_string(::getpid()) + ".gguf")).string();
    CHECK(pi_session_save_profile(s.get(), path.c_str()) == PI_ERR_INVALID_ARGUMENT);  // nothing profiled yet
    run(s.get(), 8, 8, 3);
    CHECK(pi_session_save_profile(s.get(), "") == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_save_profile(s.get(), "/nonexistent-dir/x/profile.gguf") == PI_ERR_IO);
    REQUIRE(pi_session_save_profile(s.get(), path.c_str()) == PI_OK);

    const pi::ActivationProfile profile = pi::load_activation_profile(path, {96, 96});
    CHECK(profile.tokens == 16);
    std::vector<uint64_t> counts(96);
    for (uint32_t l = 0; l < 2; ++l) {
        size_t n_out = 0;
        REQUIRE(pi_session_activation_counts(s.get(), l, counts.data(), counts.size(), &n_out, nullptr) == PI_OK);
        for (size_t i = 0; i < 96; ++i) CHECK(profile.frequency[l][i] == float(double(counts[i]) / 16.0));
    }
    CHECK_THROWS_AS(pi::load_activation_profile(path, {96, 95}), pi::Error);   // wrong n_ff
    CHECK_THROWS_AS(pi::load_activation_profile(path, {96, 96, 96}), pi::Error);  // a missing layer
    std::remove(path.c_str());
}

TEST_CASE("sparse sessions: threshold -inf is dense, and the sparse path differs", "[sparse]") {
    ModelHandle model(sparse_spec(), "sparse_threshold");
    SessionPtr dense = make_sparse_session(model.model, PI_SPARSE_OFF, false);
    SessionPtr all = make_sparse_session(model.model, PI_SPARSE_ON, false, 1, -INFINITY);
    SessionPtr sparse = make_sparse_session(model.model, PI_SPARSE_ON, false);
    for (pi_session *s : {dense.get(), all.get(), sparse.get()}) run(s, 5, 6, 4);
    const std::vector<float> a = logits_of(dense.get()), b = logits_of(all.get()), c = logits_of(sparse.get());
    double num = 0, den = 0, diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (a[i] - b[i]) * double(a[i] - b[i]);
        den += double(a[i]) * a[i];
        diff += (a[i] - c[i]) * double(a[i] - c[i]);
    }
    CHECK(std::sqrt(num / den) < 1e-5);
    CHECK(std::sqrt(diff / den) > 1e-3);
    CHECK(sparsity(all.get())[0] == 1.0f);
}

TEST_CASE("sparse sessions: bit-identical across runs and sessions for a thread count", "[sparse]") {
    ModelHandle model(sparse_spec(), "sparse_determinism");
    for (int32_t threads : {1, 2, 3}) {
        SessionPtr a = make_sparse_session(model.model, PI_SPARSE_ON, false, threads);
        SessionPtr b = make_sparse_session(model.model, PI_SPARSE_ON, false, threads);
        CHECK(run(a.get(), 7, 12, 5) == run(b.get(), 7, 12, 5));
        CHECK(same_bits(logits_of(a.get()), logits_of(b.get())));
    }
}

TEST_CASE("sparse sessions on several threads give what each gives alone", "[sparse][threads]") {
    ModelHandle model(sparse_spec(), "sparse_threads");
    std::vector<std::vector<pi_token>> alone(3);
    for (uint32_t i = 0; i < 3; ++i) {
        SessionPtr s = make_sparse_session(model.model, PI_SPARSE_ON, true, 2);
        alone[i] = run(s.get(), 6, 16, 10 + i);
    }
    std::vector<std::vector<pi_token>> together(3);
    std::vector<pi_status> status(3, PI_OK);
    std::vector<SessionPtr> sessions;
    for (uint32_t i = 0; i < 3; ++i) sessions.push_back(make_sparse_session(model.model, PI_SPARSE_ON, true, 2));
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < 3; ++i) {
        threads.emplace_back([&, i] {
            const std::vector<pi_token> prompt = prompt_tokens(6, 10 + i);
            status[i] = pi_session_eval(sessions[i].get(), prompt.data(), prompt.size());
            if (status[i] == PI_OK) status[i] = generate(sessions[i].get(), 16, together[i]);
        });
    }
    for (std::thread &t : threads) t.join();
    for (uint32_t i = 0; i < 3; ++i) {
        CHECK(status[i] == PI_OK);
        CHECK(together[i] == alone[i]);
    }
}
