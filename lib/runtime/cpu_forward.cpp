#include "runtime/cpu_forward.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/layer_math.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/token_ops.h"
#include "common/error.h"
#include "model/weight_rows.h"
#include "runtime/cpu_step_profile.h"
#include "runtime/host_layers.h"

namespace pi {
namespace {

using cpu::IsaLevel;
using cpu::WeightMatrix;
using Part = CpuStepProfile::Part;

uint64_t matrix_bytes(const WeightMatrix &w) {
    return w.data ? uint64_t(w.n_rows) * cpu::weight_row_bytes(w.type, w.n_cols) : 0;
}

// ---- the executor --------------------------------------------------------------------------------------------

// One session's CPU executor. Decode (one token) runs the matrix-vector kernels on the session's thread pool;
// prefill (several tokens) runs every projection as one GEMM over all tokens (oneDNN, f32 precision, for float
// weights; the blocked GEMM with the engine's 8-bit activation rounding for Q8_0/Q4_0 weights, so that prefill
// and decode compute the same function). Attention is split over heads.
//
// Sparse sessions (DESIGN §5): a decode token runs each layer's predictor on its tap (the FFN input before its norm;
// falcon: the layer input) and computes only the predicted-active neurons — the fused sparse FFN over ffn_down_t,
// or, for files with the dense ffn_down layout, the active gate/up rows and a dense down product of the activations
// with zeros elsewhere (the reference's semantics, rounding included). Prefill stays dense; with profiling on, the
// predictors also run for every prompt token, to count them.
class CpuForward final : public ForwardPass {
public:
    CpuForward(const Model &model, const SessionOptions &options)
        : m_(model), hp_(model.hparams()), n_ctx_(options.n_ctx),
          cache_(hp_.n_layer, options.n_ctx, hp_.n_head_kv * hp_.head_dim, options.kv_type),
          pool_(std::max(1, options.n_threads)), isa_(cpu::active_isa_level()), tokenwise_(tokenwise_prefill_forced()),
          float_gemm_(&pool_, host_gemm_options(true)), quant_gemm_(&pool_, host_gemm_options(false)), ops_(isa_),
          sparse_(sparse_settings(model, options)) {
        if (model.is_sparse()) stats_.emplace(std::vector<uint32_t>(hp_.n_layer, hp_.n_ff), sparse_.profile);
        HostWeights bound = bind_host_weights(model, /*with_ffn_bundles=*/true);
        layers_ = std::move(bound.layers);
        output_ = bound.output;
        q_dim_ = hp_.n_head * hp_.head_dim;
        kv_dim_ = hp_.n_head_kv * hp_.head_dim;
        reserve(1);
        if (CpuStepProfile::requested()) profile_.emplace();
    }

    ~CpuForward() override {
        if (profile_) std::fputs(profile_->report().c_str(), stderr);
    }

    void run(const Token *tokens, size_t n, size_t start_pos, float *logits,
             const std::atomic<bool> &cancel) override {
        if (start_pos + n > n_ctx_) fail(PI_ERR_CONTEXT_FULL, "cpu forward: position beyond the KV cache");
        prof_ = n == 1 && profile_ ? &*profile_ : nullptr;  // decode steps only
        if (prof_) prof_->begin_step();
        if (n == 1 || tokenwise_) {
            for (size_t i = 0; i < n; ++i) forward(tokens + i, 1, static_cast<uint32_t>(start_pos + i), cancel);
            output(0, logits);
        } else {
            forward(tokens, n, static_cast<uint32_t>(start_pos), cancel);
            output(n - 1, logits);
        }
        if (prof_) prof_->end_step();  // a step that threw is not counted (its parts' time stays, a little)
        prof_ = nullptr;
    }

    KvCache &kv_cache() override { return cache_; }
    ActivationStats *activation_stats() override { return stats_ ? &*stats_ : nullptr; }

private:
    // The time since the last mark goes to part p of the profiled decode step, with the bytes it read.
    void mark(Part p, uint64_t bytes = 0) {
        if (prof_) prof_->mark(p, bytes);
    }

    // Scratch for n tokens at a time: rows of n_embd (x, xn, ...), of the projections, and of the FFN.
    void reserve(size_t n) {
        if (n <= reserved_) return;
        const size_t E = hp_.n_embd, F = hp_.n_ff;
        x_.assign(n * E, 0.0f);
        xn_.assign(n * E, 0.0f);
        xn2_.assign(n * E, 0.0f);
        q_.assign(n * q_dim_, 0.0f);
        k_.assign(n * kv_dim_, 0.0f);
        v_.assign(n * kv_dim_, 0.0f);
        qkv_.assign(n * (q_dim_ + 2 * kv_dim_), 0.0f);
        att_.assign(n * q_dim_, 0.0f);
        att_out_.assign(n * E, 0.0f);
        gate_.assign(n * F, 0.0f);
        up_.assign(n * F, 0.0f);
        ffn_out_.assign(n * E, 0.0f);
        scores_.assign(host_attention_scratch_floats(hp_, pool_, n_ctx_), 0.0f);
        sparse_a_.assign(F, 0.0f);
        reserved_ = n;
    }

