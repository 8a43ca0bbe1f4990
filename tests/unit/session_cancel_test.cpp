// pi_session_cancel: from another thread, an eval or step in flight fails with PI_ERR_CANCELLED and leaves the
// session as it was; a cancel with nothing in flight has no effect.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "session_test_helpers.h"

using Catch::Matchers::Contains;
using namespace pi::test;
using namespace std::chrono_literals;

TEST_CASE("a cancel while nothing runs has no effect", "[session][cancel]") {
    ModelHandle m;
    SessionPtr s = make_session(m.model);
    const std::vector<pi_token> p = prompt_tokens(4, 1);
    REQUIRE(pi_session_cancel(s.get()) == PI_OK);
    REQUIRE(pi_session_cancel(s.get()) == PI_OK);
    CHECK(pi_session_eval(s.get(), p.data(), p.size()) == PI_OK);
    REQUIRE(pi_session_cancel(s.get()) == PI_OK);
    pi_token t = -1;
    CHECK(pi_session_step(s.get(), &t) == PI_OK);
    CHECK(pi_session_n_past(s.get()) == 5);
    CHECK(pi_session_cancel(nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_session_cancel"));
}

TEST_CASE("cancelling a long eval from another thread", "[session][cancel]") {
    ModelHandle m(slow_model_spec(), "slow");
    SessionSettings settings;
    settings.n_ctx = 1024;
    settings.n_batch = 2;  // many passes: the first ones finish before the cancel, and still nothing may be kept
    SessionPtr s = make_session(m.model, settings);
    const std::vector<pi_token> prefix = prompt_tokens(4, 2);
    REQUIRE(pi_session_eval(s.get(), prefix.data(), prefix.size()) == PI_OK);
    const std::vector<float> prefix_logits = logits_of(s.get());

    // How long one pass takes here (sanitizers slow it down many times): the cancel comes after about three, so
    // that some passes have finished and written their logits somewhere, which must not become visible.
    const auto t0 = std::chrono::steady_clock::now();
    {
        SessionPtr probe = make_session(m.model, settings);
        REQUIRE(pi_session_eval(probe.get(), prefix.data(), settings.n_batch) == PI_OK);
    }
    const auto pass = std::chrono::steady_clock::now() - t0;

    // Thread A evaluates a long prompt (32 passes or more); B cancels shortly after A began. Should A finish first
    // (a slow scheduler), the prompt doubles and we try again, a bounded number of times.
    bool cancelled = false;
    std::string message;
    for (size_t len = 64; len + prefix.size() <= settings.n_ctx && !cancelled; len *= 2) {
        const std::vector<pi_token> prompt = prompt_tokens(len, 3);
        std::atomic<bool> started{false};
        pi_status status = PI_OK;
        std::thread a([&] {
            started = true;
            status = pi_session_eval(s.get(), prompt.data(), prompt.size());
            message = pi_last_error();
        });
        while (!started) std::this_thread::yield();
        std::this_thread::sleep_for(3 * pass);
        REQUIRE(pi_session_cancel(s.get()) == PI_OK);
        a.join();
        if (status == PI_ERR_CANCELLED) {
            cancelled = true;
        } else {
            REQUIRE(status == PI_OK);  // it finished before the cancel: start over from the prefix
            REQUIRE(pi_session_truncate(s.get(), 0) == PI_OK);
            REQUIRE(pi_session_eval(s.get(), prefix.data(), prefix.size()) == PI_OK);
        }
    }
    REQUIRE(cancelled);
    CHECK_THAT(message, Contains("cancel"));
    // All or nothing: the context and its logits are those from before the cancelled call.
    CHECK(pi_session_n_past(s.get()) == prefix.size());
    CHECK(same_bits(logits_of(s.get()), prefix_logits));

    // The session stays usable, and its cache is intact: the next eval matches a fresh session's.
    const std::vector<pi_token> more = prompt_tokens(2, 4);
    REQUIRE(pi_session_eval(s.get(), more.data(), more.size()) == PI_OK);
    SessionPtr fresh = make_session(m.model, settings);
    REQUIRE(pi_session_eval(fresh.get(), prefix.data(), prefix.size()) == PI_OK);
    REQUIRE(pi_session_eval(fresh.get(), more.data(), more.size()) == PI_OK);
    CHECK(same_bits(logits_of(s.get()), logits_of(fresh.get())));
}

TEST_CASE("cancelled steps are undone completely, the sampler's draw included", "[session][cancel]") {
    ModelHandle m(slow_model_spec(), "slow_steps");
    SessionSettings settings;
    settings.n_ctx = 64;
    settings.temperature = 1.0f;  // sampled: a step that failed but kept its draw would shift every later token
    settings.seed = 5;
    const std::vector<pi_token> prefix = prompt_tokens(4, 5);
    constexpr size_t kSteps = 12;

    SessionPtr reference = make_session(m.model, settings);
    REQUIRE(pi_session_eval(reference.get(), prefix.data(), prefix.size()) == PI_OK);
    std::vector<pi_token> expected;
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(generate(reference.get(), kSteps, expected) == PI_OK);
    const auto one_step = (std::chrono::steady_clock::now() - t0) / kSteps;

    // A steps, retrying each cancelled step; B cancels every odd-numbered attempt a third of a step after it began,
    // so retries are left alone and A always makes progress. Should no cancel land in flight (a slow scheduler),
    // the round is repeated, a bounded number of times.
    int n_cancelled = 0;
    for (int round = 0; round < 5 && n_cancelled == 0; ++round) {
        SessionPtr s = make_session(m.model, settings);
        REQUIRE(pi_session_eval(s.get(), prefix.data(), prefix.size()) == PI_OK);
        std::atomic<int> attempt{0};
        std::atomic<bool> done{false};
        std::vector<pi_token> got;
        pi_status failure = PI_OK, cancel_status = PI_OK;
        std::thread a([&] {
            while (got.size() < kSteps && failure == PI_OK) {
                attempt.fetch_add(1);
                pi_token t = -1;
                const pi_status st = pi_session_step(s.get(), &t);
                if (st == PI_ERR_CANCELLED) {
                    ++n_cancelled;
                    if (t != -1) failure = PI_ERR_INTERNAL;  // the out-param must be untouched
                } else if (st == PI_OK) {
                    got.push_back(t);
                } else {
                    failure = st;
                }
            }
            done = true;
        });
        int seen = 0;
        while (!done) {
            const int now = attempt.load();
            if (now != seen && now % 2 == 1) {
                std::this_thread::sleep_for(one_step / 3);
                if (pi_session_cancel(s.get()) != PI_OK) cancel_status = PI_ERR_INTERNAL;
            }
            seen = now;
            std::this_thread::yield();
        }
        a.join();
        REQUIRE(failure == PI_OK);
        REQUIRE(cancel_status == PI_OK);
        // Cancelled or not, every step lands where the uninterrupted session's did.
        CHECK(got == expected);
        CHECK(pi_session_n_past(s.get()) == prefix.size() + kSteps);
        CHECK(same_bits(logits_of(s.get()), logits_of(reference.get())));
    }
    CHECK(n_cancelled >= 1);
}
