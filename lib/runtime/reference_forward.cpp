#include "runtime/reference_forward.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "backends/cpu/numeric.h"
#include "common/error.h"
#include "model/weight_rows.h"
#include "backends/cpu/layer_math.h"
#include "runtime/session.h"

namespace pi {
namespace {

// ---- building blocks -------------------------------------------------------------------------------------------

const float *f32(const WeightView &w) { return reinterpret_cast<const float *>(w.data); }

void add_bias(float *x, const WeightView &bias) {
    if (!bias) return;
    for (uint64_t i = 0; i < bias.cols(); ++i) x[i] += f32(bias)[i];
}

float relu(float x) { return x > 0.0f ? x : 0.0f; }
float silu(float x) { return x / (1.0f + std::exp(-x)); }

// ---- the forward pass -----------------------------------------------------------------------------------------

class ReferenceForward final : public ForwardPass {
public:
    ReferenceForward(const Model &model, const SessionOptions &options)
        : m_(model), hp_(model.hparams()), n_ctx_(options.n_ctx),
          cache_(hp_.n_layer, options.n_ctx, hp_.n_head_kv * hp_.head_dim, options.kv_type),
          sparse_(sparse_settings(model, options)) {
        if (model.is_sparse()) stats_.emplace(std::vector<uint32_t>(hp_.n_layer, hp_.n_ff), sparse_.profile);
        const size_t kv = size_t(hp_.n_head_kv) * hp_.head_dim;
        x_.resize(hp_.n_embd);
        xn_.resize(hp_.n_embd);
        xn2_.resize(hp_.n_embd);
        q_.resize(size_t(hp_.n_head) * hp_.head_dim);
        k_.resize(kv);
        v_.resize(kv);
        qkv_.resize(q_.size() + 2 * kv);
        att_.resize(q_.size());
        att_out_.resize(hp_.n_embd);
        scores_.resize(n_ctx_);
        gate_.resize(hp_.n_ff);
        up_.resize(hp_.n_ff);
        ffn_out_.resize(hp_.n_embd);
        row_.resize(std::max<size_t>(hp_.n_ff, hp_.n_embd));
        active_.resize(hp_.n_ff);
    }

    void run(const Token *tokens, size_t n, size_t start_pos, float *logits,
             const std::atomic<bool> &cancel) override {
        if (start_pos + n > n_ctx_) fail(PI_ERR_CONTEXT_FULL, "reference forward: position beyond the KV cache");
        for (size_t i = 0; i < n; ++i) forward_token(tokens[i], static_cast<uint32_t>(start_pos + i), cancel);
        output(logits);
    }

    KvCache &kv_cache() override { return cache_; }
    ActivationStats *activation_stats() override { return stats_ ? &*stats_ : nullptr; }

private:
    void forward_token(Token token, uint32_t pos, const std::atomic<bool> &cancel) {
        const ModelWeights &w = m_.weights();
        dequantize_row(w.token_embd, uint64_t(token), x_.data());
        if (w.position_embd) {  // OPT's learned positions start at offset 2
            dequantize_row(w.position_embd, uint64_t(pos) + 2, row_.data());
            for (uint32_t i = 0; i < hp_.n_embd; ++i) x_[i] += row_[i];
        }
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            if (cancel.load(std::memory_order_relaxed)) fail(PI_ERR_CANCELLED, "evaluation cancelled");
            if (hp_.arch == Arch::Falcon) {
                falcon_layer(w.layers[l], l, pos);
            } else {
                sequential_layer(w.layers[l], l, pos);
            }
        }
    }