    // Y (n x W.n_rows) = X (n x W.n_cols) . W^T: a matvec for one token, a GEMM for several.
    void project(const WeightMatrix &w, const float *x, size_t n, float *y) {
        const bool quantized = cpu::weight_type_is_quantized(w.type);
        if (n == 1) {
            ops_.matvec(w, x, 0, w.n_rows, y, &pool_);
            return;
        }
        (quantized ? quant_gemm_ : float_gemm_).multiply(w, x, n, w.n_cols, y, w.n_rows, cpu::GemmPrecision::F32);
    }

    void forward(const Token *tokens, size_t n, uint32_t pos0, const std::atomic<bool> &cancel) {
        reserve(n);
        const ModelWeights &w = m_.weights();
        const uint32_t E = hp_.n_embd;
        for (size_t t = 0; t < n; ++t) {
            dequantize_row(w.token_embd, uint64_t(tokens[t]), &x_[t * E]);
            if (w.position_embd) {  // OPT's learned positions start at offset 2
                dequantize_row(w.position_embd, uint64_t(pos0 + t) + 2, &xn_[t * E]);
                for (uint32_t i = 0; i < E; ++i) x_[t * E + i] += xn_[t * E + i];
            }
        }
        if (prof_) mark(CpuStepProfile::kOutside, w.token_embd.info->n_bytes / w.token_embd.info->rows());
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            if (cancel.load(std::memory_order_relaxed)) fail(PI_ERR_CANCELLED, "evaluation cancelled");
            if (hp_.arch == Arch::Falcon) {
                falcon_layer(l, n, pos0);
            } else {
                sequential_layer(l, n, pos0);
            }
        }
    }

    void norm_rows(float *out, const float *x, size_t n, const WeightView &weight, const WeightView &bias) {
        const uint32_t E = hp_.n_embd;
        for (size_t t = 0; t < n; ++t) {
            if (bias) cpu::layernorm(out + t * E, x + t * E, f32(weight), f32(bias), E, hp_.norm_eps);
            else cpu::rmsnorm(out + t * E, x + t * E, f32(weight), E, hp_.norm_eps);
        }
    }

    static void add_bias_rows(float *x, size_t n, const WeightView &bias) {
        if (!bias) return;
        const uint64_t d = bias.cols();
        for (size_t t = 0; t < n; ++t) {
            for (uint64_t i = 0; i < d; ++i) x[t * d + i] += f32(bias)[i];
        }
    }

    void sequential_layer(uint32_t l, size_t n, uint32_t pos0) {
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const uint32_t E = hp_.n_embd;
        norm_rows(xn_.data(), x_.data(), n, L.attn_norm, L.attn_norm_b);
        mark(CpuStepProfile::kGlue);
        if (n == 1) {  // one dispatch for the three projections
            const WeightMatrix *w[] = {&M.wq, &M.wk, &M.wv};
            float *y[] = {q_.data(), k_.data(), v_.data()};
            ops_.matvec_shared_input(w, y, 3, xn_.data(), &pool_);
        } else {
            project(M.wq, xn_.data(), n, q_.data());
            project(M.wk, xn_.data(), n, k_.data());
            project(M.wv, xn_.data(), n, v_.data());
        }
        add_bias_rows(q_.data(), n, L.bq);
        add_bias_rows(k_.data(), n, L.bk);
        add_bias_rows(v_.data(), n, L.bv);
        mark(CpuStepProfile::kQkv, matrix_bytes(M.wq) + matrix_bytes(M.wk) + matrix_bytes(M.wv));
        attention(l, n, pos0);
        project(M.wo, att_.data(), n, att_out_.data());
        add_bias_rows(att_out_.data(), n, L.bo);
        mark(CpuStepProfile::kOutProj, matrix_bytes(M.wo));
        for (size_t i = 0; i < n * E; ++i) x_[i] += att_out_[i];
        mark(CpuStepProfile::kGlue);

        const bool sparse = predict(l, x_.data(), n);  // the tap: the FFN input before its norm
        norm_rows(xn_.data(), x_.data(), n, L.ffn_norm, L.ffn_norm_b);
        mark(CpuStepProfile::kGlue);
        if (sparse) sparse_ffn(l, xn_.data());
        else ffn(l, xn_.data(), n);
        for (size_t i = 0; i < n * E; ++i) x_[i] += ffn_out_[i];
        mark(CpuStepProfile::kGlue);
    }

