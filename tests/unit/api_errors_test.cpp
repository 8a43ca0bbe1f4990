// The C API's error contract: statuses, thread-local messages, NULL arguments, struct_size, untouched out-params.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "powerinfer/powerinfer.h"
#include "tiny_model_builder.h"

using Catch::Matchers::Contains;

TEST_CASE("every status has a distinct name, unknown ones too", "[api]") {
    std::set<std::string> names;
    for (int s = PI_OK; s <= PI_ERR_INTERNAL; ++s) {
        const char *name = pi_status_string(static_cast<pi_status>(s));
        REQUIRE(name != nullptr);
        names.insert(name);
    }
    CHECK(names.size() == PI_ERR_INTERNAL + 1);
    CHECK(std::string(pi_status_string(static_cast<pi_status>(999))) == "unknown status");
    CHECK(std::string(pi_status_string(PI_ERR_CONTEXT_FULL)) == "context full");
}

TEST_CASE("status numbers are the published ones", "[api]") {
    CHECK(PI_OK == 0);
    CHECK(PI_ERR_INVALID_ARGUMENT == 1);
    CHECK(PI_ERR_IO == 2);
    CHECK(PI_ERR_FORMAT == 3);
    CHECK(PI_ERR_UNSUPPORTED == 4);
    CHECK(PI_ERR_OUT_OF_MEMORY == 5);
    CHECK(PI_ERR_BACKEND == 6);
    CHECK(PI_ERR_CONTEXT_FULL == 7);
    CHECK(PI_ERR_BUFFER_TOO_SMALL == 8);
    CHECK(PI_ERR_CANCELLED == 9);
    CHECK(PI_ERR_INTERNAL == 10);
}

TEST_CASE("versions agree with the header", "[api]") {
    CHECK(pi_abi_version() == PI_ABI_VERSION);
    const std::string expected = std::to_string(PI_VERSION_MAJOR) + "." + std::to_string(PI_VERSION_MINOR) + "." +
                                 std::to_string(PI_VERSION_PATCH);
    CHECK(pi_version() == expected);
}

TEST_CASE("pi_last_error is per thread and cleared by a successful call", "[api]") {
    pi_model *model = nullptr;
    REQUIRE(pi_model_load(nullptr, nullptr, &model) == PI_ERR_INVALID_ARGUMENT);
    const std::string mine = pi_last_error();
    CHECK_THAT(mine, Contains("path is NULL"));

    std::string other_before, other_after;
    std::thread t([&] {
        other_before = pi_last_error();  // a new thread starts with no error
        pi_model *m = nullptr;
        pi_model_load("/nonexistent/x.gguf", nullptr, &m);
        other_after = pi_last_error();
    });
    t.join();
    CHECK(other_before.empty());
    CHECK_THAT(other_after, Contains("/nonexistent/x.gguf"));
    CHECK(pi_last_error() == mine);  // the other thread's error did not leak here

    pi_session_params p;
    pi_session_params_init(&p);  // not a fallible call: leaves the message alone
    pi_detokenizer *d = nullptr;
    CHECK(pi_detokenizer_create(nullptr, &d) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("pi_detokenizer_create"));
}