    // Llama, Bamboo and OPT: x += attn(norm(x)); x += ffn(norm(x)).
    void sequential_layer(const LayerWeights &L, uint32_t l, uint32_t pos) {
        const bool opt = hp_.arch == Arch::Opt;
        if (opt) cpu::layernorm(xn_.data(), x_.data(), f32(L.attn_norm), f32(L.attn_norm_b), hp_.n_embd, hp_.norm_eps);
        else cpu::rmsnorm(xn_.data(), x_.data(), f32(L.attn_norm), hp_.n_embd, hp_.norm_eps);
        matvec_reference(L.wq, xn_.data(), q_.data());
        matvec_reference(L.wk, xn_.data(), k_.data());
        matvec_reference(L.wv, xn_.data(), v_.data());
        add_bias(q_.data(), L.bq);
        add_bias(k_.data(), L.bk);
        add_bias(v_.data(), L.bv);
        attention(l, pos);
        matvec_reference(L.wo, att_.data(), att_out_.data());
        add_bias(att_out_.data(), L.bo);
        for (uint32_t i = 0; i < hp_.n_embd; ++i) x_[i] += att_out_[i];

        predict(L, l, x_.data());  // the tap: the FFN input before its norm
        if (opt) cpu::layernorm(xn_.data(), x_.data(), f32(L.ffn_norm), f32(L.ffn_norm_b), hp_.n_embd, hp_.norm_eps);
        else cpu::rmsnorm(xn_.data(), x_.data(), f32(L.ffn_norm), hp_.n_embd, hp_.norm_eps);
        ffn(L, xn_.data());
        for (uint32_t i = 0; i < hp_.n_embd; ++i) x_[i] += ffn_out_[i];
    }

    // Falcon: attention and FFN in parallel from the same input: x += attn(ln(x)) + ffn(ln2(x)), where ln2 is
    // the layer's second norm (40B style) or the first one again (7B style).
    void falcon_layer(const LayerWeights &L, uint32_t l, uint32_t pos) {
        predict(L, l, x_.data());  // the tap: the layer input
        cpu::layernorm(xn_.data(), x_.data(), f32(L.attn_norm), f32(L.attn_norm_b), hp_.n_embd, hp_.norm_eps);
        matvec_reference(L.wqkv, xn_.data(), qkv_.data());
        // Fused layout: [all query heads; key heads; value heads].
        std::copy(qkv_.begin(), qkv_.begin() + q_.size(), q_.begin());
        std::copy(qkv_.begin() + q_.size(), qkv_.begin() + q_.size() + k_.size(), k_.begin());
        std::copy(qkv_.begin() + q_.size() + k_.size(), qkv_.end(), v_.begin());
        attention(l, pos);
        matvec_reference(L.wo, att_.data(), att_out_.data());

        const float *ffn_in = xn_.data();
        if (L.attn_norm_2) {
            cpu::layernorm(xn2_.data(), x_.data(), f32(L.attn_norm_2), f32(L.attn_norm_2_b), hp_.n_embd, hp_.norm_eps);
            ffn_in = xn2_.data();
        }
        ffn(L, ffn_in);
        for (uint32_t i = 0; i < hp_.n_embd; ++i) x_[i] += att_out_[i] + ffn_out_[i];
    }

    // Causal multi-head attention of the current token over positions [0, pos], grouped-query aware. K and V are
    // read back from the cache (F16 by default), so every read sees the rounded values.
    void attention(uint32_t l, uint32_t pos) {
        const uint32_t hd = hp_.head_dim, n_kv = hp_.n_head_kv, group = hp_.n_head / n_kv;
        if (hp_.rope_mode != RopeMode::None) {
            for (uint32_t h = 0; h < hp_.n_head; ++h) cpu::rope(&q_[h * hd], hp_.rope_dim, pos, hp_.rope_freq_base, rope_style(hp_.rope_mode));
            for (uint32_t h = 0; h < n_kv; ++h) cpu::rope(&k_[h * hd], hp_.rope_dim, pos, hp_.rope_freq_base, rope_style(hp_.rope_mode));
        }
        cache_.store(l, pos, k_.data(), v_.data());
        const float scale = 1.0f / std::sqrt(float(hd));
        for (uint32_t h = 0; h < hp_.n_head; ++h) {
            cache_.attend(l, h / group, hd, &q_[h * hd], pos + 1, scale, scores_.data(), &att_[h * hd],
                          cpu::IsaLevel::Scalar);
        }
    }

