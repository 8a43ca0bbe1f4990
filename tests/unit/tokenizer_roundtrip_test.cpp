// Round trips (the pieces of an encoding give back the text) over random Unicode and random bytes, and encoding
// speed, on the real LLaMA and Falcon vocabularies.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

std::unique_ptr<pi::Tokenizer> load(const char *name) {
    const auto file = pi::gguf::File::open(std::string(PI_TEST_DATA_DIR) + "/vocab/" + name);
    return pi::Tokenizer::create(pi::Vocabulary::from_gguf(*file));
}

std::string detokenize(const pi::Tokenizer &tok, const std::vector<pi::Token> &ids) {
    std::string out;
    for (pi::Token id : ids) out += tok.piece(id);
    return out;
}

// Bytes whose GPT-2 symbol is missing from Falcon's vocabulary (read off the file's token list): Falcon encodes
// them as nothing, as Hugging Face's tokenizer does.
bool falcon_lacks_byte(uint8_t b) {
    static const std::vector<uint8_t> missing = {0x03, 0x04, 0x05, 0x0B, 0x11, 0x13, 0x14, 0x15, 0x16, 0x17,
                                                 0x19, 0x1C, 0x1D, 0x1E, 0xC0, 0xC1, 0xF2, 0xF5, 0xF6, 0xF7,
                                                 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
    for (uint8_t m : missing) {
        if (m == b) return true;
    }
    return false;
}

// Code points that exercise every pre-tokenizer class and script the tokenizers must handle: ASCII (weighted
// up), whitespace of several kinds, accented and combining Latin, Cyrillic, Greek, Arabic, Devanagari, Khmer, CJK,
// Hangul, kana, numbers outside ASCII (which Falcon splits as byte symbols), emoji with ZWJ and variation
// selectors, supplementary-plane letters. Left out: U+2581 (SentencePiece reads it as a space, see below) and
// characters whose UTF-8 uses a byte Falcon lacks (control characters above, U+80000..U+BFFFF).
std::vector<uint32_t> sample_code_points() {
    std::vector<uint32_t> cps;
    for (uint32_t c = 0x20; c < 0x7F; ++c) {
        cps.push_back(c);
        cps.push_back(c);
    }
    for (uint32_t c : {'\t', '\n', '\r', ' ', ' ', ' ', '\''}) cps.push_back(c);
    const uint32_t others[] = {
        0x00A0, 0x3000, 0x2009, 0x0085,                          // whitespace beyond ASCII
        0x00E9, 0x00FC, 0x00DF, 0x00F1, 0x00C5, 0x0153, 0x1EED, 0x1EC7, 0x0301, 0x00BD, 0x00B2, 0x00B9,
        0x043D, 0x0435, 0x0449, 0x043E, 0x0411, 0x044A,         // Cyrillic
        0x03B1, 0x03A9, 0x0645, 0x0631, 0x062D, 0x0661, 0x0663, // Greek, Arabic letters and digits
        0x0915, 0x093F, 0x0967, 0x1780, 0x17B6, 0x17CB, 0x17D2, // Devanagari, Khmer
        0x6211, 0x60F3, 0x5728, 0x5DE5, 0x4F5C, 0x5929, 0xFF5E, 0x3002, 0xAC00, 0xD55C, 0x3042, 0x30AB,
        0x2705, 0x2014, 0x2026, 0x201C, 0x20AC, 0xFFFD, 0x200D, 0xFE0F,
        0x1F999, 0x1F680, 0x1F601, 0x1F636, 0x1F32B, 0x1D518, 0x20000, 0x10348,
    };
    cps.insert(cps.end(), std::begin(others), std::end(others));
    return cps;
}

std::string random_text(std::mt19937 &rng, const std::vector<uint32_t> &cps, size_t max_len) {
    std::uniform_int_distribution<size_t> len_dist(0, max_len), pick(0, cps.size() - 1);
    std::string s;
    const size_t n = len_dist(rng);
    for (size_t i = 0; i < n; ++i) pi::unicode::append_utf8(s, cps[pick(rng)]);
    return s;
}

std::string random_bytes(std::mt19937 &rng, size_t max_len) {
    std::uniform_int_distribution<size_t> len_dist(0, max_len);
    std::uniform_int_distribution<int> byte(0, 255);
    std::string s;
    const size_t n = len_dist(rng);
    for (size_t i = 0; i < n; ++i) s += static_cast<char>(byte(rng));
    return s;
}

// A mixed paragraph for the speed tests.
const char kParagraph[] =
    "The llama (Lama glama) is a domesticated South American camelid, widely used as a meat and pack animal by "
    "Andean cultures since the pre-Columbian era. Llamas can carry about 25 to 30% of their body weight for 8 to "
    "13 km (5\u20138 miles).\n\tEn fran\u00e7ais: le lama est un animal domestique. \u6211\u60f3\u5728apple"
    "\u5de5\u4f5c1314151\u5929 \u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440"
    "\u0441\u043a\u0438 \U0001F999\U0001F680 I've been 'told he's there... x = f(y) + 3.14159;   \n\n";

}  // namespace

