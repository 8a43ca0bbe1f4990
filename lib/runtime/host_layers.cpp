#include "runtime/host_layers.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "backends/cpu/layer_math.h"
#include "runtime/forward_pass.h"
#include "runtime/repacked_weights.h"
#include "runtime/transposed_predictors.h"

namespace pi {

cpu::WeightMatrix as_matrix(const WeightView &w) {
    if (!w) return {};
    return cpu::make_weight_matrix(w.data, static_cast<cpu::WeightType>(w.type()), w.rows(), w.cols());
}

cpu::FfnActivation cpu_activation(FfnActivation a) {
    switch (a) {
        case FfnActivation::Silu: return cpu::FfnActivation::Silu;
        case FfnActivation::Reglu: return cpu::FfnActivation::Reglu;
        case FfnActivation::Drelu: return cpu::FfnActivation::Drelu;
        case FfnActivation::Relu: break;
    }
    return cpu::FfnActivation::Relu;
}

cpu::GemmOptions host_gemm_options(bool use_onednn) {
    cpu::GemmOptions o;
    o.use_onednn = use_onednn && cpu::gemm_onednn_compiled();
    return o;
}

bool tokenwise_prefill_forced() {
    const char *v = std::getenv("PI_PREFILL");
    return v && std::string(v) == "tokenwise";
}

HostWeights bind_host_weights(const Model &model, bool with_ffn_bundles) {
    const ModelWeights &w = model.weights();
    HostWeights out;
    const FfnBundles *bundles = with_ffn_bundles ? model.ffn_bundles().get() : nullptr;
    const RepackedMatrices *repacked = model.repacked().get();
    const TransposedPredictors *transposed = model.transposed_predictors().get();
    // A matrix's repacked copy where the model made one, else the file's rows.
    const auto bind = [repacked](const WeightView &v) {
        const cpu::WeightMatrix *copy = repacked && v ? repacked->find(v.data) : nullptr;
        return copy ? *copy : as_matrix(v);
    };
    out.layers.resize(w.layers.size());
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerWeights &L = w.layers[l];
        HostLayer &M = out.layers[l];
        M.wq = bind(L.wq);
        M.wk = bind(L.wk);
        M.wv = bind(L.wv);
        M.wqkv = bind(L.wqkv);
        M.wo = bind(L.wo);
        M.gate = bind(L.ffn_gate);
        M.up = bind(L.ffn_up);
        M.down = bind(L.ffn_down);
        M.down_t = as_matrix(L.ffn_down_t);
        M.fc1 = bind(L.fc1);
        M.fc2 = bind(L.fc2);
        if (const cpu::WeightMatrix *t = transposed ? transposed->fc2_t(l) : nullptr) M.fc2_t = *t;
        if (const FfnBundle *b = bundles ? bundles->layer(l) : nullptr) {
            M.gate = b->gate();
            M.up = b->up();
            M.down_t = b->down_t();
        }
        M.ffn.gate = M.gate;
        M.ffn.up = M.up;
        M.ffn.down_t = M.down_t;
        M.ffn.up_bias = L.ffn_up_b ? f32(L.ffn_up_b) : nullptr;
        M.ffn.activation = cpu_activation(model.hparams().activation);
    }
    out.output = bind(w.output ? w.output : w.token_embd);
    return out;
}

namespace {
// Query heads per task: the heads split evenly over the pool's threads (a decode step gives each thread one range).
uint32_t heads_per_task(const HParams &hp, const cpu::ThreadPool &pool) {
    const uint32_t threads = static_cast<uint32_t>(std::max(1, pool.size()));
    return std::max<uint32_t>(1, (hp.n_head + threads - 1) / threads);
}

// A decode token over at least this many positions splits them over the threads as well as the heads (below, only
// the heads, whose bits then do not depend on the thread count). A range of heads reads a part of every cache row
// (4 KiB of 8 KiB in a 7B model at two threads, 512 bytes at sixteen), rows 8 KiB apart; a range of positions reads
// whole rows, one contiguous block: the AVX-512 kernel on the development VM, 1568 positions, two threads, 17-21 GB/s
// by heads against 25-28 by positions (docs/PERFORMANCE.md).
#ifndef PI_ATTENTION_SPLIT_POSITIONS
#define PI_ATTENTION_SPLIT_POSITIONS 256
#endif
constexpr uint32_t kSplitMinPositions = PI_ATTENTION_SPLIT_POSITIONS;
constexpr uint32_t kMinPartPositions = 128;  // a part's positions at least (its merge costs a head's output)

// How a decode token's attention is cut: `parts` ranges of positions, each split into `ranges` ranges of heads, one
// task each (parts * ranges <= threads). parts == 1: by heads only.
struct AttentionSplit {
    uint32_t parts = 1, ranges = 1;
};
AttentionSplit attention_split(const cpu::ThreadPool &pool, uint32_t n_pos) {
    const uint32_t threads = static_cast<uint32_t>(std::max(1, pool.size()));
    AttentionSplit s;
    if (n_pos >= kSplitMinPositions) s.parts = std::max<uint32_t>(1, std::min(threads, n_pos / kMinPartPositions));
    s.ranges = std::max<uint32_t>(1, threads / s.parts);
    return s;
}
}  // namespace