    // Sparse sessions: active_[i] = whether neuron i's predictor score fc2 . relu(fc1 . tap) reaches the threshold
    // (every token runs the predictor here: this executor has no separate prefill). Dense sessions: all active.
    void predict(const LayerWeights &L, uint32_t l, const float *tap) {
        std::fill(active_.begin(), active_.end(), true);
        if (!sparse_.keeps_stats()) return;
        pred_hidden_.resize(L.fc1.rows());
        pred_scores_.resize(hp_.n_ff);
        matvec_reference(L.fc1, tap, pred_hidden_.data());
        for (float &z : pred_hidden_) z = relu(z);
        matvec_reference(L.fc2, pred_hidden_.data(), pred_scores_.data());
        active_list_.clear();
        for (uint32_t i = 0; i < hp_.n_ff; ++i) {
            if (pred_scores_[i] >= sparse_.threshold) active_list_.push_back(i);
            if (sparse_.sparse) active_[i] = pred_scores_[i] >= sparse_.threshold;
        }
        stats_->record(l, active_list_.data(), active_list_.size());
    }

    // The FFN with the architecture's activation over the active neurons (inactive ones contribute nothing); writes
    // ffn_out_. Both layouts of the down projection.
    void ffn(const LayerWeights &L, const float *in) {
        matvec_reference(L.ffn_up, in, up_.data());
        add_bias(up_.data(), L.ffn_up_b);
        if (L.ffn_gate) matvec_reference(L.ffn_gate, in, gate_.data());
        for (uint32_t i = 0; i < hp_.n_ff; ++i) {
            switch (hp_.activation) {
                case FfnActivation::Silu: gate_[i] = silu(gate_[i]) * up_[i]; break;
                case FfnActivation::Reglu: gate_[i] = relu(gate_[i]) * up_[i]; break;
                case FfnActivation::Drelu: gate_[i] = relu(gate_[i]) * relu(up_[i]); break;
                case FfnActivation::Relu: gate_[i] = relu(up_[i]); break;
            }
            if (!active_[i]) gate_[i] = 0.0f;
        }
        if (L.ffn_down) {
            matvec_reference(L.ffn_down, gate_.data(), ffn_out_.data());
        } else {
            // Transposed layout: the output is the sum of neuron rows weighted by their activations.
            std::fill(ffn_out_.begin(), ffn_out_.end(), 0.0f);
            for (uint32_t i = 0; i < hp_.n_ff; ++i) {
                if (gate_[i] == 0.0f) continue;
                dequantize_row(L.ffn_down_t, i, row_.data());
                for (uint32_t j = 0; j < hp_.n_embd; ++j) ffn_out_[j] += gate_[i] * row_[j];
            }
        }
        add_bias(ffn_out_.data(), L.ffn_down_b);
    }

    void output(float *logits) {
        const ModelWeights &w = m_.weights();
        if (w.output_norm_b) cpu::layernorm(xn_.data(), x_.data(), f32(w.output_norm), f32(w.output_norm_b), hp_.n_embd, hp_.norm_eps);
        else cpu::rmsnorm(xn_.data(), x_.data(), f32(w.output_norm), hp_.n_embd, hp_.norm_eps);
        matvec_reference(w.output ? w.output : w.token_embd, xn_.data(), logits);
    }

    const Model &m_;
    const HParams &hp_;
    const uint32_t n_ctx_;
    KvCache cache_;
    std::vector<float> x_, xn_, xn2_, q_, k_, v_, qkv_, att_, att_out_, scores_, gate_, up_, ffn_out_, row_;
    const SparseSettings sparse_;
    std::optional<ActivationStats> stats_;
    std::vector<bool> active_;
    std::vector<uint32_t> active_list_;
    std::vector<float> pred_hidden_, pred_scores_;
};

}  // namespace

std::unique_ptr<ForwardPass> make_reference_forward(const Model &model, const SessionOptions &options) {
    return std::make_unique<ReferenceForward>(model, options);
}

}  // namespace pi
