// Sessions through the C API: parameter checks, context limits, all-or-nothing eval, logits and reset.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "powerinfer/powerinfer.h"
#include "tiny_model_builder.h"

using Catch::Matchers::Contains;

namespace {

struct Fixture {
    pi_model *model = nullptr;
    Fixture() {
        pi::test::TinyModelSpec spec;
        const std::string path = pi::test::write_tiny_model(spec, "session");
        REQUIRE(pi_model_load(path.c_str(), nullptr, &model) == PI_OK);
    }
    ~Fixture() { pi_model_free(model); }

    pi_status create(const pi_session_params &p, pi_session **s) { return pi_session_create(model, &p, s); }
};

}  // namespace

TEST_CASE("session defaults", "[api][session]") {
    pi_session_params p;
    pi_session_params_init(&p);
    CHECK(p.struct_size == sizeof p);
    CHECK(p.n_ctx == 0);
    CHECK(p.n_batch == 512);
    CHECK(p.temperature == Approx(0.8f));
    CHECK(p.top_k == 40);
    CHECK(p.top_p == Approx(0.95f));
    CHECK(p.min_p == Approx(0.05f));
    CHECK(p.repeat_penalty == Approx(1.1f));
    CHECK(p.repeat_last_n == 64);

    Fixture f;
    pi_session *s = nullptr;
    REQUIRE(pi_session_create(f.model, nullptr, &s) == PI_OK);
    CHECK(pi_session_n_past(s) == 0);
    pi_session_free(s);
}

TEST_CASE("bad session parameters are named", "[api][session]") {
    Fixture f;
    struct Case {
        const char *field;
        void (*set)(pi_session_params &);
    };
    const Case cases[] = {
        {"temperature", [](pi_session_params &p) { p.temperature = -1.0f; }},
        {"top_k", [](pi_session_params &p) { p.top_k = -3; }},
        {"top_p", [](pi_session_params &p) { p.top_p = 0.0f; }},
        {"top_p", [](pi_session_params &p) { p.top_p = 1.5f; }},
        {"min_p", [](pi_session_params &p) { p.min_p = 2.0f; }},
        {"repeat_penalty", [](pi_session_params &p) { p.repeat_penalty = 0.0f; }},
        {"repeat_last_n", [](pi_session_params &p) { p.repeat_last_n = -1; }},
        {"n_batch", [](pi_session_params &p) { p.n_batch = 0; }},
        {"n_threads", [](pi_session_params &p) { p.n_threads = -2; }},
        {"n_ctx", [](pi_session_params &p) { p.n_ctx = 0xFFFFFFFFu; }},
    };
    for (const Case &c : cases) {
        pi_session_params p;
        pi_session_params_init(&p);
        c.set(p);
        pi_session *s = nullptr;
        INFO(c.field);
        CHECK(f.create(p, &s) == PI_ERR_INVALID_ARGUMENT);
        CHECK_THAT(std::string(pi_last_error()), Contains(c.field));
        CHECK(s == nullptr);
    }
}

TEST_CASE("the context limit: eval beyond n_ctx fails whole with PI_ERR_CONTEXT_FULL", "[api][session]") {
    Fixture f;
    pi_session_params p;
    pi_session_params_init(&p);
    p.n_ctx = 4;
    pi_session *s = nullptr;
    REQUIRE(f.create(p, &s) == PI_OK);
    const std::vector<pi_token> five = {1, 5, 6, 7, 8};
    CHECK(pi_session_eval(s, five.data(), five.size()) == PI_ERR_CONTEXT_FULL);
    CHECK_THAT(std::string(pi_last_error()), Contains("context full"));
    CHECK(pi_session_n_past(s) == 0);
    pi_session_free(s);
}

TEST_CASE("out-of-range tokens are rejected and nothing is appended", "[api][session]") {
    Fixture f;
    pi_session *s = nullptr;
    REQUIRE(pi_session_create(f.model, nullptr, &s) == PI_OK);
    const std::vector<pi_token> bad = {1, 5, 1000000};
    CHECK(pi_session_eval(s, bad.data(), bad.size()) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("1000000"));
    const std::vector<pi_token> negative = {-4};
    CHECK(pi_session_eval(s, negative.data(), 1) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_n_past(s) == 0);
    pi_session_free(s);
}

