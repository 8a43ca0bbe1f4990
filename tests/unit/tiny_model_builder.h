// Builds small but complete GGUF models in memory with pi::gguf::Writer, so the API tests need no Python and can
// break any one part of a file on purpose.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"

namespace pi::test {

struct TinyModelSpec {
    std::string arch = "llama";  // llama | falcon | opt | bamboo
    uint32_t n_embd = 32;
    uint32_t n_layer = 2;
    uint32_t n_ff = 64;
    uint32_t n_head = 4;
    uint32_t n_head_kv = 2;
    uint32_t n_ctx_train = 64;
    bool predictors = false;
    bool pwri_magic = false;
    std::set<std::string> omit_tensors;   // names to leave out
    std::set<std::string> omit_keys;      // metadata keys to leave out
    std::string wrong_shape_tensor;       // this tensor gets one extra row
    bool q4_0 = false;                    // 2-D weights of whole 32-blocks rows written as Q4_0, the rest F32
};

// A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then a few word pieces.
std::vector<std::string> tiny_vocab_tokens();

pi::gguf::Writer build_tiny_model(const TinyModelSpec &spec);

// Writes the model to a unique temporary file and returns its path.
std::string write_tiny_model(const TinyModelSpec &spec, const std::string &name);

}  // namespace pi::test
