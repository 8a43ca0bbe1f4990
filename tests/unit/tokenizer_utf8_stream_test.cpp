// Utf8Stream: whole characters only, incomplete tails held back, ill-formed bytes as U+FFFD.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

const std::string kFffd = "\xEF\xBF\xBD";

// Whether `s` is well-formed UTF-8 (checked with the decoder, whose rules unicode tests pin down below).
bool well_formed(const std::string &s) {
    for (size_t pos = 0; pos < s.size();) {
        const pi::unicode::Utf8Unit unit = pi::unicode::decode_utf8(s, pos);
        if (unit.cp == pi::unicode::kInvalid) return false;
        pos += unit.len;
    }
    return true;
}

}  // namespace

TEST_CASE("utf8 decoding follows the well-formed byte table and the maximal subpart rule", "[tokenizer]") {
    using pi::unicode::decode_utf8;
    using pi::unicode::kInvalid;
    struct Case {
        std::string bytes;
        uint32_t cp;
        uint32_t len;
    };
    const std::vector<Case> cases = {
        {"A", 'A', 1},
        {"\xC3\xA9", 0xE9, 2},
        {"\xE2\x82\xAC", 0x20AC, 3},
        {"\xF0\x9F\xA6\x99", 0x1F999, 4},
        {"\xF4\x8F\xBF\xBF", 0x10FFFF, 4},
        {"\x80", kInvalid, 1},              // continuation byte without a lead
        {"\xC0\xAF", kInvalid, 1},          // overlong lead
        {"\xE0\x80\x80", kInvalid, 1},      // overlong: E0 needs A0..BF next
        {"\xED\xA0\x80", kInvalid, 1},      // surrogate: ED needs 80..9F next
        {"\xF4\x90\x80\x80", kInvalid, 1},  // above U+10FFFF
        {"\xF5\x80\x80\x80", kInvalid, 1},
        {"\xE2\x82(", kInvalid, 2},         // lead + valid continuation, then broken: one subpart of 2
        {"\xF0\x9F\xA6", kInvalid, 3},      // truncated at the end
    };
    for (const Case &c : cases) {
        INFO("bytes of length " << c.bytes.size() << " starting " << int(static_cast<uint8_t>(c.bytes[0])));
        const pi::unicode::Utf8Unit unit = decode_utf8(c.bytes, 0);
        CHECK(unit.cp == c.cp);
        CHECK(unit.len == c.len);
    }
}

TEST_CASE("utf8 stream passes ASCII and whole characters straight through", "[tokenizer]") {
    pi::Utf8Stream s;
    CHECK(s.push("Hello") == "Hello");
    CHECK(s.push(" w\xC3\xB6rld \xF0\x9F\xA6\x99") == " w\xC3\xB6rld \xF0\x9F\xA6\x99");
    CHECK(s.push("").empty());
    CHECK(s.flush().empty());
}

TEST_CASE("utf8 stream holds back characters split across pushes", "[tokenizer]") {
    pi::Utf8Stream s;
    CHECK(s.push("a\xC3") == "a");
    CHECK(s.push("\xA9") == "\xC3\xA9");
    // A four-byte emoji arriving one byte at a time.
    CHECK(s.push("\xF0").empty());
    CHECK(s.push("\x9F").empty());
    CHECK(s.push("\xA6").empty());
    CHECK(s.push("\x99!") == "\xF0\x9F\xA6\x99!");
    // Two characters whose bytes straddle one push boundary.
    CHECK(s.push("\xE6\x88\x91\xE6") == "\xE6\x88\x91");
    CHECK(s.push("\x83\xB3") == "\xE6\x83\xB3");
    CHECK(s.flush().empty());
}

TEST_CASE("utf8 stream replaces ill-formed bytes with U+FFFD and never stalls", "[tokenizer]") {
    pi::Utf8Stream s;
    CHECK(s.push("\xFF") == kFffd);
    CHECK(s.push("a\x80" "b") == "a" + kFffd + "b");
    CHECK(s.push("\xC0\xAF") == kFffd + kFffd);                  // overlong: two subparts
    CHECK(s.push("\xED\xA0\x80") == kFffd + kFffd + kFffd);      // surrogate
    CHECK(s.push("\xE2\x28\xA1") == kFffd + "(" + kFffd);
    // A truncated character followed by a new one: the held-back bytes become one U+FFFD.
    CHECK(s.push("\xE2\x82").empty());
    CHECK(s.push("A") == kFffd + "A");
    // What is still held back at the end of the stream comes out as one U+FFFD.
    CHECK(s.push("\xF0\x9F\xA6").empty());
    CHECK(s.flush() == kFffd);
    CHECK(s.flush().empty());
    CHECK(s.push("ok") == "ok");  // usable after a flush
}

TEST_CASE("utf8 stream over random chunkings gives back valid text, and the text itself", "[tokenizer]") {
    std::mt19937 rng(7);
    const std::vector<uint32_t> cps = {'a', ' ', 0xE9, 0x43D, 0x6211, 0x1F999, 0x200D, 0x10FFFF, 0x7FF, 0x800};
    for (int round = 0; round < 200; ++round) {
        std::string text;
        for (int i = 0; i < 30; ++i) pi::unicode::append_utf8(text, cps[rng() % cps.size()]);
        // Every third round corrupts one byte: the output must stay well-formed anyway.
        const bool corrupt = round % 3 == 0;
        if (corrupt) text[rng() % text.size()] = static_cast<char>(0x80 + rng() % 0x80);
        pi::Utf8Stream s;
        std::string out;
        for (size_t pos = 0; pos < text.size();) {
            const size_t n = std::min<size_t>(text.size() - pos, 1 + rng() % 5);
            const std::string chunk = s.push(std::string_view(text).substr(pos, n));
            CHECK(well_formed(chunk));
            out += chunk;
            pos += n;
        }
        out += s.flush();
        CHECK(well_formed(out));
        if (!corrupt) CHECK(out == text);
    }
}

TEST_CASE("utf8 stream turns llama byte-fallback pieces into whole characters", "[tokenizer]") {
    const auto file = pi::gguf::File::open(std::string(PI_TEST_DATA_DIR) + "/vocab/ggml-vocab-llama.gguf");
    const auto tok = pi::Tokenizer::create(pi::Vocabulary::from_gguf(*file));
    const std::string text = "Hi \xF0\x9F\xA6\x99 w\xC3\xB6rld \xE1\x9E\x80\xE1\x9E\xB6";  // llama emoji, Khmer
    const std::vector<pi::Token> ids = tok->encode(text, true);
    pi::Utf8Stream s;
    std::string out;
    size_t empty_pushes = 0;
    for (pi::Token id : ids) {
        const std::string chunk = s.push(tok->piece(id));
        CHECK(well_formed(chunk));
        CHECK(chunk.find(kFffd) == std::string::npos);
        if (chunk.empty()) ++empty_pushes;
        out += chunk;
    }
    CHECK(s.flush().empty());
    CHECK(out == " " + text);
    CHECK(empty_pushes >= 3);  // BOS, and at least the first three bytes of the emoji were held back
}
