// Vocabulary metadata checks and errors, the merge rules on small hand-built vocabularies, and the byte-level
// pre-tokenizers on their own.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/bpe_pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using pi::Token;
using pi::gguf::Value;
using pi::gguf::ValueType;
using Ids = std::vector<Token>;

const std::string kMark = "\u2581";  // SentencePiece's space
const std::string kG = "\u0120";     // GPT-2's symbol for the byte 20 (space)

// Runs f and checks that it throws pi::Error with this status and a message containing every fragment.
template <typename F>
void check_error(F &&f, pi_status status, const std::vector<std::string> &fragments) {
    try {
        f();
        FAIL("no error thrown");
    } catch (const pi::Error &e) {
        INFO("message: " << e.what());
        CHECK(e.status() == status);
        for (const std::string &frag : fragments) CHECK_THAT(e.what(), Catch::Contains(frag));
    }
}

// A llama-style vocabulary: pieces with scores, byte tokens optional.
pi::Vocabulary spm_vocab(const std::vector<std::pair<std::string, float>> &pieces, bool byte_tokens) {
    pi::Vocabulary v;
    v.model = "llama";
    const auto add = [&](const std::string &text, float score, int32_t type) {
        v.tokens.push_back(text);
        v.scores.push_back(score);
        v.token_types.push_back(type);
    };
    add("<unk>", 0, pi::token_type::kUnknown);
    add("<s>", 0, pi::token_type::kControl);
    add("</s>", 0, pi::token_type::kControl);
    v.unk = 0;
    v.bos = 1;
    v.eos = 2;
    if (byte_tokens) {
        for (int b = 0; b < 256; ++b) {
            char name[8];
            std::snprintf(name, sizeof name, "<0x%02X>", b);
            add(name, 0, pi::token_type::kByte);
        }
    }
    for (const auto &p : pieces) add(p.first, p.second, pi::token_type::kNormal);
    return v;
}

Token id_of(const pi::Tokenizer &tok, const std::string &text) {
    const auto &tokens = tok.vocab().tokens;
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] == text) return static_cast<Token>(i);
    }
    FAIL("no token " << text);
    return -1;
}

// A byte-level BPE vocabulary: the symbols of some single bytes, merges in rank order.
pi::Vocabulary bpe_vocab(const std::vector<std::string> &symbols, const std::vector<std::string> &merges) {
    pi::Vocabulary v;
    v.model = "gpt2";
    v.tokens = symbols;
    v.merges = merges;
    for (const std::string &m : merges) {
        std::string joined = m;
        joined.erase(joined.find(' '), 1);
        v.tokens.push_back(joined);
    }
    return v;
}

std::vector<std::string> words(const std::string &text, pi::PreTokenizer kind) {
    std::vector<std::string> out;
    for (const pi::Word &w : pi::pretokenize(text, kind)) out.push_back(text.substr(w.begin, w.end - w.begin));
    return out;
}

// The tokenizer.* metadata of a small valid llama vocabulary, for corrupting one key at a time.
struct MetaFile {
    std::vector<std::pair<std::string, Value>> kv;

