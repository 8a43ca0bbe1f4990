// Reading and checking the tokenizer.* metadata.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace pi {
namespace {

constexpr const char *kModel = "tokenizer.ggml.model";
constexpr const char *kTokens = "tokenizer.ggml.tokens";
constexpr const char *kScores = "tokenizer.ggml.scores";
constexpr const char *kTypes = "tokenizer.ggml.token_type";
constexpr const char *kMerges = "tokenizer.ggml.merges";
constexpr const char *kBos = "tokenizer.ggml.bos_token_id";
constexpr const char *kEos = "tokenizer.ggml.eos_token_id";
constexpr const char *kUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char *kSpacePrefix = "tokenizer.ggml.add_space_prefix";
constexpr const char *kPre = "tokenizer.ggml.pre";

std::string quoted(const std::string &key) { return "metadata '" + key + "'"; }

// A special token id from the file: absent means none (-1). Kept as int64 until checked so that a huge value is
// reported as itself, not as whatever it wraps to.
Token read_special_id(const gguf::File &file, const char *key, size_t n_vocab) {
    const int64_t id = file.get_int_or(key, -1);
    if (id < -1 || id >= static_cast<int64_t>(n_vocab)) {
        fail(PI_ERR_FORMAT, quoted(key) + " = " + std::to_string(id) + " is out of range [0, " +
                                std::to_string(n_vocab) + ")");
    }
    return static_cast<Token>(id);
}

void check_special_id(const char *key, Token id, size_t n_vocab) {
    if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n_vocab)) {
        fail(PI_ERR_FORMAT, quoted(key) + " = " + std::to_string(id) + " is out of range [0, " +
                                std::to_string(n_vocab) + ")");
    }
}

void check_length(const char *key, size_t n, size_t n_vocab) {
    if (n != 0 && n != n_vocab) {
        fail(PI_ERR_FORMAT, quoted(key) + " has " + std::to_string(n) + " entries but " + quoted(kTokens) +
                                " has " + std::to_string(n_vocab));
    }
}

}  // namespace

Vocabulary Vocabulary::from_gguf(const gguf::File &file) {
    Vocabulary v;
    v.model = file.get_string(kModel);
    // Fail on the model first: a file with an unsupported tokenizer should say so, not complain about details.
    if (v.model != "llama" && v.model != "gpt2") {
        fail(PI_ERR_UNSUPPORTED, quoted(kModel) + " = '" + v.model + "' is not a supported tokenizer (llama, gpt2)");
    }

    std::optional<std::vector<std::string>> tokens = file.get_string_array(kTokens);
    if (!tokens) fail(PI_ERR_FORMAT, quoted(kTokens) + " is missing");
    v.tokens = std::move(*tokens);
    const size_t n = v.tokens.size();
    if (n == 0) fail(PI_ERR_FORMAT, quoted(kTokens) + " is empty");

    if (auto scores = file.get_float_array(kScores)) {
        v.scores.reserve(scores->size());
        for (double s : *scores) v.scores.push_back(static_cast<float>(s));
    }
    if (auto types = file.get_int_array(kTypes)) {
        v.token_types.reserve(types->size());
        for (int64_t t : *types) {
            if (t < token_type::kUndefined || t > token_type::kByte) {
                fail(PI_ERR_FORMAT, quoted(kTypes) + " holds " + std::to_string(t) + ", not a token type (0..6)");
            }
            v.token_types.push_back(static_cast<int32_t>(t));
        }
    }
    if (auto merges = file.get_string_array(kMerges)) v.merges = std::move(*merges);

    v.bos = read_special_id(file, kBos, n);
    v.eos = read_special_id(file, kEos, n);
    v.unk = read_special_id(file, kUnk, n);
    // SentencePiece's LLaMA model prepends a space ("add_dummy_prefix"); files that predate the key mean that.
    v.add_space_prefix = file.get_bool_or(kSpacePrefix, v.model == "llama");
    if (v.model == "gpt2") {
        const std::string arch = file.get_string_or("general.architecture", "");
        v.pre = file.get_string_or(kPre, arch == "falcon" ? "falcon" : "default");
    }
    v.validate();
    return v;
}

void Vocabulary::validate() const {
    if (model != "llama" && model != "gpt2") {
        fail(PI_ERR_UNSUPPORTED, quoted(kModel) + " = '" + model + "' is not a supported tokenizer (llama, gpt2)");
    }
    const size_t n = tokens.size();
    if (n == 0) fail(PI_ERR_FORMAT, quoted(kTokens) + " is empty");
    if (n > static_cast<size_t>(std::numeric_limits<Token>::max())) {
        fail(PI_ERR_FORMAT, quoted(kTokens) + " has " + std::to_string(n) + " entries, more than token ids hold");
    }
    check_length(kScores, scores.size(), n);
    check_length(kTypes, token_types.size(), n);
    for (int32_t t : token_types) {
        if (t < token_type::kUndefined || t > token_type::kByte) {
            fail(PI_ERR_FORMAT, quoted(kTypes) + " holds " + std::to_string(t) + ", not a token type (0..6)");
        }
    }
    check_special_id(kBos, bos, n);
    check_special_id(kEos, eos, n);
    check_special_id(kUnk, unk, n);

    if (model == "llama") {
        // Without scores the merge order is undefined: refusing beats tokenizing differently from the model.
        if (scores.empty()) fail(PI_ERR_FORMAT, quoted(kScores) + " is missing (the llama tokenizer needs it)");
        return;
    }
    if (merges.empty()) fail(PI_ERR_FORMAT, quoted(kMerges) + " is missing (the gpt2 tokenizer needs it)");
    for (size_t i = 0; i < merges.size(); ++i) {
        const size_t space = merges[i].find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == merges[i].size()) {
            fail(PI_ERR_FORMAT, quoted(kMerges) + " entry " + std::to_string(i) + " ('" + merges[i] +
                                    "') is not two symbols separated by a space");
        }
    }
    if (pre != "default" && pre != "gpt-2" && pre != "falcon") {
        fail(PI_ERR_UNSUPPORTED,
             quoted(kPre) + " = '" + pre + "' is not a supported pre-tokenizer (default, gpt-2, falcon)");
    }
}

int32_t Vocabulary::type_of(Token token) const {
    if (token < 0 || static_cast<size_t>(token) >= tokens.size()) return token_type::kUndefined;
    if (token_types.empty()) return token_type::kNormal;
    return token_types[static_cast<size_t>(token)];
}

}  // namespace pi
