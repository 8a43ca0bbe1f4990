#include "planner/model_problem.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "planner/scratch_layout.h"
#include "sparse/profile_file.h"

namespace pi::planner {
namespace {

constexpr uint32_t kMaxPlanCtx = 1u << 24;       // 16M tokens: beyond any model's context
constexpr uint32_t kMaxPlanSessions = 1u << 16;

void check_options(const ModelPlanOptions &o) {
    if (o.plan_n_ctx == 0 || o.plan_n_ctx > kMaxPlanCtx) {
        fail(PI_ERR_INVALID_ARGUMENT, "plan_n_ctx must be in [1, " + std::to_string(kMaxPlanCtx) + "], got " +
                                          std::to_string(o.plan_n_ctx));
    }
    if (o.plan_n_sessions == 0 || o.plan_n_sessions > kMaxPlanSessions) {
        fail(PI_ERR_INVALID_ARGUMENT, "plan_n_sessions must be in [1, " + std::to_string(kMaxPlanSessions) +
                                          "], got " + std::to_string(o.plan_n_sessions));
    }
    if (o.group_size == 0 || o.group_size > 65536) {
        fail(PI_ERR_INVALID_ARGUMENT, "neuron_group must be in [1, 65536], got " + std::to_string(o.group_size));
    }
}

uint64_t bytes_of(const WeightView &v) { return v ? v.info->n_bytes : 0; }

// One neuron's share of an FFN matrix: the row (gate, up, down_t) or the column (dense down) of n_ff. Rounded up,
// so that a column of a block-quantized matrix is never undercounted.
uint64_t per_neuron(const WeightView &v, uint64_t n_ff) { return v ? (v.info->n_bytes + n_ff - 1) / n_ff : 0; }

LayerObjects layer_objects(const LayerWeights &L, const HParams &hp) {
    LayerObjects o;
    uint64_t attention = 0;
    // Everything the layer reads for every token outside the neuron rows: attention, norms, and the biases that are
    // not per neuron (ffn_down_b is added to the FFN's output, one vector).
    for (const WeightView *v : {&L.attn_norm, &L.attn_norm_b, &L.attn_norm_2, &L.attn_norm_2_b, &L.wq, &L.wk, &L.wv,
                                &L.wqkv, &L.wo, &L.bq, &L.bk, &L.bv, &L.bo, &L.ffn_norm, &L.ffn_norm_b,
                                &L.ffn_down_b}) {
        attention += bytes_of(*v);
    }
    o.predictor_bytes = bytes_of(L.fc1) + bytes_of(L.fc2);
    o.attention_block = align_up(attention + o.predictor_bytes, kDeviceAlignment);
    const uint64_t F = hp.n_ff;
    for (const WeightView *v : {&L.ffn_gate, &L.ffn_up, &L.ffn_down_t, &L.ffn_down, &L.ffn_up_b}) {
        if (*v) o.neuron_rows.push_back(per_neuron(*v, F));
    }
    o.kv_bytes_per_token = 2ull * hp.n_head_kv * hp.head_dim * 2;  // K and V, F16
    return o;
}

// The GPU workspace for `tokens` tokens (ModelPlanOptions::scratch_tokens): exactly what the runtime allocates
// (scratch_layout.h), with a slot table for every layer (which layers split is not known yet). No attention scores:
// the device attention uses an online softmax (backends/cuda/attention.cu), the CPU keeps its own.
uint64_t scratch_bytes(const HParams &hp, uint64_t n_vocab, uint32_t tokens) {
    return workspace_bytes(std::max<uint32_t>(tokens, 1), hp.n_embd, hp.n_ff, hp.n_head * hp.head_dim,
                           hp.n_head_kv * hp.head_dim, uint32_t(n_vocab), hp.n_layer, hp.n_layer);
}

std::vector<float> read_file_frequencies(const gguf::File &file, const WeightView &v, uint32_t layer) {
    // Copied, not viewed: these few KB are the only tensor data planning reads (bind() checked F32 and [n_ff]).
    std::vector<float> f(v.cols());
    std::memcpy(f.data(), file.tensor_data(*v.info), f.size() * sizeof(float));
    for (size_t i = 0; i < f.size(); ++i) {
        if (!(f[i] >= 0.0f && f[i] <= 1.0f)) {
            fail(PI_ERR_FORMAT, file.name() + ": tensor 'blk." + std::to_string(layer) + ".ffn_act_freq' holds " +
                                    std::to_string(f[i]) + " at neuron " + std::to_string(i) +
                                    " (frequencies must be in [0, 1])");
        }
    }
    return f;
}

}  // namespace

const char *freq_source_name(FreqSource source) {
    switch (source) {
        case FreqSource::prior: return "prior";
        case FreqSource::file: return "file";
        case FreqSource::profile: return "profile";
        case FreqSource::dense: return "dense";
    }
    return "unknown";
}

uint64_t kv_allocation_bytes(const LayerObjects &layer, uint32_t n_ctx, uint64_t alignment) {
    return align_up(layer.kv_bytes_per_token * n_ctx, alignment);
}

PlacementProblem assemble_problem(const ModelObjects &objects, const ModelShape &shape,
                                  std::vector<std::vector<float>> frequencies, const ModelPlanOptions &options) {
    check_options(options);
    if (objects.layers.size() != shape.n_ff.size() || frequencies.size() != shape.n_ff.size()) {
        fail(PI_ERR_INTERNAL, "assemble_problem: layer counts of objects, shape and frequencies differ");
    }
    PlacementProblem p;
    p.layers.resize(objects.layers.size());
    for (size_t l = 0; l < objects.layers.size(); ++l) {
        const LayerObjects &o = objects.layers[l];
        LayerInput &in = p.layers[l];
        if (frequencies[l].size() != shape.n_ff[l]) {
            fail(PI_ERR_INTERNAL, "assemble_problem: layer " + std::to_string(l) + " has the wrong frequency count");
        }
        in.act_freq = std::move(frequencies[l]);
        uint64_t neuron = 0;
        for (uint64_t row : o.neuron_rows) neuron += row;
        in.neuron_bytes = neuron;
        // The hot rows of each matrix are one allocation, rounded up to the alignment: one alignment per matrix
        // covers it, whatever the number of neurons. Counted in the attention part, which always goes with them.
        const uint64_t slack = objects.alignment * o.neuron_rows.size();
        in.pred_bytes = o.predictor_bytes;
        in.attn_bytes = o.attention_block - o.predictor_bytes + slack;
        in.kv_bytes = uint64_t(options.plan_n_sessions) * kv_allocation_bytes(o, options.plan_n_ctx, objects.alignment);
        in.kv_read_bytes = o.kv_bytes_per_token * options.plan_n_ctx;
        in.hidden_bytes = uint64_t(shape.n_embd) * 4;
        in.splittable = o.predictor_bytes > 0;  // the executor splits a decode step by the predicted list
    }
    p.output_bytes = objects.output_block;
    p.logits_bytes = uint64_t(shape.n_vocab) * 4;
    p.scratch_bytes = objects.scratch;
    p.budget_bytes = options.budget_bytes;
    p.group_size = options.group_size;
    return p;
}

ModelProblem build_model_problem(const gguf::File &file, const HParams &hp, const ModelWeights &weights,
                                 const ModelPlanOptions &options) {
    check_options(options);
    ModelProblem mp;
    mp.sparse = weights.has_predictors;
    ModelShape shape;
    shape.n_embd = hp.n_embd;
    shape.n_vocab = static_cast<uint32_t>(weights.token_embd.rows());
    shape.n_ff.assign(hp.n_layer, hp.n_ff);

    ModelObjects &objects = mp.objects;
    objects.plan_n_ctx = options.plan_n_ctx;
    objects.plan_n_sessions = options.plan_n_sessions;
    for (const LayerWeights &L : weights.layers) objects.layers.push_back(layer_objects(L, hp));
    // The output head is the token embedding itself when the file has no output.weight (tied): the GPU then needs
    // its own copy of the table.
    const WeightView &head = weights.output ? weights.output : weights.token_embd;
    objects.output_block =
        align_up(bytes_of(head) + bytes_of(weights.output_norm) + bytes_of(weights.output_norm_b), kDeviceAlignment);
    objects.scratch = scratch_bytes(hp, shape.n_vocab, options.scratch_tokens);

    // Frequencies, per layer: the file's tensor, else the profile file, else the uniform prior. A dense model
    // computes every neuron for every token, whatever a profile says.
    ActivationProfile profile;
    if (!options.profile_path.empty()) profile = load_activation_profile(options.profile_path, shape.n_ff);
    std::vector<std::vector<float>> freq(hp.n_layer);
    mp.freq_source.resize(hp.n_layer);
    for (uint32_t l = 0; l < hp.n_layer; ++l) {
        const LayerWeights &L = weights.layers[l];
        if (!mp.sparse) {
            freq[l].assign(hp.n_ff, 1.0f);
            mp.freq_source[l] = FreqSource::dense;
        } else if (L.act_freq) {
            freq[l] = read_file_frequencies(file, L.act_freq, l);
            mp.freq_source[l] = FreqSource::file;
        } else if (!profile.frequency.empty()) {
            freq[l] = std::move(profile.frequency[l]);
            mp.freq_source[l] = FreqSource::profile;
        } else {
            freq[l].assign(hp.n_ff, kSparsePrior);
            mp.freq_source[l] = FreqSource::prior;
        }
    }
    mp.problem = assemble_problem(objects, shape, std::move(freq), options);
    return mp;
}

ModelProblem build_model_problem(const std::string &path, const ModelPlanOptions &options) {
    check_options(options);  // before touching the file: bad options are the caller's error, whatever the file
    gguf::OpenOptions open;
    open.use_mmap = true;  // mapped, never read: only the pages of the header and the frequency tensors fault in
    const std::unique_ptr<gguf::File> file = gguf::File::open(path, open);
    const HParams hp = HParams::from_gguf(*file);
    const ModelWeights weights = ModelWeights::bind(*file, hp);
    return build_model_problem(*file, hp, weights, options);
}

}  // namespace pi::planner