size_t host_attention_scratch_floats(const HParams &hp, const cpu::ThreadPool &pool, uint32_t n_ctx) {
    const size_t threads = size_t(std::max(1, pool.size()));
    const size_t by_heads = threads * heads_per_task(hp, pool) * n_ctx;
    if (threads < 2 || n_ctx < kSplitMinPositions) return by_heads;  // attention_split never splits positions
    // By positions (P <= threads parts of n_pos <= n_ctx, R ranges of `per` heads each, R * per < n_head + R): the
    // tasks' scores, P * R * per * (n_pos / P + 1) < (n_head + threads) * (n_ctx + threads) floats, then the parts'
    // outputs and softmax states.
    const size_t q_dim = size_t(hp.n_head) * hp.head_dim;
    const size_t by_positions =
        (size_t(hp.n_head) + threads) * (n_ctx + threads) + threads * (q_dim + 2 * size_t(hp.n_head));
    return std::max(by_heads, by_positions);
}

void host_attention(const HParams &hp, KvCache &cache, cpu::ThreadPool &pool, cpu::IsaLevel isa, uint32_t layer,
                    float *q, float *k, const float *v, size_t n, uint32_t pos0, float *scores, float *att,
                    cpu::RopeAngles *angles) {
    const uint32_t hd = hp.head_dim, group = hp.n_head / hp.n_head_kv;
    const size_t q_dim = size_t(hp.n_head) * hd, kv_dim = size_t(hp.n_head_kv) * hd;
    cpu::RopeAngles local;
    cpu::RopeAngles &table = angles ? *angles : local;
    for (size_t t = 0; t < n; ++t) {
        const uint32_t pos = pos0 + static_cast<uint32_t>(t);
        if (hp.rope_mode != RopeMode::None) {
            const cpu::RopeStyle style = rope_style(hp.rope_mode);
            table.set(pos, hp.rope_dim, hp.rope_freq_base);
            for (uint32_t h = 0; h < hp.n_head; ++h) cpu::rope_rotate(&q[t * q_dim + h * hd], table, style);
            for (uint32_t h = 0; h < hp.n_head_kv; ++h) cpu::rope_rotate(&k[t * kv_dim + h * hd], table, style);
        }
        cache.store(layer, pos, &k[t * kv_dim], &v[t * kv_dim]);
    }
    const float scale = 1.0f / std::sqrt(float(hd));
    const size_t n_ctx = cache.n_ctx();
    const AttentionSplit split = n == 1 ? attention_split(pool, pos0 + 1) : AttentionSplit{};
    if (split.parts > 1) {
        // One decode token, a long context: tasks of (a part of the positions, a range of heads); then each head's
        // parts merged in part order. A head's result depends on the parts only (a range gives each head the bits of
        // a one-head call).
        const uint32_t n_pos = pos0 + 1, parts = split.parts, part_max = n_pos / parts + 1;
        const uint32_t per = (hp.n_head + split.ranges - 1) / split.ranges;
        const size_t task_scores = size_t(per) * part_max;
        float *outs = scores + size_t(parts) * split.ranges * task_scores;
        float *stats = outs + size_t(parts) * q_dim;
        pool.parallel_for(size_t(parts) * split.ranges, [&](size_t task, int) {
            const size_t t = task / split.ranges;
            const uint32_t h0 = uint32_t(task % split.ranges) * per, h1 = std::min(hp.n_head, h0 + per);
            if (h0 >= h1) return;
            const uint32_t p0 = uint32_t(uint64_t(n_pos) * t / parts), p1 = uint32_t(uint64_t(n_pos) * (t + 1) / parts);
            cache.attend_heads_part(layer, group, hd, h0, h1, q, p0, p1 - p0, scale, scores + task * task_scores,
                                    outs + t * q_dim, stats + t * 2 * hp.n_head + 2 * size_t(h0), isa);
        });
        cpu::merge_attention_parts(outs, stats, parts, hp.n_head, hd, att);
        return;
    }
    const uint32_t per = heads_per_task(hp, pool);
    const size_t n_ranges = (hp.n_head + per - 1) / per;
    pool.parallel_for(n * n_ranges, [&](size_t task, int thread) {
        const size_t t = task / n_ranges;
        const uint32_t h0 = static_cast<uint32_t>(task % n_ranges) * per;
        const uint32_t h1 = std::min(hp.n_head, h0 + per);
        const uint32_t pos = pos0 + static_cast<uint32_t>(t);
        cache.attend_heads(layer, group, hd, h0, h1, &q[t * q_dim], pos + 1, scale,
                           &scores[size_t(thread) * per * n_ctx], &att[t * q_dim], isa);
    });
}

}  // namespace pi
