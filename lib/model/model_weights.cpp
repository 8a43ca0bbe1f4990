#include "model/model_weights.h"

#include "common/error.h"

namespace pi {
namespace {

using gguf::TensorType;

std::string shape_string(const std::vector<uint64_t> &dims) {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
}

class Binder {
public:
    Binder(const gguf::File &file) : file_(file) {}

    // `dims` in ggml order (dims[0] contiguous). Matrices may use any supported type; vectors (norms, biases,
    // frequencies) must be F32 since they are read directly.
    WeightView get(const std::string &name, std::vector<uint64_t> dims, bool required = true) {
        const gguf::TensorInfo *info = file_.find_tensor(name);
        if (!info) {
            if (required) fail(PI_ERR_FORMAT, "tensor '" + name + "' is missing");
            return {};
        }
        if (info->dims != dims) {
            fail(PI_ERR_FORMAT, "tensor '" + name + "' has shape " + shape_string(info->dims) + ", expected " +
                                    shape_string(dims));
        }
        if (dims.size() == 1 && info->type != TensorType::F32) {
            fail(PI_ERR_FORMAT, "tensor '" + name + "' is " + gguf::tensor_type_name(info->type) +
                                    "; 1-D tensors must be F32");
        }
        if (!gguf::tensor_type_supported(info->type)) {
            fail(PI_ERR_UNSUPPORTED, "tensor '" + name + "' has type " + gguf::tensor_type_name(info->type) +
                                         ", which is not supported (F32, F16, BF16, Q8_0, Q4_0)");
        }
        return WeightView{info, file_.tensor_data(*info)};
    }