TEST_CASE("logits and step need an evaluated prompt", "[api][session]") {
    Fixture f;
    pi_session *s = nullptr;
    REQUIRE(pi_session_create(f.model, nullptr, &s) == PI_OK);
    const float *logits = nullptr;
    size_t n = 0;
    pi_token t = -7;
    CHECK(pi_session_logits(s, &logits, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("evaluate"));
    CHECK(pi_session_step(s, &t) == PI_ERR_INVALID_ARGUMENT);
    CHECK(t == -7);
    CHECK(pi_session_reset(s) == PI_OK);
    CHECK(pi_session_n_past(s) == 0);
    pi_session_free(s);
}

TEST_CASE("several sessions share one model", "[api][session]") {
    Fixture f;
    std::vector<pi_session *> sessions(4, nullptr);
    for (pi_session *&s : sessions) REQUIRE(pi_session_create(f.model, nullptr, &s) == PI_OK);
    for (pi_session *s : sessions) pi_session_free(s);
}

TEST_CASE("eval, logits, step and the context limit on a live model", "[api][session]") {
    Fixture f;
    pi_session_params p;
    pi_session_params_init(&p);
    p.n_ctx = 6;
    p.temperature = 0.0f;
    pi_session *s = nullptr;
    REQUIRE(f.create(p, &s) == PI_OK);
    const std::vector<pi_token> prompt = {1, 262, 263};
    REQUIRE(pi_session_eval(s, prompt.data(), prompt.size()) == PI_OK);
    CHECK(pi_session_n_past(s) == 3);
    const float *logits = nullptr;
    size_t n_vocab = 0;
    REQUIRE(pi_session_logits(s, &logits, &n_vocab) == PI_OK);
    REQUIRE(n_vocab == pi::test::tiny_vocab_tokens().size());
    // Greedy: the step picks the argmax of the current logits (lowest id on ties).
    pi_token expected = 0;
    for (size_t i = 1; i < n_vocab; ++i) {
        if (logits[i] > logits[expected]) expected = static_cast<pi_token>(i);
    }
    pi_token t = -1;
    REQUIRE(pi_session_step(s, &t) == PI_OK);
    CHECK(t == expected);
    CHECK(pi_session_n_past(s) == 4);
    REQUIRE(pi_session_step(s, &t) == PI_OK);
    REQUIRE(pi_session_step(s, &t) == PI_OK);
    CHECK(pi_session_n_past(s) == 6);
    const pi_token before = t;
    CHECK(pi_session_step(s, &t) == PI_ERR_CONTEXT_FULL);
    CHECK(t == before);
    CHECK(pi_session_n_past(s) == 6);
    REQUIRE(pi_session_logits(s, &logits, &n_vocab) == PI_OK);  // still the last valid logits

    REQUIRE(pi_session_reset(s) == PI_OK);
    CHECK(pi_session_n_past(s) == 0);
    CHECK(pi_session_logits(s, &logits, &n_vocab) == PI_ERR_INVALID_ARGUMENT);
    pi_session_free(s);
}

TEST_CASE("the same seed gives the same sampled tokens; prefill equals token-by-token", "[api][session]") {
    Fixture f;
    pi_session_params p;
    pi_session_params_init(&p);
    p.temperature = 1.5f;  // hot enough that the RNG matters
    p.seed = 77;
    auto generate = [&](bool one_by_one) {
        pi_session *s = nullptr;
        REQUIRE(f.create(p, &s) == PI_OK);
        const std::vector<pi_token> prompt = {1, 262, 263, 270};
        if (one_by_one) {
            for (pi_token t : prompt) REQUIRE(pi_session_eval(s, &t, 1) == PI_OK);
        } else {
            REQUIRE(pi_session_eval(s, prompt.data(), prompt.size()) == PI_OK);
        }
        std::vector<pi_token> out;
        for (int i = 0; i < 16; ++i) {
            pi_token t = 0;
            REQUIRE(pi_session_step(s, &t) == PI_OK);
            out.push_back(t);
        }
        pi_session_free(s);
        return out;
    };
    const std::vector<pi_token> a = generate(false);
    CHECK(generate(false) == a);
    CHECK(generate(true) == a);
    p.seed = 78;
    CHECK(generate(false) != a);
}
