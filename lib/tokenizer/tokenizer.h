// Tokenizers built from GGUF metadata: SentencePiece-style ("llama": scores, byte-fallback <0xNN> pieces) and GPT-2
// byte-level BPE ("gpt2": merges).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_file.h"

namespace pi {

using Token = int32_t;

// Values of tokenizer.ggml.token_type (llama.cpp's numbering).
namespace token_type {
constexpr int32_t kUndefined = 0;
constexpr int32_t kNormal = 1;
constexpr int32_t kUnknown = 2;
constexpr int32_t kControl = 3;
constexpr int32_t kUserDefined = 4;
constexpr int32_t kUnused = 5;
constexpr int32_t kByte = 6;
}  // namespace token_type

// The tokenizer.* metadata of a GGUF file, decoded. Separate from the algorithms so tests can build vocabularies
// by hand.
struct Vocabulary {
    std::string model;                 // tokenizer.ggml.model: "llama" or "gpt2"
    std::vector<std::string> tokens;   // tokenizer.ggml.tokens
    std::vector<float> scores;         // tokenizer.ggml.scores (may be empty for gpt2)
    std::vector<int32_t> token_types;  // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control,
                                       // 4 user-defined, 5 unused, 6 byte (may be empty)
    std::vector<std::string> merges;   // tokenizer.ggml.merges ("a b"), gpt2 only
    Token bos = -1;                    // tokenizer.ggml.bos_token_id
    Token eos = -1;                    // tokenizer.ggml.eos_token_id
    Token unk = -1;                    // tokenizer.ggml.unknown_token_id
    bool add_space_prefix = true;      // tokenizer.ggml.add_space_prefix (llama)
    // gpt2 only: which pre-tokenizer splits text into words before BPE. tokenizer.ggml.pre where present
    // ("default"/"gpt-2": the GPT-2 regex; "falcon": Falcon's sequence, see bpe_pretokenizer.h); files written
    // before that key existed get "falcon" when general.architecture is falcon, else "default".
    std::string pre = "default";

    // Throws pi::Error(PI_ERR_FORMAT) naming the key when tokenizer metadata is missing or inconsistent
    // (lengths differ, ids out of range), PI_ERR_UNSUPPORTED for other tokenizer models.
    static Vocabulary from_gguf(const gguf::File &file);

    // The same checks for a vocabulary built by hand (Tokenizer::create runs them): the model is supported, the
    // arrays agree in length, special ids are -1 or in range, types are known, merges are "left right", a llama
    // vocabulary has scores, gpt2 has merges and a known pre-tokenizer.
    void validate() const;

    // The type of a token (kNormal when token_types is empty).
    int32_t type_of(Token token) const;
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Throws pi::Error (see Vocabulary::from_gguf).
    static std::unique_ptr<Tokenizer> create(Vocabulary vocab);

    // Encodes UTF-8 text (invalid UTF-8 bytes are encoded as byte tokens / byte-level symbols, never rejected;
    // a byte-level vocabulary without a byte's symbol and without unk drops that byte, see bpe_tokenizer.h).
    // Text is plain text: special-token strings such as "<s>" are not matched. Thread-safe (const, no caches).
    virtual std::vector<Token> encode(std::string_view text, bool add_bos) const = 0;

    // The raw bytes of one token: SentencePiece's U+2581 becomes ' ', <0xNN> becomes byte NN, GPT-2 byte-level
    // symbols map back to their bytes; control and unused tokens and the BOS/EOS ids give "", an unknown token
    // SentencePiece's " \u2047 " (llama).
    // Throws PI_ERR_INVALID_ARGUMENT for ids outside [0, n_vocab).
    virtual std::string piece(Token token) const = 0;

    const Vocabulary &vocab() const { return vocab_; }
    size_t n_vocab() const { return vocab_.tokens.size(); }
    Token bos() const { return vocab_.bos; }
    Token eos() const { return vocab_.eos; }

protected:
    explicit Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {}
    Vocabulary vocab_;
};

// Streams whole UTF-8 characters out of a sequence of token pieces.
class Utf8Stream {
public:
    // Appends bytes and returns the prefix of complete UTF-8 characters not yet returned; an incomplete trailing
    // sequence is held back. Invalid bytes are passed through as U+FFFD so the stream never stalls.
    std::string push(std::string_view bytes);
    // Whatever is held back, as U+FFFD (end of stream).
    std::string flush();

private:
    std::string pending_;
};

}  // namespace pi
