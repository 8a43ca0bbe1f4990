#include "runtime/hybrid_forward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/layer_math.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/token_ops.h"
#include "common/env_switch.h"
#include "common/error.h"
#include "model/weight_rows.h"
#include "runtime/host_layers.h"

namespace pi {
namespace {

using cpu::WeightMatrix;

// PI_HYBRID_PROFILE=1: where a session's host thread spends a decode step (DESIGN §8 asks benchmarks to say where
// the time goes): waiting for the device (the block of a split layer, counts, outputs), computing cold neurons, and
// everything else (launching device work, host layers). Printed to stderr when the session ends.
class StepProfile {
public:
    using Clock = std::chrono::steady_clock;
    static bool enabled() {
        static const bool on = env_switch_on("PI_HYBRID_PROFILE");
        return on;
    }
    void begin_step() { step_start_ = Clock::now(); }
    void end_step(size_t n_tokens) {
        if (n_tokens != 1) return;  // decode steps only
        total_ += seconds(step_start_);
        ++steps_;
    }
    Clock::time_point now() const { return Clock::now(); }
    void add_wait(Clock::time_point t0) { wait_ += seconds(t0); }
    void add_cold(Clock::time_point t0, size_t n_cold) {
        cold_ += seconds(t0);
        cold_rows_ += n_cold;
        ++splits_;
    }
    void print() const {
        if (!steps_) return;
        const double k = 1e6 / double(steps_);
        std::fprintf(stderr,
                     "PI_HYBRID_PROFILE: %llu decode steps, per step: %.1f us total, %.1f us waiting for the device, "
                     "%.1f us cold neurons on the CPU (%.1f split layers, %.0f cold rows), %.1f us other host work\n",
                     (unsigned long long)steps_, total_ * k, wait_ * k, cold_ * k, double(splits_) / double(steps_),
                     double(cold_rows_) / double(steps_), (total_ - wait_ - cold_) * k);
    }

private:
    static double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
    Clock::time_point step_start_{};
    double total_ = 0, wait_ = 0, cold_ = 0;
    uint64_t steps_ = 0, splits_ = 0, cold_rows_ = 0;
};

bool env_is(const char *name, const char *value) {
    const char *v = std::getenv(name);
    return v && std::strcmp(v, value) == 0;
}

// One session's hybrid executor. The residual stream x lives on the side of the layer that last ran (x_on_device_);
// moving it is one copy, needed only where CPU and device layers meet. The host half mirrors the CPU executor
// (cpu_forward.cpp) kernel for kernel, so that CPU layers and the cold neurons compute what it computes; the device
// half is written against the backend table. A run holds the model's device workspace lock (sessions on one model
// take turns on the device).
class HybridForward final : public ForwardPass {
public:
    HybridForward(const Model &model, const SessionOptions &options, const DeviceModel &dm)
        : m_(model), hp_(model.hparams()), dm_(dm), bk_(dm.ops()), n_ctx_(options.n_ctx),
          kv_type_(options.kv_type == KvType::F32 ? PI_BK_KV_F32 : PI_BK_KV_F16),
          cache_(hp_.n_layer, options.n_ctx, hp_.n_head_kv * hp_.head_dim, options.kv_type),
          pool_(std::max(1, options.n_threads)), isa_(cpu::active_isa_level()), tokenwise_(tokenwise_prefill_forced()),
          float_gemm_(&pool_, host_gemm_options(true)), quant_gemm_(&pool_, host_gemm_options(false)), ops_(isa_),
          sparse_(sparse_settings(model, options)), has_matmul_t_(PI_BK_HAS_OP(bk_, matmul_t)) {
        if (model.is_sparse()) stats_.emplace(std::vector<uint32_t>(hp_.n_layer, hp_.n_ff), sparse_.profile);
        q_dim_ = hp_.n_head * hp_.head_dim;
        kv_dim_ = hp_.n_head_kv * hp_.head_dim;
        bind_host_layers();
        chunk_ = dm_.any_on_device() ? dm_.chunk_tokens() : 0;  // 0: no limit (nothing on the device)
        reserve(1);
        if (dm_.any_on_device()) open_device();
    }

    ~HybridForward() override {
        if (profile_) profile_->print();
        release_waits();
        if (queue_) bk_->queue_synchronize(queue_);
        for (pi_bk_event *e : block_ev_) {
            if (e) bk_->event_free(e);
        }
        if (ev_) bk_->event_free(ev_);
        if (queue_) bk_->queue_free(queue_);
        dm_.release_session(dkv_);
    }

    void run(const Token *tokens, size_t n, size_t start_pos, float *logits,
             const std::atomic<bool> &cancel) override {
        if (start_pos + n > n_ctx_) fail(PI_ERR_CONTEXT_FULL, "hybrid forward: position beyond the KV cache");
        std::unique_lock<std::mutex> lock;
        if (queue_) lock = std::unique_lock<std::mutex>(dm_.scratch_lock());
        // Whatever happens below, the device's queue is drained before the workspace is given up.
        struct Drain {
            const pi_backend_ops *bk;
            pi_bk_queue *q;
            ~Drain() {
                if (q) bk->queue_synchronize(q);
            }
        } drain{bk_, queue_};
        // Declared after the drain, so it runs first: a step that fails between enqueuing a wait for the CPU's
        // partial sum and writing it must still let the device's queue finish.
        struct ReleaseWaits {
            HybridForward *self;
            ~ReleaseWaits() { self->release_waits(); }
        } release{this};
        if (host_kv_authoritative_) push_kv_to_device();
        if (profile_) profile_->begin_step();
        if (n == 1 && graphs_ && decode_steps_++ > 0 && run_recorded_step(tokens, start_pos, logits, cancel)) {
            if (profile_) profile_->end_step(n);
            return;
        }
        const size_t step = (n == 1 || tokenwise_) ? 1 : (chunk_ ? chunk_ : n);
        size_t done = 0, last = 0;
        while (done < n) {
            last = std::min(step, n - done);
            forward(tokens + done, last, static_cast<uint32_t>(start_pos + done), cancel);
            done += last;
        }
        output(last - 1, logits);
        if (n == 1) decode_kernels_loaded_ = true;  // every kernel of a decode step has been launched once
        if (profile_) profile_->end_step(n);
    }

    // Device layers' KV rows live on the device: they are copied into the host cache here (the session saves or
    // restores that), and the host copy is pushed back before the next run, in case a state was restored into it.
    KvCache &kv_cache() override {
        if (queue_) {
            std::lock_guard<std::mutex> lock(dm_.scratch_lock());
            const size_t half = size_t(n_ctx_) * kv_dim_ * cache_.element_bytes();
            for (uint32_t l = 0; l < hp_.n_layer; ++l) {
                if (!dkv_.k[l]) continue;
                check(bk_->copy_to_host(queue_, const_cast<void *>(cache_.key_row(l, 0)), dkv_.k[l], half), "KV copy");
                check(bk_->copy_to_host(queue_, const_cast<void *>(cache_.value_row(l, 0)), dkv_.v[l], half), "KV copy");
            }
            check(bk_->queue_synchronize(queue_), "KV copy");
            host_kv_authoritative_ = true;
        }
        return cache_;
    }