    bool has(const std::string &name) const { return file_.find_tensor(name) != nullptr; }

private:
    const gguf::File &file_;
};

}  // namespace

ModelWeights ModelWeights::bind(const gguf::File &file, const HParams &hp) {
    Binder b(file);
    ModelWeights w;
    const uint64_t E = hp.n_embd, F = hp.n_ff, hd = hp.head_dim;
    const uint64_t q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;

    const gguf::TensorInfo *embd = file.find_tensor("token_embd.weight");
    if (!embd) fail(PI_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    if (embd->dims.size() != 2) fail(PI_ERR_FORMAT, "tensor 'token_embd.weight' is not 2-D");
    const uint64_t V = embd->dims[1];
    w.token_embd = b.get("token_embd.weight", {E, V});

    const bool is_opt = hp.arch == Arch::Opt, is_falcon = hp.arch == Arch::Falcon;
    const bool norm_bias = is_opt || is_falcon;  // LayerNorm with bias vs RMSNorm
    if (is_opt) w.position_embd = b.get("position_embd.weight", {E, uint64_t(hp.n_ctx_train) + 2});
    w.output_norm = b.get("output_norm.weight", {E});
    if (norm_bias) w.output_norm_b = b.get("output_norm.bias", {E});
    w.output = b.get("output.weight", {E, V}, /*required=*/!is_opt);

    w.has_predictors = b.has("blk.0.fc1.weight");
    w.layers.resize(hp.n_layer);
    for (uint32_t l = 0; l < hp.n_layer; ++l) {
        LayerWeights &L = w.layers[l];
        const std::string p = "blk." + std::to_string(l) + ".";
        L.attn_norm = b.get(p + "attn_norm.weight", {E});
        if (norm_bias) L.attn_norm_b = b.get(p + "attn_norm.bias", {E});
        if (is_falcon) {
            L.wqkv = b.get(p + "attn_qkv.weight", {E, q_dim + 2 * kv_dim});
            L.attn_norm_2 = b.get(p + "attn_norm_2.weight", {E}, false);
            if (L.attn_norm_2) L.attn_norm_2_b = b.get(p + "attn_norm_2.bias", {E});
        } else {
            L.wq = b.get(p + "attn_q.weight", {E, q_dim});
            L.wk = b.get(p + "attn_k.weight", {E, kv_dim});
            L.wv = b.get(p + "attn_v.weight", {E, kv_dim});
            L.ffn_norm = b.get(p + "ffn_norm.weight", {E});
            if (is_opt) {
                L.bq = b.get(p + "attn_q.bias", {q_dim});
                L.bk = b.get(p + "attn_k.bias", {kv_dim});
                L.bv = b.get(p + "attn_v.bias", {kv_dim});
                L.bo = b.get(p + "attn_output.bias", {E});
                L.ffn_norm_b = b.get(p + "ffn_norm.bias", {E});
            }
        }
        L.wo = b.get(p + "attn_output.weight", {q_dim, E});

        const bool gated = !(is_falcon || is_opt);
        if (gated) L.ffn_gate = b.get(p + "ffn_gate.weight", {E, F});
        L.ffn_up = b.get(p + "ffn_up.weight", {E, F});
        if (is_opt) L.ffn_up_b = b.get(p + "ffn_up.bias", {F});
        // Either layout of the down projection loads (DESIGN §5).
        if (b.has(p + "ffn_down_t.weight")) {
            L.ffn_down_t = b.get(p + "ffn_down_t.weight", {E, F});
        } else {
            L.ffn_down = b.get(p + "ffn_down.weight", {F, E});
        }
        if (is_opt) L.ffn_down_b = b.get(p + "ffn_down.bias", {E});

        // Predictor widths may differ per layer: take fc1's, then check fc2 against it.
        const gguf::TensorInfo *fc1 = file.find_tensor(p + "fc1.weight");
        if (w.has_predictors != (fc1 != nullptr)) {
            fail(PI_ERR_FORMAT, "tensor '" + p + "fc1.weight' is " + (fc1 ? "present" : "missing") +
                                    " but layer 0 " + (w.has_predictors ? "has" : "has no") + " predictor");
        }
        if (fc1) {
            if (fc1->dims.size() != 2 || fc1->dims[1] == 0) fail(PI_ERR_FORMAT, "tensor '" + p + "fc1.weight' is not 2-D");
            const uint64_t width = fc1->dims[1];
            L.fc1 = b.get(p + "fc1.weight", {E, width});
            L.fc2 = b.get(p + "fc2.weight", {width, F});
        }
        L.act_freq = b.get(p + "ffn_act_freq", {F}, false);
    }

    for (const gguf::TensorInfo &t : file.tensors()) {
        w.n_params += t.n_elements;
        w.n_bytes += t.n_bytes;
    }
    // A dense step reads every bound matrix and vector once; of the embedding tables only one row each, unless the
    // output head is the token embedding itself. Predictors are not part of the dense path.
    auto bytes = [](const WeightView &v) -> uint64_t { return v ? v.info->n_bytes : 0; };
    auto row_bytes = [](const WeightView &v) -> uint64_t { return v ? v.info->n_bytes / v.rows() : 0; };
    w.decode_bytes = (w.output ? bytes(w.output) + row_bytes(w.token_embd) : bytes(w.token_embd)) +
                     row_bytes(w.position_embd) + bytes(w.output_norm) + bytes(w.output_norm_b);
    for (const LayerWeights &L : w.layers) {
        for (const WeightView *v : {&L.attn_norm, &L.attn_norm_b, &L.attn_norm_2, &L.attn_norm_2_b, &L.wq, &L.wk,
                                    &L.wv, &L.wqkv, &L.wo, &L.bq, &L.bk, &L.bv, &L.bo, &L.ffn_norm, &L.ffn_norm_b,
                                    &L.ffn_gate, &L.ffn_up, &L.ffn_up_b, &L.ffn_down, &L.ffn_down_t, &L.ffn_down_b}) {
            w.decode_bytes += bytes(*v);
        }
        w.ffn_bytes += bytes(L.ffn_gate) + bytes(L.ffn_up) + bytes(L.ffn_down) + bytes(L.ffn_down_t);
        w.predictor_bytes += bytes(L.fc1) + bytes(L.fc2);
    }
    return w;
}

}  // namespace pi
