// The error contract of the session calls added with truncate, cancel and state: NULL arguments are refused with a
// message naming the function, and out-params stay untouched on failure.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "session_test_helpers.h"

using Catch::Matchers::Contains;
using namespace pi::test;

TEST_CASE("the new session calls refuse NULL sessions", "[session][api]") {
    size_t n = 777;
    uint8_t buf[16] = {0};
    CHECK(pi_session_truncate(nullptr, 0) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_session_truncate") && Contains("session is NULL"));
    CHECK(pi_session_cancel(nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_session_cancel"));
    CHECK(pi_session_state_size(nullptr, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_session_state_size"));
    CHECK(pi_session_state_save(nullptr, buf, sizeof buf, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_session_state_save"));
    CHECK(pi_session_state_load(nullptr, buf, sizeof buf) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_session_state_load"));
    CHECK(n == 777);
}

TEST_CASE("the new session calls refuse NULL arguments on a live session", "[session][api]") {
    ModelHandle m;
    SessionPtr s = make_session(m.model);
    const std::vector<pi_token> p = prompt_tokens(3, 9);
    REQUIRE(pi_session_eval(s.get(), p.data(), p.size()) == PI_OK);

    CHECK(pi_session_state_size(s.get(), nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("out is NULL"));
    size_t n = 777;
    uint8_t buf[16] = {0};
    CHECK(pi_session_state_save(s.get(), buf, sizeof buf, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("n_out is NULL"));
    CHECK(pi_session_state_save(s.get(), nullptr, 100, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("buf is NULL"));
    CHECK(n == 777);
    CHECK(pi_session_state_load(s.get(), nullptr, 100) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("buf is NULL"));
    CHECK(pi_session_state_load(s.get(), buf, 0) == PI_ERR_FORMAT);
    CHECK(pi_session_state_load(s.get(), buf, sizeof buf) == PI_ERR_FORMAT);
    CHECK_THAT(std::string(pi_last_error()), Contains("magic"));
    CHECK(pi_session_n_past(s.get()) == 3);

    // A successful call clears the last error.
    CHECK(pi_session_state_size(s.get(), &n) == PI_OK);
    CHECK(std::string(pi_last_error()).empty());
    CHECK(pi_session_cancel(s.get()) == PI_OK);
    CHECK(pi_session_truncate(s.get(), 3) == PI_OK);
}
