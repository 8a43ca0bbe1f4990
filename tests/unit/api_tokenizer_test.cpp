// Tokenizer calls through the C API: the buffer-size rule and streaming whole UTF-8 characters.
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
        const std::string path = pi::test::write_tiny_model(spec, "tokenizer_api");
        REQUIRE(pi_model_load(path.c_str(), nullptr, &model) == PI_OK);
    }
    ~Fixture() { pi_model_free(model); }
};

// The byte-fallback token of byte b in the tiny vocabulary.
pi_token byte_token(unsigned char b) { return static_cast<pi_token>(3 + b); }
}  // namespace

TEST_CASE("pi_tokenize follows the buffer rule", "[api][tokenizer]") {
    Fixture f;
    const std::string text = "Hello world";
    size_t needed = 0;
    REQUIRE(pi_tokenize(f.model, text.data(), text.size(), 1, nullptr, 0, &needed) == PI_ERR_BUFFER_TOO_SMALL);
    REQUIRE(needed >= 2);
    CHECK_THAT(std::string(pi_last_error()), Contains("capacity"));

    std::vector<pi_token> tokens(needed - 1, -9);
    size_t n = 0;
    CHECK(pi_tokenize(f.model, text.data(), text.size(), 1, tokens.data(), tokens.size(), &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == needed);
    for (pi_token t : tokens) CHECK(t == -9);  // nothing written on failure

    tokens.assign(needed, -9);
    REQUIRE(pi_tokenize(f.model, text.data(), text.size(), 1, tokens.data(), tokens.size(), &n) == PI_OK);
    CHECK(n == needed);
    CHECK(tokens[0] == pi_token_bos(f.model));

    // Round trip through the pieces (SentencePiece adds one leading space).
    std::string decoded;
    for (size_t i = 1; i < n; ++i) {
        char buf[64];
        size_t len = 0;
        REQUIRE(pi_token_to_piece(f.model, tokens[i], buf, sizeof buf, &len) == PI_OK);
        decoded.append(buf, len);
    }
    CHECK(decoded == " " + text);
}

TEST_CASE("pi_token_to_piece: buffer rule and invalid ids", "[api][tokenizer]") {
    Fixture f;
    char buf[16];
    size_t n = 0;
    const pi_token hello = 262;  // "▁Hello" in the tiny vocabulary
    REQUIRE(pi_token_to_piece(f.model, hello, buf, 2, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 6);
    REQUIRE(pi_token_to_piece(f.model, hello, buf, 6, &n) == PI_OK);
    CHECK(std::string(buf, n) == " Hello");
    n = 99;
    CHECK(pi_token_to_piece(f.model, 100000, buf, sizeof buf, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_token_to_piece(f.model, -1, buf, sizeof buf, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(n == 99);
}

TEST_CASE("the detokenizer emits whole UTF-8 characters only", "[api][tokenizer]") {
    Fixture f;
    pi_detokenizer *d = nullptr;
    REQUIRE(pi_detokenizer_create(f.model, &d) == PI_OK);
    const std::string euro = "\xE2\x82\xAC";  // U+20AC, three bytes, each its own byte-fallback token
    char buf[16];
    size_t n = 99;
    REQUIRE(pi_detokenizer_push(d, byte_token(0xE2), buf, sizeof buf, &n) == PI_OK);
    CHECK(n == 0);
    REQUIRE(pi_detokenizer_push(d, byte_token(0x82), buf, sizeof buf, &n) == PI_OK);
    CHECK(n == 0);
    // Too small a buffer: the token is not consumed, the needed size is reported.
    REQUIRE(pi_detokenizer_push(d, byte_token(0xAC), buf, 1, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 3);
    REQUIRE(pi_detokenizer_push(d, byte_token(0xAC), buf, sizeof buf, &n) == PI_OK);
    CHECK(std::string(buf, n) == euro);
    REQUIRE(pi_detokenizer_push(d, 262, buf, sizeof buf, &n) == PI_OK);
    CHECK(std::string(buf, n) == " Hello");
    pi_detokenizer_free(d);
}