TEST_CASE("every call rejects NULL handles and out-params without crashing", "[api]") {
    pi_model *model = nullptr;
    pi_session *session = nullptr;
    pi_token tok = 12345;
    size_t n = 777;
    const float *logits = nullptr;
    char buf[8];
    pi_model_info info;
    pi_model_info_init(&info);

    CHECK(pi_model_load(nullptr, nullptr, &model) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_model_load("x.gguf", nullptr, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_model_load("", nullptr, &model) == PI_ERR_INVALID_ARGUMENT);
    CHECK(model == nullptr);
    CHECK(pi_model_get_info(nullptr, &info) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_tokenize(nullptr, "a", 1, 0, &tok, 1, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_token_to_piece(nullptr, 0, buf, sizeof buf, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_token_bos(nullptr) == -1);
    CHECK(pi_token_eos(nullptr) == -1);
    CHECK(pi_session_create(nullptr, nullptr, &session) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_eval(nullptr, &tok, 1) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_step(nullptr, &tok) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_logits(nullptr, &logits, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_reset(nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_n_past(nullptr) == 0);
    CHECK(pi_detokenizer_push(nullptr, 0, buf, sizeof buf, &n) == PI_ERR_INVALID_ARGUMENT);
    // Out-params untouched on failure.
    CHECK(tok == 12345);
    CHECK(n == 777);
    CHECK(logits == nullptr);
    CHECK(session == nullptr);

    // Freeing NULL is a no-op; initializing NULL is too.
    pi_model_free(nullptr);
    pi_session_free(nullptr);
    pi_detokenizer_free(nullptr);
    pi_model_params_init(nullptr);
    pi_session_params_init(nullptr);
    pi_model_info_init(nullptr);
}

TEST_CASE("NULL arguments on a live model and session", "[api]") {
    pi::test::TinyModelSpec spec;
    const std::string path = pi::test::write_tiny_model(spec, "nulls");
    pi_model *model = nullptr;
    REQUIRE(pi_model_load(path.c_str(), nullptr, &model) == PI_OK);
    pi_session *session = nullptr;
    REQUIRE(pi_session_create(model, nullptr, &session) == PI_OK);
    size_t n = 5;
    pi_token tok = 7;
    const float *logits = nullptr;

    CHECK(pi_model_get_info(model, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_tokenize(model, nullptr, 3, 0, &tok, 1, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_tokenize(model, "abc", 3, 0, nullptr, 4, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_tokenize(model, "abc", 3, 0, &tok, 1, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_token_to_piece(model, 5, nullptr, 4, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_create(model, nullptr, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_eval(session, nullptr, 1) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_eval(session, &tok, 0) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_step(session, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_logits(session, nullptr, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_session_logits(session, &logits, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_detokenizer_create(model, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(n == 5);
    CHECK(tok == 7);
    CHECK(pi_tokenize(model, nullptr, 0, 0, nullptr, 0, &n) == PI_OK);  // empty text, no BOS: zero tokens
    CHECK(n == 0);

    pi_session_free(session);
    pi_model_free(model);
}

TEST_CASE("struct_size: too small is rejected, larger (newer client) is accepted", "[api]") {
    pi::test::TinyModelSpec spec;
    const std::string path = pi::test::write_tiny_model(spec, "struct_size");
    pi_model *model = nullptr;

    pi_model_params params;
    pi_model_params_init(&params);
    CHECK(params.struct_size == sizeof(pi_model_params));
    params.struct_size = 0;
    CHECK(pi_model_load(path.c_str(), &params, &model) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("struct_size"));
    CHECK(model == nullptr);

    // A client built against a future header: a larger struct whose extra tail we must ignore.
    struct {
        pi_model_params known;
        char future_fields[64];
    } bigger;
    std::memset(&bigger, 0xAB, sizeof bigger);
    pi_model_params_init(&bigger.known);
    bigger.known.struct_size = sizeof bigger;
    REQUIRE(pi_model_load(path.c_str(), &bigger.known, &model) == PI_OK);

    pi_model_info info;
    pi_model_info_init(&info);
    info.struct_size = 3;
    info.n_layer = 99;
    CHECK(pi_model_get_info(model, &info) == PI_ERR_INVALID_ARGUMENT);
    CHECK(info.n_layer == 99);

    pi_session_params sp;
    pi_session_params_init(&sp);
    sp.struct_size = 2;
    pi_session *session = nullptr;
    CHECK(pi_session_create(model, &sp, &session) == PI_ERR_INVALID_ARGUMENT);
    CHECK(session == nullptr);
    pi_model_free(model);
}