    MetaFile() {
        set("general.architecture", pi::gguf::make_string("llama"));
        set("tokenizer.ggml.model", pi::gguf::make_string("llama"));
        set("tokenizer.ggml.tokens", strings({"<unk>", "<s>", "</s>", "a", "b", "ab"}));
        set("tokenizer.ggml.scores", floats({0, 0, 0, -1, -2, -0.5f}));
        set("tokenizer.ggml.token_type", ints({2, 3, 3, 1, 1, 1}));
        set("tokenizer.ggml.bos_token_id", pi::gguf::make_uint32(1));
        set("tokenizer.ggml.eos_token_id", pi::gguf::make_uint32(2));
        set("tokenizer.ggml.unknown_token_id", pi::gguf::make_uint32(0));
    }
    static Value strings(const std::vector<std::string> &items) {
        std::vector<Value> values;
        for (const std::string &s : items) values.push_back(pi::gguf::make_string(s));
        return pi::gguf::make_array(ValueType::STRING, values);
    }
    static Value floats(const std::vector<float> &items) {
        std::vector<Value> values;
        for (float f : items) values.push_back(pi::gguf::make_float32(f));
        return pi::gguf::make_array(ValueType::FLOAT32, values);
    }
    static Value ints(const std::vector<int64_t> &items) {
        std::vector<Value> values;
        for (int64_t i : items) values.push_back(pi::gguf::make_int(ValueType::INT32, i));
        return pi::gguf::make_array(ValueType::INT32, values);
    }
    void set(const std::string &key, const Value &value) {
        for (auto &entry : kv) {
            if (entry.first == key) {
                entry.second = value;
                return;
            }
        }
        kv.emplace_back(key, value);
    }
    void erase(const std::string &key) {
        for (size_t i = 0; i < kv.size(); ++i) {
            if (kv[i].first == key) kv.erase(kv.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
    // Writes the file with the gguf writer, reads it back with the reader and decodes the vocabulary.
    pi::Vocabulary read() const {
        pi::gguf::Writer writer;
        for (const auto &entry : kv) writer.add(entry.first, entry.second);
        const std::vector<uint8_t> bytes = writer.to_bytes();
        const auto file = pi::gguf::File::from_memory(bytes.data(), bytes.size());
        return pi::Vocabulary::from_gguf(*file);
    }
};

}  // namespace

TEST_CASE("vocabulary from a written GGUF file round-trips its metadata", "[tokenizer]") {
    MetaFile meta;
    pi::Vocabulary v = meta.read();
    CHECK(v.model == "llama");
    CHECK(v.tokens == std::vector<std::string>{"<unk>", "<s>", "</s>", "a", "b", "ab"});
    CHECK(v.scores == std::vector<float>{0, 0, 0, -1, -2, -0.5f});
    CHECK(v.token_types == std::vector<int32_t>{2, 3, 3, 1, 1, 1});
    CHECK((v.bos == 1 && v.eos == 2 && v.unk == 0));
    CHECK(v.add_space_prefix);
    // tokenizer.ggml.add_space_prefix = false is honoured.
    meta.set("tokenizer.ggml.add_space_prefix", pi::gguf::make_bool(false));
    v = meta.read();
    CHECK_FALSE(v.add_space_prefix);
    const auto tok = pi::Tokenizer::create(v);
    CHECK(tok->encode("ab", true) == Ids{1, 5});
}

TEST_CASE("vocabulary metadata errors name the key", "[tokenizer]") {
    SECTION("unsupported tokenizer model") {
        MetaFile meta;
        meta.set("tokenizer.ggml.model", pi::gguf::make_string("bert"));
        check_error([&] { meta.read(); }, PI_ERR_UNSUPPORTED, {"tokenizer.ggml.model", "bert"});
    }
    SECTION("missing model") {
        MetaFile meta;
        meta.erase("tokenizer.ggml.model");
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.model"});
    }
    SECTION("missing tokens") {
        MetaFile meta;
        meta.erase("tokenizer.ggml.tokens");
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.tokens", "missing"});
    }
    SECTION("tokens of the wrong type") {
        MetaFile meta;
        meta.set("tokenizer.ggml.tokens", MetaFile::ints({1, 2, 3}));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.tokens"});
    }
    SECTION("empty token list") {
        MetaFile meta;
        meta.set("tokenizer.ggml.tokens", MetaFile::strings({}));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.tokens", "empty"});
    }
    SECTION("scores of another length") {
        MetaFile meta;
        meta.set("tokenizer.ggml.scores", MetaFile::floats({0, 0, 0}));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.scores", "3 entries", "has 6"});
    }
    SECTION("llama without scores") {
        MetaFile meta;
        meta.erase("tokenizer.ggml.scores");
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.scores", "missing"});
    }
    SECTION("token types of another length") {
        MetaFile meta;
        meta.set("tokenizer.ggml.token_type", MetaFile::ints({1, 1, 1, 1, 1, 1, 1}));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.token_type", "7 entries"});
    }
    SECTION("unknown token type") {
        MetaFile meta;
        meta.set("tokenizer.ggml.token_type", MetaFile::ints({2, 3, 3, 1, 9, 1}));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.token_type", "9"});
    }
    SECTION("special ids out of range") {
        for (const char *key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                "tokenizer.ggml.unknown_token_id"}) {
            INFO(key);
            MetaFile meta;
            meta.set(key, pi::gguf::make_uint32(6));
            check_error([&] { meta.read(); }, PI_ERR_FORMAT, {key, "6", "[0, 6)"});
            meta.set(key, pi::gguf::make_uint(ValueType::UINT64, 1ull << 40));
            check_error([&] { meta.read(); }, PI_ERR_FORMAT, {key, std::to_string(1ull << 40)});
            meta.set(key, pi::gguf::make_int(ValueType::INT32, -5));
            check_error([&] { meta.read(); }, PI_ERR_FORMAT, {key, "-5"});
        }
    }
    SECTION("gpt2 without merges") {
        MetaFile meta;
        meta.set("tokenizer.ggml.model", pi::gguf::make_string("gpt2"));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.merges", "missing"});
    }
    SECTION("gpt2 merge that is not two symbols") {
        MetaFile meta;
        meta.set("tokenizer.ggml.model", pi::gguf::make_string("gpt2"));
        meta.set("tokenizer.ggml.merges", MetaFile::strings({"a b", "ab"}));
        check_error([&] { meta.read(); }, PI_ERR_FORMAT, {"tokenizer.ggml.merges", "entry 1", "'ab'"});
    }
    SECTION("gpt2 with a pre-tokenizer we do not implement") {
        MetaFile meta;
        meta.set("tokenizer.ggml.model", pi::gguf::make_string("gpt2"));
        meta.set("tokenizer.ggml.merges", MetaFile::strings({"a b"}));
        meta.set("tokenizer.ggml.pre", pi::gguf::make_string("llama-bpe"));
        check_error([&] { meta.read(); }, PI_ERR_UNSUPPORTED, {"tokenizer.ggml.pre", "llama-bpe"});
    }
}

TEST_CASE("gpt2 pre-tokenizer: from tokenizer.ggml.pre, else from the architecture", "[tokenizer]") {
    MetaFile meta;
    meta.set("tokenizer.ggml.model", pi::gguf::make_string("gpt2"));
    meta.set("tokenizer.ggml.merges", MetaFile::strings({"a b"}));
    CHECK(meta.read().pre == "default");
    meta.set("general.architecture", pi::gguf::make_string("falcon"));
    CHECK(meta.read().pre == "falcon");
    meta.set("tokenizer.ggml.pre", pi::gguf::make_string("gpt-2"));
    CHECK(meta.read().pre == "gpt-2");
}

TEST_CASE("hand-built vocabularies are checked when a tokenizer is created", "[tokenizer]") {
    pi::Vocabulary v = spm_vocab({{"a", -1}}, true);
    v.bos = 1000;
    check_error([&] { pi::Tokenizer::create(v); }, PI_ERR_FORMAT, {"tokenizer.ggml.bos_token_id", "1000"});
    v = spm_vocab({{"a", -1}}, true);
    v.scores.pop_back();
    check_error([&] { pi::Tokenizer::create(v); }, PI_ERR_FORMAT, {"tokenizer.ggml.scores"});
    v = pi::Vocabulary{};
    v.model = "gpt2";
    check_error([&] { pi::Tokenizer::create(v); }, PI_ERR_FORMAT, {"tokenizer.ggml.tokens", "empty"});
    v.model = "rwkv";
    check_error([&] { pi::Tokenizer::create(v); }, PI_ERR_UNSUPPORTED, {"rwkv"});
    // Neither byte tokens nor unk: characters outside the vocabulary could not be encoded.
    v = spm_vocab({{"a", -1}}, false);
    v.unk = -1;
    check_error([&] { pi::Tokenizer::create(v); }, PI_ERR_FORMAT, {"<0x00>", "tokenizer.ggml.unknown_token_id"});
}

TEST_CASE("spm merges the best-scoring pair first, leftmost on ties", "[tokenizer]") {
    // Scores decide: "ab" (-1) beats "ba" (-2), so "bab" is b|ab, although "ba" comes first.
    auto tok = pi::Tokenizer::create(spm_vocab(
        {{kMark, -10}, {"a", -3}, {"b", -3}, {"ab", -1}, {"ba", -2}, {"aa", -1}, {kMark + "a", -4}}, true));
    const Token mark = id_of(*tok, kMark), a = id_of(*tok, "a"), b = id_of(*tok, "b"), ab = id_of(*tok, "ab"),
                aa = id_of(*tok, "aa"), mark_a = id_of(*tok, kMark + "a");
    CHECK(tok->encode("bab", false) == Ids{mark, b, ab});
    // Ties go to the leftmost pair: "aaa" is aa|a.
    CHECK(tok->encode("aaa", false) == Ids{mark, aa, a});
    // The leading space mark merges only when it scores best: "ab" (-1) before "▁a" (-4).
    CHECK(tok->encode("ab", false) == Ids{mark, ab});
    CHECK(tok->encode("a", true) == Ids{1, mark_a});
}

TEST_CASE("spm falls back to byte tokens, or to unk without them", "[tokenizer]") {
    auto with_bytes = pi::Tokenizer::create(spm_vocab({{kMark, -1}, {"a", -1}}, true));
    // "é" is C3 A9: byte tokens <0xC3> <0xA9> are ids 3 + byte.
    CHECK(with_bytes->encode("a\u00e9", false) == Ids{id_of(*with_bytes, kMark), id_of(*with_bytes, "a"),
                                                      3 + 0xC3, 3 + 0xA9});
    auto without = pi::Tokenizer::create(spm_vocab({{kMark, -1}, {"a", -1}}, false));
    CHECK(without->encode("a\u00e9\u6211", false) == Ids{3, 4, 0, 0});  // one unk per character
    CHECK(without->piece(0) == " \u2047 ");
}

TEST_CASE("spm never forms control pieces from text", "[tokenizer]") {
    auto tok = pi::Tokenizer::create(spm_vocab({{kMark, -1}, {"<", -1}, {"s", -1}, {">", -1}, {"<s", -1}}, true));
    // "<s>" is a control token, so the text "<s>" stays literal (as in SentencePiece); "<s" is a normal piece.
    CHECK(tok->encode("<s>", false) == Ids{id_of(*tok, kMark), id_of(*tok, "<s"), id_of(*tok, ">")});
}

TEST_CASE("bpe merges the lowest rank first, leftmost on ties", "[tokenizer]") {
    {
        auto tok = pi::Tokenizer::create(bpe_vocab({"a", "b", "c"}, {"a b", "b c"}));
        CHECK(tok->encode("abc", false) == Ids{id_of(*tok, "ab"), id_of(*tok, "c")});
    }
    {
        auto tok = pi::Tokenizer::create(bpe_vocab({"a", "b", "c"}, {"b c", "a b"}));
        CHECK(tok->encode("abc", false) == Ids{id_of(*tok, "a"), id_of(*tok, "bc")});
    }
    {
        auto tok = pi::Tokenizer::create(bpe_vocab({"a"}, {"a a", "aa aa"}));
        CHECK(tok->encode("aaa", false) == Ids{id_of(*tok, "aa"), id_of(*tok, "a")});
        CHECK(tok->encode("aaaaa", false) == Ids{id_of(*tok, "aaaa"), id_of(*tok, "a")});
    }
    {
        // Words never merge across pre-tokenizer boundaries; the space is the symbol Ġ.
        auto tok = pi::Tokenizer::create(bpe_vocab({"a", "b", kG}, {kG + " a", "a b"}));
        CHECK(tok->encode("ab ab", false) == Ids{id_of(*tok, "ab"), id_of(*tok, kG + "a"), id_of(*tok, "b")});
        CHECK(tok->piece(id_of(*tok, kG + "a")) == " a");
    }
    {
        // Bytes without a symbol token: unk when there is one, otherwise dropped. (\x01 is a word of its own.)
        pi::Vocabulary v = bpe_vocab({"a", "<unk>"}, {"a a"});
        auto dropping = pi::Tokenizer::create(v);
        CHECK(dropping->encode("a\x01" "a", false) == Ids{0, 0});
        CHECK(dropping->encode("aa", false) == Ids{id_of(*dropping, "aa")});
        v.unk = 1;
        auto unk = pi::Tokenizer::create(v);
        CHECK(unk->encode("a\x01" "a", false) == Ids{0, 1, 0});
    }
}

TEST_CASE("gpt2 pre-tokenizer follows the GPT-2 regex", "[tokenizer]") {
    using V = std::vector<std::string>;
    const auto gpt2 = [](const std::string &text) { return words(text, pi::PreTokenizer::Gpt2); };
    CHECK(gpt2("").empty());
    CHECK(gpt2("Hello world") == V{"Hello", " world"});
    CHECK(gpt2("I'm here's don't we'll they've you're I'd") ==
          V{"I", "'m", " here", "'s", " don", "'t", " we", "'ll", " they", "'ve", " you", "'re", " I", "'d"});
    CHECK(gpt2("'S 'RE") == V{"'", "S", " '", "RE"});  // contractions are case-sensitive
    CHECK(gpt2("a  b") == V{"a", " ", " b"});          // \s+(?!\S) leaves the last space to the word
    CHECK(gpt2("a \n\nb") == V{"a", " \n", "\n", "b"});
    CHECK(gpt2("x   ") == V{"x", "   "});
    CHECK(gpt2("\tfoo") == V{"\t", "foo"});
    CHECK(gpt2("abc123 456!!? ...") == V{"abc", "123", " 456", "!!?", " ..."});
    CHECK(gpt2("caf\u00e9 \u043d\u0435\u0449\u043e \u6211\u60f3") == V{"caf\u00e9", " \u043d\u0435\u0449\u043e",
                                                                         " \u6211\u60f3"});
    CHECK(gpt2("x\u00a0y") == V{"x", "\u00a0", "y"});             // NBSP is whitespace, not " ?"
    CHECK(gpt2("\u0661\u0662 \u00bd") == V{"\u0661\u0662", " \u00bd"});  // \p{N} beyond ASCII
    CHECK(gpt2(" \U0001F999.cpp") == V{" \U0001F999.", "cpp"});
    CHECK(gpt2("\xFF\xFE" "a") == V{"\xFF\xFE", "a"});             // invalid bytes are "other" characters
}

TEST_CASE("falcon pre-tokenizer splits punctuation, digits and triples first", "[tokenizer]") {
    using V = std::vector<std::string>;
    const auto falcon = [](const std::string &text) { return words(text, pi::PreTokenizer::Falcon); };
    CHECK(falcon("y'all!") == V{"y", "'", "all", "!"});  // punctuation comes out before contractions
    CHECK(falcon(" (x)") == V{" ", "(", "x", ")"});
    CHECK(falcon("$5 <=> a|b") == V{"$", "5", " ", "<=>", " a", "|", "b"});  // ASCII symbols count as punctuation
    CHECK(falcon("12345678") == V{"123", "456", "78"});
    CHECK(falcon("w048 7tuijk") == V{"w", "048", " ", "7", "tuijk"});
    CHECK(falcon("3.14") == V{"3", ".", "14"});
    // Digits are split on byte symbols: ü is C3 BC and BC is the symbol ¼, a number.
    CHECK(falcon("F\u00fchrer") == V{"F\xC3", "\xBC", "hrer"});
    CHECK(falcon("\n =") == V{"\n ", "="});
}

TEST_CASE("character classes for the pre-tokenizer regexes", "[tokenizer]") {
    using pi::unicode::char_class;
    using C = pi::unicode::CharClass;
    for (uint32_t cp : {0x41u, 0xE9u, 0x436u, 0x6211u, 0xAC00u, 0x1780u, 0x2C6u, 0x1D518u, 0x20000u}) {
        INFO("U+" << std::hex << cp);
        CHECK(char_class(cp) == C::Letter);  // Lu, Ll, Lo, Lm, across scripts and planes
    }
    for (uint32_t cp : {0x35u, 0xBDu, 0xB2u, 0x663u, 0x216Bu, 0x1D7CEu}) {
        INFO("U+" << std::hex << cp);
        CHECK(char_class(cp) == C::Number);  // Nd, No, Nl
    }
    for (uint32_t cp : {0x20u, 0x09u, 0x0Au, 0x0Du, 0x85u, 0xA0u, 0x2009u, 0x2028u, 0x3000u}) {
        INFO("U+" << std::hex << cp);
        CHECK(char_class(cp) == C::Space);  // White_Space
    }
    for (uint32_t cp : {0x2Cu, 0x27u, 0xABu, 0x2014u, 0x3002u, 0xFF0Cu}) {
        INFO("U+" << std::hex << cp);
        CHECK(char_class(cp) == C::Punct);
    }
    // Symbols, marks, controls that are not White_Space, private use, beyond Unicode.
    for (uint32_t cp : {0x24u, 0x2Bu, 0x7Eu, 0x1Cu, 0x301u, 0x200Du, 0x1F999u, 0xFF5Eu, 0x10FFFDu, 0x110000u}) {
        INFO("U+" << std::hex << cp);
        CHECK(char_class(cp) == C::Other);
    }
}
