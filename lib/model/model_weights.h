// The model's tensors bound by role, with every shape checked against the hyper-parameters at load time, so the
// forward pass never meets a surprise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/hparams.h"

namespace pi {

// A view of one tensor inside the mapped file. Empty (info == nullptr) when the model has no such tensor.
struct WeightView {
    const gguf::TensorInfo *info = nullptr;
    const uint8_t *data = nullptr;

    explicit operator bool() const { return info != nullptr; }
    gguf::TensorType type() const { return info->type; }
    uint64_t cols() const { return info->dims[0]; }                              // contiguous dimension
    uint64_t rows() const { return info->dims.size() > 1 ? info->dims[1] : 1; }
};

struct LayerWeights {
    WeightView attn_norm, attn_norm_b;      // pre-attention norm (falcon-7B: the layer's only norm)
    WeightView attn_norm_2, attn_norm_2_b;  // falcon-40B: the FFN's norm
    WeightView wq, wk, wv, wqkv, wo;        // wqkv: falcon's fused [q heads; k heads; v heads]
    WeightView bq, bk, bv, bo;              // opt
    WeightView ffn_norm, ffn_norm_b;
    WeightView ffn_gate, ffn_up, ffn_up_b;
    WeightView ffn_down;    // (n_embd rows of n_ff): dense layout
    WeightView ffn_down_t;  // (n_ff rows of n_embd): one row per neuron, PowerInfer layout
    WeightView ffn_down_b;
    WeightView fc1, fc2;    // activation predictor: fc2 · relu(fc1 · h)
    WeightView act_freq;    // profiled activation frequencies (n_ff, F32), optional
};

struct ModelWeights {
    WeightView token_embd, position_embd;
    WeightView output_norm, output_norm_b;
    WeightView output;  // empty: tied to token_embd
    std::vector<LayerWeights> layers;
    bool has_predictors = false;
    uint64_t n_params = 0;
    uint64_t n_bytes = 0;
    uint64_t decode_bytes = 0;  // weights one dense decode step reads (see pi_model_info.decode_weight_bytes)
    uint64_t ffn_bytes = 0;        // the FFN matrices (gate, up, down) of every layer
    uint64_t predictor_bytes = 0;  // the predictors (fc1, fc2) of every layer

    // Binds and checks every tensor the architecture needs. n_vocab is taken from token_embd. Throws
    // PI_ERR_FORMAT naming the tensor when one is missing or has the wrong shape or type. `hp.activation` may be
    // updated by the caller afterwards (DESIGN §5: predictors imply ReLU for llama files without the key).
    static ModelWeights bind(const gguf::File &file, const HParams &hp);
};

}  // namespace pi
