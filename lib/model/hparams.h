// Architecture and hyper-parameters of a model, read from GGUF metadata and validated.
#pragma once

#include <cstdint>
#include <string>

#include "gguf/gguf_file.h"

namespace pi {

enum class Arch { Llama, Bamboo, Falcon, Opt };

// The FFN activation (DESIGN §5). Silu is the dense gated FFN of Llama/Mistral; the others are ReLU-family and can
// run sparse.
enum class FfnActivation { Silu, Reglu, Drelu, Relu };

enum class RopeMode { None, Normal /* adjacent pairs */, Neox /* halves */ };

struct HParams {
    Arch arch = Arch::Llama;
    std::string arch_name;  // as in general.architecture
    uint32_t n_vocab = 0;
    uint32_t n_ctx_train = 0;
    uint32_t n_embd = 0;
    uint32_t n_layer = 0;
    uint32_t n_ff = 0;
    uint32_t n_head = 0;
    uint32_t n_head_kv = 0;
    uint32_t head_dim = 0;
    uint32_t rope_dim = 0;
    float rope_freq_base = 10000.0f;
    float norm_eps = 1e-5f;
    RopeMode rope_mode = RopeMode::Normal;
    FfnActivation activation = FfnActivation::Silu;
    bool activation_from_file = false;  // powerinfer.ffn_activation was present
    float sparse_threshold = 0.0f;      // powerinfer.sparse_threshold, default 0

    // Reads general.architecture and the {arch}.* keys. n_vocab comes from the tokenizer (set by the caller).
    // Throws PI_ERR_UNSUPPORTED for unknown architectures, PI_ERR_FORMAT for missing or inconsistent values.
    static HParams from_gguf(const gguf::File &file);
};

const char *activation_name(FfnActivation activation);
bool activation_is_relu_family(FfnActivation activation);

}  // namespace pi