    ActivationStats *activation_stats() override { return stats_ ? &*stats_ : nullptr; }

private:
    void check(int32_t rc, const char *what) const {
        if (rc == PI_BK_OK) return;
        fail(rc == PI_BK_ERR_OUT_OF_MEMORY ? PI_ERR_OUT_OF_MEMORY : PI_ERR_BACKEND,
             std::string("hybrid forward: ") + what + ": " + bk_->last_error());
    }

    void bind_host_layers() {
        HostWeights bound = bind_host_weights(m_, /*with_ffn_bundles=*/true);  // the cold rows, where bundled
        layers_ = std::move(bound.layers);
        output_ = bound.output;
    }

    // The session's device objects: a queue and an event on the model's context, the KV cache of its device layers
    // (through the model's accounting: PI_ERR_OUT_OF_MEMORY when it does not fit) and pinned staging buffers.
    void open_device() {
        dkv_ = dm_.reserve_session(n_ctx_, kv_type_);
        check(bk_->queue_create(dm_.context(), &queue_), "queue_create");
        check(bk_->event_create(dm_.context(), &ev_), "event_create");
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        lay_ = ScratchLayout::of(dm_.chunk_tokens(), E, F, q_dim_, kv_dim_, hp_.n_vocab, hp_.n_layer);
        DeviceMemory &mem = dm_.memory();
        block_h_ = mem.allocate_pinned((ScratchLayout::kBlockHeader + E + 2ull * F) * 4, "transfer block");
        partial_h_ = mem.allocate_pinned(uint64_t(E) * 4, "CPU partial output");
        xfer_h_ = mem.allocate_pinned(uint64_t(dm_.chunk_tokens()) * E * 4, "hidden-state staging");
        logits_h_ = mem.allocate_pinned(uint64_t(hp_.n_vocab) * 4, "logits");
        counts_h_ = mem.allocate_pinned(uint64_t(hp_.n_layer) * 8, "predictor counts");
        pending_cold_.assign(hp_.n_layer, -1);
        pipelined_ = pipeline_possible();
        graphs_ = graph_step_possible();
        if (graphs_) step_h_ = mem.allocate_pinned(64, "recorded step's position");
        if (pipelined_) {
            flag_h_ = mem.allocate_pinned(64, "partial-ready flag");
            flag_word() = 0;
            for (pi_bk_event *&e : block_ev_) check(bk_->event_create(dm_.context(), &e), "event_create");
        }
    }

    // Pipelined sparse decode (DESIGN §1, "spin-waits on mapped flags"): when every layer's attention is on the
    // device, the host enqueues layer l+1's device work -- behind a device-side wait for the flag that says the
    // CPU's partial sum of layer l is written -- before it computes layer l's cold neurons. The device then starts
    // layer l+1 the moment the flag is set, without waiting for the host to launch it, and the launches overlap the
    // device's own work. Needs the backend's wait_value (queues asynchronous to the host); PI_HYBRID_PIPELINE=0
    // turns it off (for measurements). Profiling sessions copy lists back per layer and do not pipeline.
    bool pipeline_possible() const {
        if (!PI_BK_HAS_OP(bk_, wait_value) || !stats_ || !sparse_.sparse || sparse_.profile) return false;
        if (env_is("PI_HYBRID_PIPELINE", "0")) return false;
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            if (!dm_.layer(l).attention) return false;
        }
        return true;
    }

    uint32_t &flag_word() const { return *static_cast<uint32_t *>(flag_h_.host_address()); }

    // Lets every wait enqueued so far pass (the data behind it may be stale: only on a failed step).
    void release_waits() {
        if (!flag_h_ || completed_seq_ == enqueued_seq_) return;
        __atomic_store_n(&flag_word(), enqueued_seq_, __ATOMIC_RELEASE);
        completed_seq_ = enqueued_seq_;
        deferred_.clear();
    }

    float *dev(uint64_t offset) const { return dm_.scratch() + offset; }
    uint32_t *dev_counts() const { return reinterpret_cast<uint32_t *>(dev(lay_.counts)); }
    float *block_h() const { return static_cast<float *>(block_h_.host_address()); }
    float *xfer_h() const { return static_cast<float *>(xfer_h_.host_address()); }

    // Host scratch for n tokens at a time (as the CPU executor's), taken only where the host computes n tokens (CPU
    // layers, a split layer's prompt FFN): a prompt wholly on the device touches only x_ and xn_ (reserve_x), not
    // ~230 KB per token of buffers whose first-touch page faults cost more than the device's prefill itself.
    // Never moves x_ or xn_, which may hold the residual and the FFN input when this is called.
    void reserve_x(size_t n) {
        if (n <= reserved_x_) return;
        x_.resize(n * hp_.n_embd, 0.0f);
        xn_.resize(n * hp_.n_embd, 0.0f);
        reserved_x_ = n;
    }

    void reserve(size_t n) {
        reserve_x(n);
        if (n <= reserved_) return;
        const size_t E = hp_.n_embd, F = hp_.n_ff;
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
        list_.assign(F, 0);
        reserved_ = n;
    }

    // ---- moving the residual stream and the KV rows ------------------------------------------------------------

    void to_device(size_t n) {
        if (x_on_device_) return;
        const size_t bytes = n * hp_.n_embd * 4;
        std::memcpy(xfer_h(), x_.data(), bytes);
        check(bk_->copy_to_device(queue_, dev(lay_.x), xfer_h(), bytes), "copy to device");
        x_on_device_ = true;
    }

    void to_host(size_t n) {
        if (!x_on_device_) return;
        const size_t bytes = n * hp_.n_embd * 4;
        check(bk_->copy_to_host(queue_, xfer_h(), dev(lay_.x), bytes), "copy to host");
        wait_device();
        std::memcpy(x_.data(), xfer_h(), bytes);
        x_on_device_ = false;
    }

    // Waits for everything enqueued so far through an event (not a stream synchronization), then records the
    // predictor counts that came back with it.
    void wait_device() {
        enqueue_counts_copy();
        sync_device();
    }

    void enqueue_counts_copy() {
        if (counts_pending_) {
            check(bk_->copy_to_host(queue_, counts_h_.host_address(), dev_counts(), uint64_t(hp_.n_layer) * 8),
                  "copy counts");
        }
    }

    void sync_device() {
        check(bk_->event_record(ev_, queue_), "event_record");
        const auto t0 = profile_ ? profile_->now() : StepProfile::Clock::time_point{};
        check(bk_->event_synchronize(ev_), "event_synchronize");
        if (profile_) profile_->add_wait(t0);
        if (counts_pending_) record_pending_counts();
    }

