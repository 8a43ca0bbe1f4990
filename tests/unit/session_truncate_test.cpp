// pi_session_truncate and the kv_type session parameter.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "session_test_helpers.h"

using Catch::Matchers::Contains;
using namespace pi::test;

TEST_CASE("truncate then re-eval gives the logits of a fresh session that evaluated the same tokens", "[session]") {
    ModelHandle m;
    const std::vector<pi_token> a = prompt_tokens(8, 1), b = prompt_tokens(6, 2), c = prompt_tokens(5, 3);

    // Truncating at a call boundary: every cache row is computed by calls of the same shape in both sessions, so
    // the comparison holds for any executor (a batched prefill may round differently for other batch sizes).
    SessionPtr s = make_session(m.model);
    REQUIRE(pi_session_eval(s.get(), a.data(), a.size()) == PI_OK);
    REQUIRE(pi_session_eval(s.get(), b.data(), b.size()) == PI_OK);
    const std::vector<float> with_b = logits_of(s.get());
    REQUIRE(pi_session_truncate(s.get(), a.size()) == PI_OK);
    CHECK(pi_session_n_past(s.get()) == a.size());
    REQUIRE(pi_session_eval(s.get(), c.data(), c.size()) == PI_OK);

    SessionPtr fresh = make_session(m.model);
    REQUIRE(pi_session_eval(fresh.get(), a.data(), a.size()) == PI_OK);
    REQUIRE(pi_session_eval(fresh.get(), c.data(), c.size()) == PI_OK);
    CHECK(same_bits(logits_of(s.get()), logits_of(fresh.get())));

    // The forgotten tokens mattered: without the truncation the logits are different.
    SessionPtr untruncated = make_session(m.model);
    for (const auto *part : {&a, &b, &c}) REQUIRE(pi_session_eval(untruncated.get(), part->data(), part->size()) == PI_OK);
    CHECK_FALSE(same_bits(logits_of(untruncated.get()), logits_of(fresh.get())));
    CHECK_FALSE(same_bits(with_b, logits_of(fresh.get())));

    // And the continuations agree token for token (greedy).
    std::vector<pi_token> ts, tf;
    REQUIRE(generate(s.get(), 12, ts) == PI_OK);
    REQUIRE(generate(fresh.get(), 12, tf) == PI_OK);
    CHECK(ts == tf);
}

TEST_CASE("truncate in the middle of an evaluated prompt (one token per pass)", "[session]") {
    ModelHandle m;
    SessionSettings one_by_one;
    one_by_one.n_batch = 1;  // every row comes from a one-token pass in both sessions
    const std::vector<pi_token> ab = prompt_tokens(14, 4), c = prompt_tokens(4, 5);
    for (size_t keep : {size_t(0), size_t(1), size_t(5), size_t(13)}) {
        INFO("n_keep " << keep);
        SessionPtr s = make_session(m.model, one_by_one);
        REQUIRE(pi_session_eval(s.get(), ab.data(), ab.size()) == PI_OK);
        REQUIRE(pi_session_truncate(s.get(), keep) == PI_OK);
        REQUIRE(pi_session_eval(s.get(), c.data(), c.size()) == PI_OK);

        SessionPtr fresh = make_session(m.model, one_by_one);
        std::vector<pi_token> tokens(ab.begin(), ab.begin() + static_cast<std::ptrdiff_t>(keep));
        tokens.insert(tokens.end(), c.begin(), c.end());
        REQUIRE(pi_session_eval(fresh.get(), tokens.data(), tokens.size()) == PI_OK);
        CHECK(pi_session_n_past(s.get()) == tokens.size());
        CHECK(same_bits(logits_of(s.get()), logits_of(fresh.get())));
    }
}