TEST_CASE("llama: random Unicode text round-trips with SentencePiece's leading space", "[tokenizer]") {
    const auto tok = load("ggml-vocab-llama.gguf");
    std::mt19937 rng(1234);
    const std::vector<uint32_t> cps = sample_code_points();
    for (int i = 0; i < 500; ++i) {
        const std::string text = random_text(rng, cps, 40);
        INFO("text: \"" << text << "\"");
        const std::vector<pi::Token> ids = tok->encode(text, false);
        for (pi::Token id : ids) REQUIRE((id >= 0 && id < 32000));
        CHECK(detokenize(*tok, ids) == (text.empty() ? "" : " " + text));
    }
}

TEST_CASE("falcon: random Unicode text round-trips exactly", "[tokenizer]") {
    const auto tok = load("ggml-vocab-falcon.gguf");
    std::mt19937 rng(5678);
    const std::vector<uint32_t> cps = sample_code_points();
    for (int i = 0; i < 500; ++i) {
        const std::string text = random_text(rng, cps, 40);
        INFO("text: \"" << text << "\"");
        const std::vector<pi::Token> ids = tok->encode(text, false);
        for (pi::Token id : ids) REQUIRE((id >= 0 && id < 65024));
        CHECK(detokenize(*tok, ids) == text);
    }
}

TEST_CASE("llama: arbitrary bytes, invalid UTF-8 included, round-trip through byte tokens", "[tokenizer]") {
    const auto tok = load("ggml-vocab-llama.gguf");
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
        const std::string bytes = random_bytes(rng, 24);
        const std::vector<pi::Token> ids = tok->encode(bytes, false);
        CHECK(detokenize(*tok, ids) == (bytes.empty() ? "" : " " + bytes));
    }
    // A lone continuation byte and a truncated sequence each become byte tokens: <0x80> is id 3 + 0x80.
    CHECK(tok->encode("\x80", false) == std::vector<pi::Token>{29871, 3 + 0x80});
    CHECK(tok->encode("\xE4\xBD", false) == std::vector<pi::Token>{29871, 3 + 0xE4, 3 + 0xBD});
}

TEST_CASE("falcon: arbitrary bytes round-trip except the bytes its vocabulary lacks", "[tokenizer]") {
    const auto tok = load("ggml-vocab-falcon.gguf");
    for (int b = 0; b < 256; ++b) {
        INFO("byte " << b);
        const std::vector<pi::Token> ids = tok->encode(std::string(1, static_cast<char>(b)), false);
        CHECK(ids.size() == (falcon_lacks_byte(static_cast<uint8_t>(b)) ? 0u : 1u));
    }
    std::mt19937 rng(43);
    for (int i = 0; i < 300; ++i) {
        const std::string bytes = random_bytes(rng, 24);
        std::string expected;
        for (char c : bytes) {
            if (!falcon_lacks_byte(static_cast<uint8_t>(c))) expected += c;
        }
        CHECK(detokenize(*tok, tok->encode(bytes, false)) == expected);
    }
}

TEST_CASE("llama: a literal U+2581 in the text reads as a space (as in SentencePiece)", "[tokenizer]") {
    const auto tok = load("ggml-vocab-llama.gguf");
    CHECK(tok->encode("\u2581Hello", false) == tok->encode(" Hello", false));
}

// Long and pathological inputs (one 20,000-character word, 30 KB of CJK) exercise the merge queues at scale; a
// quadratic merge would make this test take minutes. (Speed itself is measured by benchmarks, not asserted here:
// about a millisecond per 10 KB in a release build.)
TEST_CASE("long and pathological texts encode and decode back", "[tokenizer]") {
    std::string mixed;
    while (mixed.size() < 64 * 1024) mixed += kParagraph;
    std::string one_word(20000, 'a');  // a single pre-token word: BPE and SPM merge within one long run
    std::string cjk;
    while (cjk.size() < 30000) cjk += "\u6211\u60f3\u5728\u5de5\u4f5c";
    for (const char *name : {"ggml-vocab-llama.gguf", "ggml-vocab-falcon.gguf"}) {
        INFO(name);
        const auto tok = load(name);
        const bool spm = tok->vocab().model == "llama";
        for (const std::string *text : {&mixed, &one_word, &cjk}) {
            const std::vector<pi::Token> ids = tok->encode(*text, false);
            INFO(text->size() << " bytes -> " << ids.size() << " tokens");
            CHECK(ids.size() > 1);
            CHECK(ids.size() < text->size());  // merges happened
            CHECK(detokenize(*tok, ids) == (spm ? " " : "") + *text);
        }
    }
}