    void record_pending_counts() {
        const uint32_t *c = static_cast<const uint32_t *>(counts_h_.host_address());
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            if (pending_cold_[l] < 0) continue;
            stats_->record(l, nullptr, size_t(c[2 * l]) + size_t(pending_cold_[l]));
            pending_cold_[l] = -1;
        }
        counts_pending_ = false;
    }

    void push_kv_to_device() {
        const size_t half = size_t(n_ctx_) * kv_dim_ * cache_.element_bytes();
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            if (!dkv_.k[l]) continue;
            check(bk_->copy_to_device(queue_, dkv_.k[l], cache_.key_row(l, 0), half), "KV copy");
            check(bk_->copy_to_device(queue_, dkv_.v[l], cache_.value_row(l, 0), half), "KV copy");
        }
        check(bk_->queue_synchronize(queue_), "KV copy");
        host_kv_authoritative_ = false;
    }

    // ---- one chunk through every layer --------------------------------------------------------------------------

    // The residual stream's first rows on the host: token embeddings (plus learned positions).
    void embed(const Token *tokens, size_t n, uint32_t pos0) {
        reserve_x(n);
        const ModelWeights &w = m_.weights();
        const uint32_t E = hp_.n_embd;
        for (size_t t = 0; t < n; ++t) {
            dequantize_row(w.token_embd, uint64_t(tokens[t]), &x_[t * E]);
            if (w.position_embd) {  // OPT's learned positions start at offset 2
                dequantize_row(w.position_embd, uint64_t(pos0 + t) + 2, &xn_[t * E]);
                for (uint32_t i = 0; i < E; ++i) x_[t * E + i] += xn_[t * E + i];
            }
        }
        x_on_device_ = false;
    }

    void forward(const Token *tokens, size_t n, uint32_t pos0, const std::atomic<bool> &cancel) {
        embed(tokens, n, pos0);
        // Not before this session's first decode step has run unpipelined: the CUDA runtime loads a kernel at its
        // first launch (lazy loading, the default since CUDA 12.2), and loading may wait for the device to go idle
        // -- which it never does while a wait_value kernel spins for a flag the host has not yet set. A split layer
        // without hot neurons followed by an all-GPU layer launched the sparse FFN kernel for the first time behind
        // such a wait and hung (bench-7b F16, 8 GiB, on an H200; docs/HYBRID.md). After one unpipelined decode step
        // every kernel a decode step launches is loaded (the kernels depend on the plan, not on the position).
        defer_ = pipelined_ && n == 1 && decode_kernels_loaded_;
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            if (cancel.load(std::memory_order_relaxed)) fail(PI_ERR_CANCELLED, "evaluation cancelled");
            if (dm_.layer(l).attention) {
                to_device(n);
                const size_t before = deferred_.size();
                device_layer(l, n, pos0);
                // The CPU's share of earlier layers, now that this layer's device work is queued behind it.
                const size_t keep = deferred_.size() > before ? 1 : 0;  // this layer's own share waits
                while (deferred_.size() > keep) finish_cold(0);
            } else {
                to_host(n);
                if (hp_.arch == Arch::Falcon) host_falcon_layer(l, n, pos0);
                else host_sequential_layer(l, n, pos0);
            }
        }
        while (!deferred_.empty()) finish_cold(0);
    }

    void output(size_t t, float *logits) {
        const ModelWeights &w = m_.weights();
        const uint32_t E = hp_.n_embd, V = hp_.n_vocab;
        if (dm_.output_on_device()) {
            if (!x_on_device_) to_device(t + 1);
            if (!dm_.output_norm_b() && has_matmul_rmsnorm_) {  // the product takes the norm with it
                check(bk_->matmul_rmsnorm(queue_, &dm_.output(), dev(lay_.x) + t * E, dm_.output_norm(), hp_.norm_eps,
                                          PI_BK_NO_ACTIVATION, dev(lay_.logits)), "output matmul_rmsnorm");
            } else {
                check(bk_->norm(queue_, dev(lay_.x) + t * E, dm_.output_norm(), dm_.output_norm_b(), 1, E,
                                hp_.norm_eps, dev(lay_.xn)), "norm");
                check(bk_->matmul(queue_, &dm_.output(), dev(lay_.xn), 1, dev(lay_.logits)), "output matmul");
            }
            check(bk_->copy_to_host(queue_, logits_h_.host_address(), dev(lay_.logits), uint64_t(V) * 4), "logits copy");
            enqueue_counts_copy();
            if (recording_) return;  // run_recorded_step launches the recording, then finishes
            sync_device();
            std::memcpy(logits, logits_h_.host_address(), size_t(V) * 4);
            return;
        }
        to_host(t + 1);
        if (counts_pending_) wait_device();
        norm_rows(xn_.data(), &x_[t * E], 1, w.output_norm, w.output_norm_b);
        project(output_, xn_.data(), 1, logits);
    }

    // ---- the device half ------------------------------------------------------------------------------------------

    void device_layer(uint32_t l, size_t n, uint32_t pos0) {
        const DeviceLayer &D = dm_.layer(l);
        const uint32_t E = hp_.n_embd;
        float *x = dev(lay_.x), *xn = dev(lay_.xn), *tmp = dev(lay_.tmp);
        const bool split_step = sparse_.sparse && n == 1 && !D.all_neurons;
        // The FFN's input: for a split step it goes straight into the transfer block, to leave in the one copy.
        float *h = split_step ? dev(lay_.block) + ScratchLayout::kBlockHeader : xn;
        if (hp_.arch == Arch::Falcon) {
            device_predict(l, n, x);  // the tap: the layer input
            check(bk_->norm(queue_, x, D.attn_norm, D.attn_norm_b, n, E, hp_.norm_eps, xn), "norm");
            if (D.attn_norm_2) {
                if (!split_step) h = dev(lay_.xn2);
                check(bk_->norm(queue_, x, D.attn_norm_2, D.attn_norm_2_b, n, E, hp_.norm_eps, h), "norm");
            } else if (split_step) {
                check(bk_->norm(queue_, x, D.attn_norm, D.attn_norm_b, n, E, hp_.norm_eps, h), "norm");
            }
            if (!device_attention(l, n, pos0)) check(bk_->add(queue_, x, tmp, n, E, E), "add");
        } else {
            // One token's q|k|v product takes the attention norm with it (matmul_rmsnorm): xn is not written.
            const bool fused_norm = n == 1 && D.wqkv_stacked.data && !D.attn_norm_b && has_matmul_rmsnorm_;
            if (!fused_norm) check(bk_->norm(queue_, x, D.attn_norm, D.attn_norm_b, n, E, hp_.norm_eps, xn), "norm");
            if (!device_attention(l, n, pos0, fused_norm)) {
                if (D.bo) check(bk_->add(queue_, tmp, D.bo, n, E, 0), "add");
                check(bk_->add(queue_, x, tmp, n, E, E), "add");
            }
            device_predict(l, n, x);  // the tap: the FFN input before its norm
            if (glu_step(D, n) && !D.ffn_norm_b && has_matmul_rmsnorm_) {
                // The gate|up product takes the FFN norm with it, straight from x.
                device_ffn(l, n, x, D.ffn_norm);
                return;
            }
            check(bk_->norm(queue_, x, D.ffn_norm, D.ffn_norm_b, n, E, hp_.norm_eps, h), "norm");
        }
        device_ffn(l, n, h);
    }

    // Whether the layer's FFN runs as one matmul_glu (a dense file's decode step, no up bias).
    bool glu_step(const DeviceLayer &D, size_t n) const {
        return n == 1 && D.dense_ffn && D.gate_up_stacked.data && !D.hot.up_bias && D.hot.gate.data && has_matmul_glu_;
    }

    // Q, K, V, RoPE, the KV store, attention and the output projection: tmp = attention output (n x n_embd), or --
    // returning true -- for one token without an output bias, the output projection already added to x (matmul_add).
    // fused_norm: the attention norm is still to apply (xn not written): the q|k|v product takes it.
    bool device_attention(uint32_t l, size_t n, uint32_t pos0, bool fused_norm = false) {
        const DeviceLayer &D = dm_.layer(l);
        float *xn = dev(lay_.xn), *qkv = dev(lay_.qkv), *att = dev(lay_.att), *tmp = dev(lay_.tmp);
        float *q, *k, *v;
        uint64_t q_stride, kv_stride;
        if (hp_.arch == Arch::Falcon) {  // fused rows [query heads; key heads; value heads]
            check(bk_->matmul(queue_, &D.wqkv, xn, n, qkv), "matmul qkv");
            q = qkv;
            k = qkv + q_dim_;
            v = qkv + q_dim_ + kv_dim_;
            q_stride = kv_stride = q_dim_ + 2 * kv_dim_;
        } else {
            q = qkv;
            k = qkv + n * q_dim_;
            v = k + n * kv_dim_;
            q_stride = q_dim_;
            kv_stride = kv_dim_;
            if (fused_norm) {
                check(bk_->matmul_rmsnorm(queue_, &D.wqkv_stacked, dev(lay_.x), D.attn_norm, hp_.norm_eps,
                                          PI_BK_NO_ACTIVATION, qkv),
                      "matmul_rmsnorm qkv");
            } else if (n == 1 && D.wqkv_stacked.data) {
                check(bk_->matmul(queue_, &D.wqkv_stacked, xn, 1, qkv), "matmul qkv");  // q, k, v back to back
            } else {
                check(bk_->matmul(queue_, &D.wq, xn, n, q), "matmul q");
                check(bk_->matmul(queue_, &D.wk, xn, n, k), "matmul k");
                check(bk_->matmul(queue_, &D.wv, xn, n, v), "matmul v");
            }
            if (D.bq) check(bk_->add(queue_, q, D.bq, n, q_dim_, 0), "add");
            if (D.bk) check(bk_->add(queue_, k, D.bk, n, kv_dim_, 0), "add");
            if (D.bv) check(bk_->add(queue_, v, D.bv, n, kv_dim_, 0), "add");
        }
        if (n != 1 || !decode_attention(l, q, k, v, pos0, att)) {
            separate_attention(l, n, pos0, q, k, v, q_stride, kv_stride, att);
        }
        if (n == 1 && !D.bo && has_matmul_add_) {
            check(bk_->matmul_add(queue_, &D.wo, att, 1, dev(lay_.x)), "matmul_add o");  // x += o . att
            return true;
        }
        check(bk_->matmul(queue_, &D.wo, att, n, tmp), "matmul o");
        return false;
    }

    // RoPE, the KV store and attention as three operations (prompts; backends without attention_decode).
    void separate_attention(uint32_t l, size_t n, uint32_t pos0, float *q, float *k, float *v, uint64_t q_stride,
                            uint64_t kv_stride, float *att) {
        const uint32_t hd = hp_.head_dim;
        const float scale = 1.0f / std::sqrt(float(hd));
        const uint32_t rope_mode = hp_.rope_mode == RopeMode::Neox ? PI_BK_ROPE_NEOX : PI_BK_ROPE_NORMAL;
        if (recording_) relaunchable_ = false;  // these take the position as an argument
        if (hp_.rope_mode != RopeMode::None && n == 1 && k == q + q_dim_) {
            // One token: the key heads follow the query heads, so one launch rotates both.
            check(bk_->rope(queue_, q, 1, q_dim_ + kv_dim_, hp_.n_head + hp_.n_head_kv, hd, hp_.rope_dim, pos0,
                            hp_.rope_freq_base, rope_mode), "rope");
        } else if (hp_.rope_mode != RopeMode::None) {
            check(bk_->rope(queue_, q, n, q_stride, hp_.n_head, hd, hp_.rope_dim, pos0, hp_.rope_freq_base, rope_mode), "rope");
            check(bk_->rope(queue_, k, n, kv_stride, hp_.n_head_kv, hd, hp_.rope_dim, pos0, hp_.rope_freq_base, rope_mode),
                  "rope");
        }
        check(bk_->kv_store(queue_, dkv_.k[l], dkv_.v[l], kv_type_, kv_dim_, pos0, n, k, v, kv_stride), "kv_store");
        if (q_stride == q_dim_) {
            check(bk_->attention(queue_, q, dkv_.k[l], dkv_.v[l], kv_type_, hp_.n_head, hp_.n_head_kv, hd, pos0, n, scale,
                                 att), "attention");
        } else {
            // The operation takes contiguous query rows; fused rows are strided, so one call per token (prompts only).
            for (size_t t = 0; t < n; ++t) {
                check(bk_->attention(queue_, q + t * q_stride, dkv_.k[l], dkv_.v[l], kv_type_, hp_.n_head, hp_.n_head_kv,
                                     hd, pos0 + uint32_t(t), 1, scale, att + t * q_dim_), "attention");
            }
        }
    }

    // One token's RoPE, KV store and attention in one operation; false when the backend has none or refuses (then
    // nothing was enqueued). Recording a step, the position is read from the device (pos_word), so the recording can
    // be relaunched at the next positions; relaunchable_ remembers whether every layer took that path.
    bool decode_attention(uint32_t l, const float *q, const float *k, const float *v, uint32_t pos0, float *att) {
        // A refusal at one position holds for later ones (the backend's reach is a context length or a head shape):
        // not asked again until a session rewinds below it.
        if (!has_attention_decode_ || pos0 >= attention_decode_refused_at_) return false;
        pi_bk_decode_attention a{};
        a.n_head = hp_.n_head;
        a.n_head_kv = hp_.n_head_kv;
        a.head_dim = hp_.head_dim;
        a.rope_dim = hp_.rope_mode == RopeMode::None ? 0 : hp_.rope_dim;
        a.rope_mode = hp_.rope_mode == RopeMode::Neox ? PI_BK_ROPE_NEOX : PI_BK_ROPE_NORMAL;
        a.rope_freq_base = hp_.rope_freq_base;
        a.scale = 1.0f / std::sqrt(float(hp_.head_dim));
        a.kv_type = kv_type_;
        a.max_positions = n_ctx_;
        a.k_cache = dkv_.k[l];
        a.v_cache = dkv_.v[l];
        const DeviceLayer &D = dm_.layer(l);
        a.next_weights = D.wo.data;  // read right after: the GPU may load it while attention occupies a few SMs
        a.next_weights_bytes = D.wo.n_rows * D.wo.row_stride;
        const uint32_t *pos_word = recording_ ? reinterpret_cast<const uint32_t *>(dev(lay_.step)) : nullptr;
        int32_t rc = bk_->attention_decode(queue_, &a, q, k, v, pos0, pos_word, att);
        if (rc == PI_BK_ERR_UNSUPPORTED && pos_word) {
            relaunchable_ = false;  // this layer's work is recorded at this position only
            rc = bk_->attention_decode(queue_, &a, q, k, v, pos0, nullptr, att);
        }
        if (rc == PI_BK_ERR_UNSUPPORTED) {
            attention_decode_refused_at_ = pos0;
            return false;
        }
        check(rc, "attention_decode");
        return true;
    }

    // The predictor on the device. A split decode step splits the active list by the slot table: hot rows (as their
    // slots) stay on the device, cold neurons go to the transfer block. Statistics: counts come back with the next
    // wait; the per-neuron lists of a profiling session come back at once.
    void device_predict(uint32_t l, size_t n, const float *tap) {
        const DeviceLayer &D = dm_.layer(l);
        const bool sparse_step = sparse_.sparse && n == 1;
        if (!stats_ || !(sparse_step || sparse_.profile)) return;
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        float *block = dev(lay_.block);
        int32_t *cold = reinterpret_cast<int32_t *>(block + ScratchLayout::kBlockHeader + E);
        int32_t *hot = cold + F;
        uint32_t *n_cold = reinterpret_cast<uint32_t *>(block);
        const int32_t *slot = sparse_step && !D.all_neurons ? D.slot : nullptr;
        for (size_t t = 0; t < n; ++t) {
            check(bk_->predict(queue_, &D.fc1, &D.fc2, tap + t * E, sparse_.threshold, slot, hot, dev_counts() + 2 * l,
                               cold, n_cold, nullptr), "predict");
            if (sparse_.profile) {
                record_device_lists(l, slot != nullptr, sparse_step && !D.all_neurons);
            } else if (sparse_step) {
                counts_pending_ = true;
                pending_cold_[l] = 0;  // the split step fills in the cold count when the block arrives
            }
        }
    }

    // Profiling: the whole block and the counts come back now, and the active neurons are recorded.
    void record_device_lists(uint32_t l, bool slotted, bool split) {
        const DeviceLayer &D = dm_.layer(l);
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        check(bk_->copy_to_host(queue_, block_h(), dev(lay_.block), (ScratchLayout::kBlockHeader + E + 2ull * F) * 4),
              "copy lists");
        check(bk_->copy_to_host(queue_, counts_h_.host_address(), dev_counts(), uint64_t(hp_.n_layer) * 8), "copy counts");
        check(bk_->event_record(ev_, queue_), "event_record");
        check(bk_->event_synchronize(ev_), "event_synchronize");
        const uint32_t n_hot = static_cast<const uint32_t *>(counts_h_.host_address())[2 * l];
        const int32_t *cold = reinterpret_cast<const int32_t *>(block_h() + ScratchLayout::kBlockHeader + E);
        const int32_t *hot = cold + F;
        size_t k = 0;
        for (uint32_t j = 0; j < n_hot; ++j) list_[k++] = slotted ? D.hot_neurons[size_t(hot[j])] : uint32_t(hot[j]);
        if (slotted || split) {
            const uint32_t n_cold = slotted ? *reinterpret_cast<const uint32_t *>(block_h()) : 0;
            for (uint32_t j = 0; j < n_cold; ++j) list_[k++] = uint32_t(cold[j]);
        }
        stats_->record(l, list_.data(), k);
    }

    // norm != NULL (glu_step only): h is the FFN norm's input and norm its weight; the gate|up product applies it.
    void device_ffn(uint32_t l, size_t n, float *h, const float *norm = nullptr) {
        const DeviceLayer &D = dm_.layer(l);
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        float *x = dev(lay_.x);
        const bool sparse_step = sparse_.sparse && n == 1;
        if (sparse_step && !D.all_neurons) {
            split_ffn(l, h);
        } else if (D.all_neurons && sparse_step) {
            const int32_t *hot = reinterpret_cast<const int32_t *>(dev(lay_.block) + ScratchLayout::kBlockHeader + E + F);
            check(bk_->sparse_ffn(queue_, &D.hot, h, hot, dev_counts() + 2 * l, x), "sparse_ffn");
        } else if (D.dense_ffn || (D.all_neurons && n > 1 && has_matmul_t_)) {
            // Dense products over every neuron: the file's ffn_down, or (prompts) the transposed down_t rows through
            // matmul_t -- one GEMM per matrix instead of a sparse FFN over all rows per token. The row order of
            // gate/up/down_t is the plan's (a permutation of the neurons), the same for all three, so the sum is.
            float *gate = dev(lay_.gate), *up = dev(lay_.up), *tmp = dev(lay_.tmp);
            const uint64_t rows = D.hot.up.n_rows;
            const bool glu = glu_step(D, n);
            if (glu && norm) {
                check(bk_->matmul_rmsnorm(queue_, &D.gate_up_stacked, h, norm, hp_.norm_eps, D.hot.activation, gate),
                      "matmul_rmsnorm gate+up");
            } else if (glu) {
                // One product straight to the activations (gate holds them, as ffn_activation leaves them below).
                check(bk_->matmul_glu(queue_, &D.gate_up_stacked, D.hot.activation, h, gate), "matmul_glu");
            } else if (n == 1 && D.gate_up_stacked.data && dm_.chunk_tokens() >= 2) {
                // One product for both; the gate region holds chunk_tokens x n_ff floats, so [gate | up] fits.
                up = gate + rows;
                check(bk_->matmul(queue_, &D.gate_up_stacked, h, 1, gate), "matmul gate+up");
                if (D.hot.up_bias) check(bk_->add(queue_, up, D.hot.up_bias, n, rows, 0), "add");
            } else {
                check(bk_->matmul(queue_, &D.hot.up, h, n, up), "matmul up");
                if (D.hot.up_bias) check(bk_->add(queue_, up, D.hot.up_bias, n, rows, 0), "add");
                if (D.hot.gate.data) check(bk_->matmul(queue_, &D.hot.gate, h, n, gate), "matmul gate");
            }
            if (!glu) {
                check(bk_->ffn_activation(queue_, D.hot.activation, D.hot.gate.data ? gate : nullptr, up, n, rows, gate),
                      "ffn_activation");
            }
            if (D.dense_ffn && n == 1 && has_matmul_add_) {
                check(bk_->matmul_add(queue_, &D.down, gate, 1, x), "matmul_add down");  // x += down . a
            } else {
                if (D.dense_ffn) check(bk_->matmul(queue_, &D.down, gate, n, tmp), "matmul down");
                else check(bk_->matmul_t(queue_, &D.hot.down_t, gate, n, tmp), "matmul_t down");
                check(bk_->add(queue_, x, tmp, n, E, E), "add");
            }
        } else if (D.all_neurons) {
            // Every neuron over the transposed down rows: the fused sparse FFN over the full row list, per token.
            for (size_t t = 0; t < n; ++t) {
                check(bk_->sparse_ffn(queue_, &D.hot, h + t * E, dm_.iota(), dev_counts() + 2 * l + 1, x + t * E),
                      "sparse_ffn");
            }
        } else {
            // A split layer outside a sparse decode step (prompts, dense sessions): the CPU runs the whole FFN with
            // its own weights; the input goes down and the output comes back.
            check(bk_->copy_to_host(queue_, xfer_h(), h, n * E * 4), "copy to host");
            wait_device();
            host_dense_ffn(l, xfer_h(), n);  // ffn_out_ (bias included)
            std::memcpy(xfer_h(), ffn_out_.data(), n * E * 4);
            check(bk_->copy_to_device(queue_, dev(lay_.tmp), xfer_h(), n * E * 4), "copy to device");
            check(bk_->add(queue_, x, dev(lay_.tmp), n, E, E), "add");
            return;
        }
        if (D.ffn_down_b) check(bk_->add(queue_, x, D.ffn_down_b, n, E, 0), "add");
    }

    // DESIGN §1: one copy down (h, the cold count and list), the device's hot rows || the CPU's cold neurons, one
    // copy up (the CPU's partial output), merged by an add on the device.
    void split_ffn(uint32_t l, float *h) {
        const DeviceLayer &D = dm_.layer(l);
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        float *x = dev(lay_.x), *block = dev(lay_.block);
        // A sparse step implies predictors (sparse_settings), so device_predict filled the block's cold list.
        const uint64_t down_bytes = (ScratchLayout::kBlockHeader + E + F) * 4;
        check(bk_->copy_to_host(queue_, block_h(), block, down_bytes), "copy to host");
        if (defer_) {
            // The block arrives behind an event of its own; the device goes on with the hot rows, then waits for the
            // flag and adds the partial sum straight from pinned host memory (no copy).
            pi_bk_event *ev = block_ev_[next_event_];
            next_event_ ^= 1;
            check(bk_->event_record(ev, queue_), "event_record");
            if (D.n_hot > 0) {
                const int32_t *hot = reinterpret_cast<const int32_t *>(block + ScratchLayout::kBlockHeader + E + F);
                check(bk_->sparse_ffn(queue_, &D.hot, h, hot, dev_counts() + 2 * l, x), "sparse_ffn");
            }
            const uint32_t seq = enqueued_seq_ + 1;
            check(bk_->wait_value(queue_, static_cast<const uint32_t *>(flag_h_.address()), seq), "wait_value");
            enqueued_seq_ = seq;
            deferred_.push_back({l, ev, seq});
            check(bk_->add(queue_, x, static_cast<const float *>(partial_h_.address()), 1, E, E), "add");
            return;
        }
        check(bk_->event_record(ev_, queue_), "event_record");
        if (D.n_hot > 0) {
            const int32_t *hot = reinterpret_cast<const int32_t *>(block + ScratchLayout::kBlockHeader + E + F);
            check(bk_->sparse_ffn(queue_, &D.hot, h, hot, dev_counts() + 2 * l, x), "sparse_ffn");
        }
        const float *partial = cold_partial(l, ev_);
        check(bk_->copy_to_device(queue_, dev(lay_.partial), partial, uint64_t(E) * 4), "copy to device");
        check(bk_->add(queue_, x, dev(lay_.partial), 1, E, E), "add");
    }

    // Recorded steps (PI_CUDA_GRAPH=0 turns them off): a decode step with every layer and the output head on
    // the device is recorded once (capture_begin/capture_end: a CUDA graph of its ~230 operations) and relaunched
    // unchanged for the following tokens (capture_relaunch): the step's inputs -- the token's embedding row and the
    // position -- go through pinned memory that the recording's first copies read, and attention_decode reads the
    // position from device memory (pos_word). The first decode step runs unrecorded (it sizes the queue's
    // workspace). A recording that cannot be relaunched (a layer whose attention took the position as an argument:
    // a head shape attention_decode refuses) runs once and recording stays off for the session; one that
    // fails (an operation that cannot be recorded) is discarded -- none of it ran -- recording stays off, and the
    // step runs the ordinary way. (Re-recording every
    // step measured slower than no recording: 153 against 160 tok/s, bench-7b dense on the H100; relaunching one
    // recording measured faster: 220 against 210 tok/s dense, 264 against 241 sparse, on an H200.)
    bool graph_step_possible() const {
        if (!PI_BK_HAS_OP(bk_, capture_begin) || !PI_BK_HAS_OP(bk_, capture_end) || !dm_.output_on_device()) return false;
        if (sparse_.profile) return false;
        if (env_is("PI_CUDA_GRAPH", "0")) return false;
        for (uint32_t l = 0; l < hp_.n_layer; ++l) {
            const DeviceLayer &D = dm_.layer(l);
            if (!D.attention || !D.all_neurons) return false;  // host work inside the step needs synchronizations
        }
        return true;  // no split layer: the pipelined path has nothing to defer
    }

    bool run_recorded_step(const Token *tokens, size_t start_pos, float *logits, const std::atomic<bool> &cancel) {
        const uint32_t pos0 = static_cast<uint32_t>(start_pos);
        if (relaunchable_ && relaunch_step(tokens, pos0, logits)) return true;
        if (bk_->capture_begin(queue_) != PI_BK_OK) {  // e.g. PI_CUDA_PROFILE's timing events cannot be recorded
            graphs_ = false;
            return false;
        }
        recording_ = true;
        relaunchable_ = PI_BK_HAS_OP(bk_, capture_relaunch);  // until a layer takes the position as an argument
        try {
            step_word() = pos0;
            check(bk_->copy_to_device(queue_, dev(lay_.step), step_h_.host_address(), 4), "copy to device");
            forward(tokens, 1, pos0, cancel);
            output(0, logits);
        } catch (const Error &e) {
            recording_ = relaunchable_ = false;
            bk_->capture_end(queue_, 0);
            if (e.status() == PI_ERR_CANCELLED) throw;
            graphs_ = false;
            return false;
        } catch (...) {
            recording_ = relaunchable_ = false;
            bk_->capture_end(queue_, 0);
            throw;
        }
        recording_ = false;
        check(bk_->capture_end(queue_, 1), "launching the recorded step");
        // A recording tied to its position (a layer attention_decode refused) would be recorded anew every
        // step, which is slower than no recording: the session goes on without.
        if (!relaunchable_) graphs_ = false;
        sync_device();
        std::memcpy(logits, logits_h_.host_address(), size_t(hp_.n_vocab) * 4);
        return true;
    }

    // The recorded step again at position pos0: the host writes the inputs its copies read, relaunches it, and keeps
    // the books the recording's host side kept (the predictor counts coming back). False when the backend has no
    // recording any more (its workspace moved since): the caller records anew.
    bool relaunch_step(const Token *tokens, uint32_t pos0, float *logits) {
        embed(tokens, 1, pos0);
        std::memcpy(xfer_h(), x_.data(), size_t(hp_.n_embd) * 4);
        step_word() = pos0;
        if (bk_->capture_relaunch(queue_) != PI_BK_OK) {
            relaunchable_ = false;
            return false;
        }
        if (stats_ && sparse_.sparse) {  // device_predict of every layer, as recorded
            counts_pending_ = true;
            std::fill(pending_cold_.begin(), pending_cold_.end(), int64_t(0));
        }
        x_on_device_ = true;
        sync_device();
        std::memcpy(logits, logits_h_.host_address(), size_t(hp_.n_vocab) * 4);
        return true;
    }

    uint32_t &step_word() const { return *static_cast<uint32_t *>(step_h_.host_address()); }

    // Waits for split layer l's block (the event `ready`), then computes its cold neurons into the pinned partial sum.
    const float *cold_partial(uint32_t l, pi_bk_event *ready) {
        const uint32_t E = hp_.n_embd;
        auto t0 = profile_ ? profile_->now() : StepProfile::Clock::time_point{};
        check(bk_->event_synchronize(ready), "event_synchronize");
        if (profile_) {
            profile_->add_wait(t0);
            t0 = profile_->now();
        }
        const float *h_host = block_h() + ScratchLayout::kBlockHeader;
        const uint32_t n_cold = *reinterpret_cast<const uint32_t *>(block_h());
        const uint32_t *cold = reinterpret_cast<const uint32_t *>(h_host + E);
        if (!sparse_.profile) pending_cold_[l] = int64_t(n_cold);
        float *partial = static_cast<float *>(partial_h_.host_address());
        std::fill(partial, partial + E, 0.0f);
        host_sparse_ffn_rows(l, h_host, cold, n_cold, partial);
        if (profile_) profile_->add_cold(t0, n_cold);
        return partial;
    }

    // The host half of a deferred split layer: wait for its block, compute its cold neurons into the pinned partial
    // sum, then set the flag its device work waits for. The partial buffer is free again by then: the device read
    // the previous layer's before this layer's block was copied (queue order).
    void finish_cold(size_t i) {
        const Deferred d = deferred_[i];
        deferred_.erase(deferred_.begin() + long(i));
        cold_partial(d.layer, d.block_ready);
        __atomic_store_n(&flag_word(), d.seq, __ATOMIC_RELEASE);
        completed_seq_ = d.seq;
    }

    // ---- the host half: the CPU executor's kernels ------------------------------------------------------------

    void project(const WeightMatrix &w, const float *x, size_t n, float *y) {
        if (n == 1) {
            ops_.matvec(w, x, 0, w.n_rows, y, &pool_);
            return;
        }
        const bool quantized = cpu::weight_type_is_quantized(w.type);
        (quantized ? quant_gemm_ : float_gemm_).multiply(w, x, n, w.n_cols, y, w.n_rows, cpu::GemmPrecision::F32);
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

    void host_sequential_layer(uint32_t l, size_t n, uint32_t pos0) {
        reserve(n);
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const uint32_t E = hp_.n_embd;
        norm_rows(xn_.data(), x_.data(), n, L.attn_norm, L.attn_norm_b);
        project(M.wq, xn_.data(), n, q_.data());
        project(M.wk, xn_.data(), n, k_.data());
        project(M.wv, xn_.data(), n, v_.data());
        add_bias_rows(q_.data(), n, L.bq);
        add_bias_rows(k_.data(), n, L.bk);
        add_bias_rows(v_.data(), n, L.bv);
        host_attention(l, n, pos0);
        project(M.wo, att_.data(), n, att_out_.data());
        add_bias_rows(att_out_.data(), n, L.bo);
        for (size_t i = 0; i < n * E; ++i) x_[i] += att_out_[i];

        const bool sparse = host_predict(l, x_.data(), n);
        norm_rows(xn_.data(), x_.data(), n, L.ffn_norm, L.ffn_norm_b);
        if (sparse) host_sparse_ffn(l, xn_.data());
        else host_dense_ffn(l, xn_.data(), n);
        for (size_t i = 0; i < n * E; ++i) x_[i] += ffn_out_[i];
    }

    void host_falcon_layer(uint32_t l, size_t n, uint32_t pos0) {
        reserve(n);
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const uint32_t E = hp_.n_embd;
        const size_t qkv = q_dim_ + 2 * kv_dim_;
        const bool sparse = host_predict(l, x_.data(), n);
        norm_rows(xn_.data(), x_.data(), n, L.attn_norm, L.attn_norm_b);
        project(M.wqkv, xn_.data(), n, qkv_.data());
        for (size_t t = 0; t < n; ++t) {
            const float *row = &qkv_[t * qkv];
            std::copy(row, row + q_dim_, &q_[t * q_dim_]);
            std::copy(row + q_dim_, row + q_dim_ + kv_dim_, &k_[t * kv_dim_]);
            std::copy(row + q_dim_ + kv_dim_, row + qkv, &v_[t * kv_dim_]);
        }
        host_attention(l, n, pos0);
        project(M.wo, att_.data(), n, att_out_.data());
        const float *ffn_in = xn_.data();
        if (L.attn_norm_2) {
            norm_rows(xn2_.data(), x_.data(), n, L.attn_norm_2, L.attn_norm_2_b);
            ffn_in = xn2_.data();
        }
        if (sparse) host_sparse_ffn(l, ffn_in);
        else host_dense_ffn(l, ffn_in, n);
        for (size_t i = 0; i < n * E; ++i) x_[i] += att_out_[i] + ffn_out_[i];
    }

    bool host_predict(uint32_t l, const float *tap, size_t n) {
        const bool sparse_step = sparse_.sparse && n == 1;
        if (!stats_ || !(sparse_step || sparse_.profile)) return false;
        const HostLayer &M = layers_[l];
        for (size_t t = 0; t < n; ++t) {
            const std::vector<uint32_t> &active =
                ops_.predict(M.fc1, M.fc2, tap + t * hp_.n_embd, sparse_.threshold, nullptr, &pool_);
            stats_->record(l, active.data(), active.size());
        }
        return sparse_step;
    }

    void host_sparse_ffn(uint32_t l, const float *in) {
        const std::vector<uint32_t> &active = ops_.active();
        std::fill(ffn_out_.begin(), ffn_out_.begin() + hp_.n_embd, 0.0f);
        host_sparse_ffn_rows(l, in, active.data(), active.size(), ffn_out_.data());
        add_bias_rows(ffn_out_.data(), 1, m_.weights().layers[l].ffn_down_b);
    }

    // y += the FFN of one token over the neurons rows[0..n) (no down bias): the fused sparse FFN over ffn_down_t,
    // or for the dense ffn_down layout the listed activations, zeros elsewhere, and one dense down product.
    void host_sparse_ffn_rows(uint32_t l, const float *in, const uint32_t *rows, size_t n, float *y) {
        const HostLayer &M = layers_[l];
        if (M.down_t.data) {
            ops_.sparse_ffn(M.ffn, in, rows, n, y, &pool_);
            return;
        }
        ops_.activations_rows(M.ffn, in, rows, n, up_.data(), &pool_);
        std::fill(sparse_a_.begin(), sparse_a_.end(), 0.0f);
        for (size_t j = 0; j < n; ++j) sparse_a_[rows[j]] = up_[j];
        project(M.down, sparse_a_.data(), 1, ffn_out_.data() + 0);
        // project() wrote ffn_out_ (not y): accumulate, unless y is ffn_out_ itself
        if (y != ffn_out_.data()) {
            for (uint32_t c = 0; c < hp_.n_embd; ++c) y[c] += ffn_out_[c];
        }
    }

    void host_attention(uint32_t l, size_t n, uint32_t pos0) {
        pi::host_attention(hp_, cache_, pool_, isa_, l, q_.data(), k_.data(), v_.data(), n, pos0, scores_.data(),
                           att_.data());
    }

    // Every neuron (the CPU executor's dense FFN). Writes ffn_out_ (n x n_embd), down bias included.
    void host_dense_ffn(uint32_t l, const float *in, size_t n) {
        reserve(n);
        const LayerWeights &L = m_.weights().layers[l];
        const HostLayer &M = layers_[l];
        const uint32_t E = hp_.n_embd, F = hp_.n_ff;
        project(M.up, in, n, up_.data());
        add_bias_rows(up_.data(), n, L.ffn_up_b);
        if (M.gate.data) project(M.gate, in, n, gate_.data());
        float *a = gate_.data();
        cpu::apply_activation(M.ffn.activation, gate_.data(), up_.data(), n * F, a);
        if (M.down.data) {
            project(M.down, a, n, ffn_out_.data());
        } else {
            std::fill(ffn_out_.begin(), ffn_out_.begin() + n * E, 0.0f);
            for (size_t t = 0; t < n; ++t) cpu::axpy_rows(M.down_t, a + t * F, nullptr, F, &ffn_out_[t * E], &pool_, isa_);
        }
        add_bias_rows(ffn_out_.data(), n, L.ffn_down_b);
    }

    const Model &m_;
    const HParams &hp_;
    const DeviceModel &dm_;
    const pi_backend_ops *bk_;
    const uint32_t n_ctx_;
    const uint32_t kv_type_;
    KvCache cache_;  // CPU layers' KV; device layers' rows only while a state is saved or restored
    cpu::ThreadPool pool_;
    const cpu::IsaLevel isa_;
    const bool tokenwise_;
    cpu::Gemm float_gemm_, quant_gemm_;
    cpu::TokenOps ops_;
    const SparseSettings sparse_;
    const bool has_matmul_t_;  // the table has matmul_t (added after the first tables): prompts of down_t layers
    const bool has_matmul_add_ = PI_BK_HAS_OP(bk_, matmul_add);  // decode: residual adds fused into the product
    const bool has_matmul_glu_ = PI_BK_HAS_OP(bk_, matmul_glu);  // decode: gate|up product and activation in one
    const bool has_attention_decode_ = PI_BK_HAS_OP(bk_, attention_decode);  // decode: RoPE + KV store + attention
    // decode: the norm folded into a product (PI_FUSED_NORM=0: separate norms, for measurements)
    uint32_t attention_decode_refused_at_ = UINT32_MAX;  // the lowest position attention_decode refused
    const bool has_matmul_rmsnorm_ = PI_BK_HAS_OP(bk_, matmul_rmsnorm) && !env_is("PI_FUSED_NORM", "0");
    std::optional<ActivationStats> stats_;
    std::vector<HostLayer> layers_;
    WeightMatrix output_;
    size_t q_dim_ = 0, kv_dim_ = 0, reserved_ = 0, reserved_x_ = 0, chunk_ = 0;
    std::vector<float> x_, xn_, xn2_, q_, k_, v_, qkv_, att_, att_out_, gate_, up_, ffn_out_, scores_, sparse_a_;
    std::vector<uint32_t> list_;

    // Device state of the session.
    DeviceSessionKv dkv_;
    pi_bk_queue *queue_ = nullptr;
    pi_bk_event *ev_ = nullptr;
    ScratchLayout lay_;
    DeviceBuffer block_h_, partial_h_, xfer_h_, logits_h_, counts_h_;
    bool x_on_device_ = false;
    bool host_kv_authoritative_ = false;
    bool counts_pending_ = false;
    std::vector<int64_t> pending_cold_;  // per layer: cold count of this step (-1: nothing pending)
    std::unique_ptr<StepProfile> profile_{StepProfile::enabled() ? new StepProfile : nullptr};

    // Pipelined decode (pipeline_possible): the flag the device waits on, sequence numbers of the waits enqueued and
    // released, the split layers whose CPU share is still to run, and two block events (layer l+1's is recorded
    // before layer l's is waited for).
    struct Deferred {
        uint32_t layer;
        pi_bk_event *block_ready;
        uint32_t seq;
    };
    bool pipelined_ = false, defer_ = false;
    bool decode_kernels_loaded_ = false;       // a decode step has run (unpipelined): see forward()
    bool graphs_ = false, recording_ = false;  // decode steps recorded as one launch (graph_step_possible)
    bool relaunchable_ = false;                // the last recording reads its position from device memory
    uint64_t decode_steps_ = 0;
    DeviceBuffer flag_h_;
    DeviceBuffer step_h_;  // pinned: the position a relaunched recording copies to the device (graphs_ only)
    uint32_t enqueued_seq_ = 0, completed_seq_ = 0;
    std::vector<Deferred> deferred_;
    pi_bk_event *block_ev_[2] = {nullptr, nullptr};
    int next_event_ = 0;
};

}  // namespace

std::unique_ptr<ForwardPass> make_hybrid_forward(const Model &model, const SessionOptions &options,
                                                 const DeviceModel &device) {
    return std::make_unique<HybridForward>(model, options, device);
}

}  // namespace pi