    // Runs layer l's predictor on each of the n tap rows when the session is sparse (decode) or profiles, records
    // the statistics, and returns whether the FFN takes the sparse path (one token of a sparse session); active_
    // then holds the token's active neurons.
    bool predict(uint32_t l, const float *tap, size_t n) {
        const bool sparse_step = sparse_.sparse && n == 1;
        if (!stats_ || !(sparse_step || sparse_.profile)) return false;
        const HostLayer &M = layers_[l];
        const cpu::WeightMatrix *fc2_t = M.fc2_t.data ? &M.fc2_t : nullptr;
        const uint64_t fc1_bytes = matrix_bytes(M.fc1);
        const uint64_t fc2_row = cpu::weight_row_bytes(M.fc2.type, M.fc2.n_cols);  // per neuron
        const uint64_t fc2_t_row = cpu::weight_row_bytes(M.fc2.type, M.fc2.n_rows);  // per hidden unit
        uint64_t bytes = 0;
        for (size_t t = 0; t < n; ++t) {
            const std::vector<uint32_t> &active =
                ops_.predict(M.fc1, M.fc2, tap + t * hp_.n_embd, sparse_.threshold, nullptr, &pool_, fc2_t);
            stats_->record(l, active.data(), active.size());
            const uint64_t fc2_read = fc2_t ? ops_.last_fc2_rows_read() * fc2_t_row : M.fc2.n_rows * fc2_row;
            stats_->record_predictor_bytes(l, fc1_bytes + fc2_read, fc1_bytes + M.fc2.n_rows * fc2_row);
            bytes += fc1_bytes + fc2_read;
        }
        mark(CpuStepProfile::kPredictor, bytes);
        return sparse_step;
    }

    // The FFN of one token over the active neurons of ops_' last prediction. Writes ffn_out_ (n_embd).
    void sparse_ffn(uint32_t l, const float *in) {
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const std::vector<uint32_t> &active = ops_.active();
        std::fill(ffn_out_.begin(), ffn_out_.begin() + hp_.n_embd, 0.0f);
        if (M.down_t.data) {
            ops_.sparse_ffn(M.ffn, in, active.data(), active.size(), ffn_out_.data(), &pool_);
        } else {
            // Dense ffn_down layout: activations of the active neurons, zeros elsewhere, one dense down product.
            ops_.activations_rows(M.ffn, in, active.data(), active.size(), up_.data(), &pool_);
            std::fill(sparse_a_.begin(), sparse_a_.end(), 0.0f);
            for (size_t j = 0; j < active.size(); ++j) sparse_a_[active[j]] = up_[j];
            project(M.down, sparse_a_.data(), 1, ffn_out_.data());
        }
        // Rows read: the kernels' count, plus the whole dense down matrix (n_ff columns = n_ff neuron rows' worth).
        const cpu::SparseFfnScratch::RowsRead &r = ops_.last_rows_read();
        const uint64_t matrices = M.gate.data ? 3 : 2;
        stats_->record_ffn_rows(l, r.gate + r.up + (M.down_t.data ? r.down : hp_.n_ff), matrices * hp_.n_ff);
        add_bias_rows(ffn_out_.data(), 1, L.ffn_down_b);
        if (prof_) {
            const auto row = [](const WeightMatrix &w) { return cpu::weight_row_bytes(w.type, w.n_cols); };
            mark(CpuStepProfile::kFfn, (M.gate.data ? r.gate * row(M.gate) : 0) + r.up * row(M.up) +
                                           (M.down_t.data ? r.down * row(M.down_t) : matrix_bytes(M.down)));
        }
    }

    void falcon_layer(uint32_t l, size_t n, uint32_t pos0) {
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const uint32_t E = hp_.n_embd;
        const size_t qkv = q_dim_ + 2 * kv_dim_;
        const bool sparse = predict(l, x_.data(), n);  // the tap: the layer input
        norm_rows(xn_.data(), x_.data(), n, L.attn_norm, L.attn_norm_b);
        mark(CpuStepProfile::kGlue);
        project(M.wqkv, xn_.data(), n, qkv_.data());
        for (size_t t = 0; t < n; ++t) {  // fused layout: [query heads; key heads; value heads]
            const float *row = &qkv_[t * qkv];
            std::copy(row, row + q_dim_, &q_[t * q_dim_]);
            std::copy(row + q_dim_, row + q_dim_ + kv_dim_, &k_[t * kv_dim_]);
            std::copy(row + q_dim_ + kv_dim_, row + qkv, &v_[t * kv_dim_]);
        }
        mark(CpuStepProfile::kQkv, matrix_bytes(M.wqkv));
        attention(l, n, pos0);
        project(M.wo, att_.data(), n, att_out_.data());
        mark(CpuStepProfile::kOutProj, matrix_bytes(M.wo));
        const float *ffn_in = xn_.data();
        if (L.attn_norm_2) {
            norm_rows(xn2_.data(), x_.data(), n, L.attn_norm_2, L.attn_norm_2_b);
            ffn_in = xn2_.data();
        }
        mark(CpuStepProfile::kGlue);
        if (sparse) sparse_ffn(l, ffn_in);
        else ffn(l, ffn_in, n);
        for (size_t i = 0; i < n * E; ++i) x_[i] += att_out_[i] + ffn_out_[i];
        mark(CpuStepProfile::kGlue);
    }

