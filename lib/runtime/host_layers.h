// The CPU executors' view of a model's weights (shared by cpu_forward.cpp and the host half of hybrid_forward.cpp, so
// that CPU layers and cold neurons are computed from the same bindings): every matrix of a layer as a
// cpu::WeightMatrix, the layer's FFN as the sparse kernels take it, and the small helpers both executors need.
#pragma once

#include <memory>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/layer_math.h"
#include "backends/cpu/sparse_ffn.h"
#include "backends/cpu/weight_type.h"
#include "backends/cpu/thread_pool.h"
#include "model/model.h"
#include "runtime/ffn_bundle.h"
#include "runtime/kv_cache.h"

namespace pi {

struct HostLayer {
    cpu::WeightMatrix wq, wk, wv, wqkv, wo, gate, up, down, down_t, fc1, fc2;
    cpu::WeightMatrix fc2_t;    // fc2 transposed where the model made the copy (Model::transposed_predictors), or empty
    cpu::SparseFfnWeights ffn;  // gate/up/down_t/up bias/activation of this layer
};

struct HostWeights {
    std::vector<HostLayer> layers;
    cpu::WeightMatrix output;  // the output head (the token embedding when tied)
};

// with_ffn_bundles: bind gate/up/down_t (and ffn) to the model's FFN bundles (Model::ffn_bundles, built at load and
// kept until the model is freed, which outlives its sessions) where a layer has them; otherwise every matrix is a
// view of the file.
HostWeights bind_host_weights(const Model &model, bool with_ffn_bundles = false);

// A tensor as the CPU kernels see it (empty for a missing tensor).
cpu::WeightMatrix as_matrix(const WeightView &w);

inline const float *f32(const WeightView &w) { return reinterpret_cast<const float *>(w.data); }

cpu::FfnActivation cpu_activation(FfnActivation a);

// oneDNN for float weights when compiled in; the blocked GEMM (with the engine's 8-bit activation rounding) otherwise.
cpu::GemmOptions host_gemm_options(bool use_onednn);

// PI_PREFILL=tokenwise: prompts run one token at a time (tests force every executor path, DESIGN §8).
bool tokenwise_prefill_forced();

// Attention of n token rows on the CPU: RoPE of the queries q and keys k (rows of n_head / n_head_kv heads) at
// positions pos0.., keys and values stored in the layer's cache, then causal attention of every row over its
// positions into att, split over (token, range of heads) on the pool -- a range per thread, so that each thread reads
// one contiguous part of every cache row (cpu::attend_heads); each head's softmax and sum are one thread's fixed
// sequence, so results do not depend on the split. A decode token (n = 1) over at least 256 positions splits its
// positions over the threads as well (parts of >= 128 positions, each split by heads when threads are left over: a
// thread reads whole rows, or large parts of them, as one block), and each head's parts are merged in part order
// (cpu::merge_attention_parts): deterministic for a given thread count, within float rounding of the split by heads.
// scores: host_attention_scratch_floats(...) floats of scratch (the position split's share only where it can happen).
// angles: the caller's table of RoPE angles, kept across layers so that a token computes them once (nullptr: a
// table local to this call, once per layer and token).
size_t host_attention_scratch_floats(const HParams &hp, const cpu::ThreadPool &pool, uint32_t n_ctx);
void host_attention(const HParams &hp, KvCache &cache, cpu::ThreadPool &pool, cpu::IsaLevel isa, uint32_t layer,
                    float *q, float *k, const float *v, size_t n, uint32_t pos0, float *scores, float *att,
                    cpu::RopeAngles *angles = nullptr);

}  // namespace pi