TEST_CASE("truncate: limits, and the logits are unavailable until the next eval", "[session]") {
    ModelHandle m;
    SessionPtr s = make_session(m.model);
    const std::vector<pi_token> p = prompt_tokens(6, 6);
    REQUIRE(pi_session_eval(s.get(), p.data(), p.size()) == PI_OK);
    const std::vector<float> before = logits_of(s.get());

    CHECK(pi_session_truncate(s.get(), 7) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("n_keep 7") && Contains("n_past 6"));
    CHECK(pi_session_n_past(s.get()) == 6);
    CHECK(same_bits(logits_of(s.get()), before));  // a refused truncate changes nothing
    CHECK(pi_session_truncate(s.get(), SIZE_MAX) == PI_ERR_INVALID_ARGUMENT);

    REQUIRE(pi_session_truncate(s.get(), 6) == PI_OK);  // keeping everything still ends the logits' validity
    CHECK(pi_session_n_past(s.get()) == 6);
    const float *logits = nullptr;
    size_t n = 0;
    CHECK(pi_session_logits(s.get(), &logits, &n) == PI_ERR_INVALID_ARGUMENT);
    pi_token t = -5;
    CHECK(pi_session_step(s.get(), &t) == PI_ERR_INVALID_ARGUMENT);
    CHECK(t == -5);

    REQUIRE(pi_session_truncate(s.get(), 0) == PI_OK);
    CHECK(pi_session_n_past(s.get()) == 0);
    CHECK(pi_session_truncate(s.get(), 1) == PI_ERR_INVALID_ARGUMENT);
    REQUIRE(pi_session_eval(s.get(), p.data(), p.size()) == PI_OK);
    CHECK(same_bits(logits_of(s.get()), before));  // the same tokens again give the same logits
}

TEST_CASE("kv_type: F16 by default, F32 on request, bad values named", "[session]") {
    pi_session_params p;
    pi_session_params_init(&p);
    CHECK(p.kv_type == PI_KV_F16);
    CHECK(PI_KV_F16 == 0);
    CHECK(PI_KV_F32 == 1);

    ModelHandle m;
    for (int32_t bad : {2, -1, 1000}) {
        pi_session_params q;
        pi_session_params_init(&q);
        q.kv_type = bad;
        pi_session *s = nullptr;
        INFO("kv_type " << bad);
        CHECK(pi_session_create(m.model, &q, &s) == PI_ERR_INVALID_ARGUMENT);
        CHECK_THAT(std::string(pi_last_error()), Contains("kv_type") && Contains(std::to_string(bad)));
        CHECK(s == nullptr);
    }

    const std::vector<pi_token> prompt = prompt_tokens(10, 7);
    SessionSettings f32;
    f32.kv_type = PI_KV_F32;
    SessionPtr s16 = make_session(m.model), s32 = make_session(m.model, f32);
    REQUIRE(pi_session_eval(s16.get(), prompt.data(), prompt.size()) == PI_OK);
    REQUIRE(pi_session_eval(s32.get(), prompt.data(), prompt.size()) == PI_OK);
    const std::vector<float> l16 = logits_of(s16.get()), l32 = logits_of(s32.get());
    // Unrounded keys and values change the logits a little, not much.
    CHECK_FALSE(same_bits(l16, l32));
    double max_diff = 0.0;
    for (size_t i = 0; i < l16.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(l16[i] - l32[i])));
    CHECK(max_diff < 1e-2);

    // The state holds the KV rows: twice the bytes in F32. Tiny model: 2 layers x 2 kv heads x head_dim 8.
    size_t n16 = 0, n32 = 0;
    REQUIRE(pi_session_state_size(s16.get(), &n16) == PI_OK);
    REQUIRE(pi_session_state_size(s32.get(), &n32) == PI_OK);
    CHECK(n32 - n16 == 2 * 2 * prompt.size() * 16 * 2);
}

TEST_CASE("a caller with the first published struct_size gets the F16 cache", "[session]") {
    ModelHandle m;
    pi_session_params p;
    pi_session_params_init(&p);
    p.struct_size = 48;  // pi_session_params as published in 0.1.0: up to repeat_last_n
    p.kv_type = 77;      // beyond the caller's struct: never read
    p.temperature = 0.0f;
    pi_session *old_client = nullptr;
    REQUIRE(pi_session_create(m.model, &p, &old_client) == PI_OK);
    SessionPtr s(old_client, pi_session_free);
    SessionPtr f16 = make_session(m.model);
    const std::vector<pi_token> prompt = prompt_tokens(5, 8);
    REQUIRE(pi_session_eval(s.get(), prompt.data(), prompt.size()) == PI_OK);
    REQUIRE(pi_session_eval(f16.get(), prompt.data(), prompt.size()) == PI_OK);
    CHECK(same_bits(logits_of(s.get()), logits_of(f16.get())));
    CHECK(save_state(s.get()) == save_state(f16.get()));  // byte for byte: same KV type, same rows
}