    // RoPE, the KV cache and attention of every new token (host_layers.h).
    void attention(uint32_t l, size_t n, uint32_t pos0) {
        host_attention(hp_, cache_, pool_, isa_, l, q_.data(), k_.data(), v_.data(), n, pos0, scores_.data(),
                       att_.data(), &rope_angles_);
        // A decode step reads the keys and values of positions 0 .. pos0.
        mark(CpuStepProfile::kAttention, 2 * uint64_t(pos0 + 1) * kv_dim_ * cache_.element_bytes());
    }

    // Dense FFN (every neuron). Writes ffn_out_ (n x n_embd).
    void ffn(uint32_t l, const float *in, size_t n) {
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        if (n == 1 && M.gate.data) {  // one dispatch for both
            const WeightMatrix *w[] = {&M.up, &M.gate};
            float *y[] = {up_.data(), gate_.data()};
            ops_.matvec_shared_input(w, y, 2, in, &pool_);
        } else {
            project(M.up, in, n, up_.data());
            if (M.gate.data) project(M.gate, in, n, gate_.data());
        }
        add_bias_rows(up_.data(), n, L.ffn_up_b);
        float *a = gate_.data();  // the activations overwrite the gate rows
        cpu::apply_activation(M.ffn.activation, gate_.data(), up_.data(), n * F, a);
        if (M.down.data) {
            project(M.down, a, n, ffn_out_.data());
        } else {
            // Transposed layout: each token's output is a sum of neuron rows, zero activations skipped.
            std::fill(ffn_out_.begin(), ffn_out_.begin() + n * E, 0.0f);
            for (size_t t = 0; t < n; ++t) cpu::axpy_rows(M.down_t, a + t * F, nullptr, F, &ffn_out_[t * E], &pool_, isa_);
        }
        add_bias_rows(ffn_out_.data(), n, L.ffn_down_b);
        if (n == 1 && (stats_ || prof_)) {  // a dense decode step's rows: every gate and up row, the down rows it read
            const uint64_t down =
                M.down.data ? F : uint64_t(std::count_if(a, a + F, [](float v) { return v != 0.0f; }));
            const uint64_t matrices = M.gate.data ? 3 : 2;
            if (stats_) stats_->record_ffn_rows(l, (matrices - 1) * F + down, matrices * F);
            const uint64_t down_bytes =
                M.down.data ? matrix_bytes(M.down) : down * cpu::weight_row_bytes(M.down_t.type, M.down_t.n_cols);
            mark(CpuStepProfile::kFfn, matrix_bytes(M.up) + matrix_bytes(M.gate) + down_bytes);
        }
    }

    void output(size_t t, float *logits) {
        const ModelWeights &w = m_.weights();
        const uint32_t E = hp_.n_embd;
        norm_rows(xn_.data(), &x_[t * E], 1, w.output_norm, w.output_norm_b);
        project(output_, xn_.data(), 1, logits);
        mark(CpuStepProfile::kOutside, matrix_bytes(output_));
    }

    const Model &m_;
    const HParams &hp_;
    const uint32_t n_ctx_;
    KvCache cache_;
    cpu::ThreadPool pool_;
    const IsaLevel isa_;
    const bool tokenwise_;  // PI_PREFILL=tokenwise: prompts run one token at a time (tests)
    cpu::Gemm float_gemm_, quant_gemm_;
    cpu::TokenOps ops_;
    cpu::RopeAngles rope_angles_;  // of the position last rotated: every layer of a decode token shares them
    const SparseSettings sparse_;
    std::optional<ActivationStats> stats_;
    std::optional<CpuStepProfile> profile_;  // PI_CPU_PROFILE
    CpuStepProfile *prof_ = nullptr;         // profile_ during a decode step, else null
    std::vector<HostLayer> layers_;
    WeightMatrix output_;
    size_t q_dim_ = 0, kv_dim_ = 0, reserved_ = 0;
    std::vector<float> x_, xn_, xn2_, q_, k_, v_, qkv_, att_, att_out_, gate_, up_, ffn_out_, scores_, sparse_a_;
};

}  // namespace

std::unique_ptr<ForwardPass> make_cpu_forward(const Model &model, const SessionOptions &options) {
    return std::make_unique<CpuForward>(model, options);
}

}  // namespace pi
