// predict and sparse_ffn: the sparse path of DESIGN §5.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cases.h"

namespace pi::conformance {
namespace {

bool quantized(uint32_t t) { return t == PI_BK_Q8_0 || t == PI_BK_Q4_0; }

// The predictor. Scores: same rounding on both sides, different summation order: tolerance 2e-5 relative L2.
// Lists: a neuron may be listed by one side only when its reference score lies within 1e-4 * max|s| of the
// threshold (rounding can decide it); any other difference, a list out of ascending order, or a wrong count fails.
// The reported error is the number of unexplained list differences when the scores pass.
struct PredictShape {
    uint64_t n_embd, n_pred, n_ff;
    double active;  // fraction of neurons above the threshold (0: none, 1: all)
    bool use_slot, want_scores;
};

double predict_row(Env &env, uint32_t type, const PredictShape &s, std::string *note) {
    const HostMatrix fc1 = random_matrix(env.rng, type, s.n_pred, s.n_embd, 1.0f / std::sqrt(float(s.n_embd)));
    const HostMatrix fc2 = random_matrix(env.rng, type, s.n_ff, s.n_pred, 1.0f / std::sqrt(float(s.n_pred)));
    const std::vector<float> h = random_floats(env.rng, s.n_embd);
    std::vector<int32_t> slot(s.n_ff, -1);
    int32_t next = 0;
    for (uint64_t i = 0; i < s.n_ff; ++i) {
        if (env.rng() % 3 != 0) slot[i] = next++;  // about 2/3 of the neurons live on "this device"
    }
    // Scores from the reference first, to place the threshold at the wanted quantile.
    Device &ref = env.ref;
    const pi_bk_matrix f1 = ref.put(fc1), f2 = ref.put(fc2);
    const float *hd = ref.put(h);
    int32_t *list = static_cast<int32_t *>(ref.alloc(s.n_ff * 4));
    uint32_t *cnt = static_cast<uint32_t *>(ref.alloc(8));
    float *sc = static_cast<float *>(ref.alloc(s.n_ff * 4));
    ref.check(ref.ops().predict(ref.queue(), &f1, &f2, hd, 0.0f, nullptr, list, cnt, nullptr, nullptr, sc), "predict");
    std::vector<float> sorted = ref.get(sc, s.n_ff);
    std::sort(sorted.begin(), sorted.end());
    float threshold;
    if (s.active <= 0.0) threshold = sorted.back() + 1.0f;
    else if (s.active >= 1.0) threshold = sorted.front() - 1.0f;
    else threshold = sorted[size_t((1.0 - s.active) * double(s.n_ff))];
    ref.release();

    struct Out {
        std::vector<float> scores;
        std::vector<int32_t> list, other;
    } out[2];
    Device *devs[2] = {&env.ref, &env.cand};
    for (int d = 0; d < 2; ++d) {
        Device &dev = *devs[d];
        const pi_bk_matrix a = dev.put(fc1), b = dev.put(fc2);
        const float *hh = dev.put(h);
        const int32_t *sl = s.use_slot ? dev.put(slot) : nullptr;
        int32_t *l = static_cast<int32_t *>(dev.alloc(s.n_ff * 4)), *o = static_cast<int32_t *>(dev.alloc(s.n_ff * 4));
        uint32_t *counts = static_cast<uint32_t *>(dev.alloc(8));
        // The reference always gives scores (the list check needs them); the candidate only when the row asks.
        float *scores = d == 0 || s.want_scores ? static_cast<float *>(dev.alloc(s.n_ff * 4)) : nullptr;
        dev.check(dev.ops().predict(dev.queue(), &a, &b, hh, threshold, sl, l, counts, s.use_slot ? o : nullptr,
                                    s.use_slot ? counts + 1 : nullptr, scores),
                  "predict");
        const std::vector<uint32_t> n = dev.get(counts, 2);
        if (n[0] > s.n_ff || (s.use_slot && n[1] > s.n_ff)) {
            *note = dev.label() + " count out of range";
            return INFINITY;
        }
        if (scores) out[d].scores = dev.get(scores, s.n_ff);
        out[d].list = dev.get(l, n[0]);
        if (s.use_slot) out[d].other = dev.get(o, n[1]);
    }
    double err = 0.0;
    if (s.want_scores) {
        err = relative_error(out[1].scores, out[0].scores);
        if (!(err <= 2e-5)) {
            *note = "scores differ";
            return err;
        }
    }
    // Back to neuron indices (a listed slot s belongs to the neuron with slot[i] == s), then compare as sets.
    std::vector<int32_t> neuron_of_slot(s.n_ff, -1);
    for (uint64_t i = 0; i < s.n_ff; ++i) {
        if (slot[i] >= 0) neuron_of_slot[size_t(slot[i])] = int32_t(i);
    }
    float max_abs = 0.0f;
    for (float v : out[0].scores) max_abs = std::max(max_abs, std::fabs(v));
    double unexplained = 0.0;
    for (int part = 0; part < (s.use_slot ? 2 : 1); ++part) {
        std::vector<int32_t> sets[2];
        for (int d = 0; d < 2; ++d) {
            const std::vector<int32_t> &l = part == 0 ? out[d].list : out[d].other;
            if (!std::is_sorted(l.begin(), l.end()) || std::adjacent_find(l.begin(), l.end()) != l.end()) {
                *note = devs[d]->label() + " list not strictly ascending";
                return INFINITY;
            }
            for (int32_t v : l) {
                const bool via_slot = s.use_slot && part == 0;
                if (v < 0 || uint64_t(v) >= s.n_ff || (via_slot && neuron_of_slot[size_t(v)] < 0)) {
                    *note = devs[d]->label() + " list entry out of range";
                    return INFINITY;
                }
                sets[d].push_back(via_slot ? neuron_of_slot[size_t(v)] : v);
            }
        }
        std::vector<int32_t> diff;
        std::set_symmetric_difference(sets[0].begin(), sets[0].end(), sets[1].begin(), sets[1].end(),
                                      std::back_inserter(diff));
        for (int32_t i : diff) {
            if (std::fabs(out[0].scores[size_t(i)] - threshold) > 1e-4f * max_abs) unexplained += 1.0;
        }
        if (!diff.empty()) *note += std::to_string(diff.size()) + " borderline neuron(s) differ; ";
    }
    if (unexplained > 0.0) *note += "list differs away from the threshold";
    return unexplained > 0.0 ? unexplained : err;
}

void predict_cases(Env &env) {
    const PredictShape shapes[] = {
        {256, 64, 1000, 0.12, false, true}, {352, 96, 3000, 0.12, true, true}, {352, 96, 3000, 0.5, true, false},
        {256, 64, 1000, 0.0, true, true},   {256, 64, 1000, 1.0, true, true},  {4096, 1024, 11008, 0.12, true, true},
    };
    for (uint32_t type : all_weight_types()) {
        for (const PredictShape &s : shapes) {
            const std::string shape = "embd=" + std::to_string(s.n_embd) + " pred=" + std::to_string(s.n_pred) +
                                      " ff=" + std::to_string(s.n_ff) + " active=" + std::to_string(int(s.active * 100)) +
                                      "%" + (s.use_slot ? " slot" : "") + (s.want_scores ? "" : " no-scores");
            env.row("predict", type_name(type), shape, 2e-5,
                    [&](std::string *note) { return predict_row(env, type, s, note); });
        }
    }
}

// The fused sparse FFN. Both sides compute each neuron's activation from dots with the same rounding, then sum
// a * down rows in different orders. Tolerance 1e-5 relative L2 of the output (y starts non-zero: += semantics).
struct FfnShape {
    uint64_t n_embd, n_ff, n_out;
    double active;
    bool float_only;
};

double sparse_row(Env &env, uint32_t type, uint32_t act, const FfnShape &s) {
    const float in_scale = 1.0f / std::sqrt(float(s.n_embd));
    const HostMatrix gate = random_matrix(env.rng, type, s.n_ff, s.n_embd, in_scale);
    const HostMatrix up = random_matrix(env.rng, type, s.n_ff, s.n_embd, in_scale);
    const HostMatrix down = random_matrix(env.rng, type, s.n_ff, s.n_out, 0.1f);
    const std::vector<float> x = random_floats(env.rng, s.n_embd), y0 = random_floats(env.rng, s.n_out);
    const std::vector<float> bias = random_floats(env.rng, s.n_ff, 0.5f);
    std::vector<int32_t> list;
    for (uint64_t i = 0; i < s.n_ff; ++i) {
        if (s.active >= 1.0 || double(env.rng() % 10000) < s.active * 10000.0) list.push_back(int32_t(i));
    }
    const std::vector<uint32_t> count = {uint32_t(list.size())};
    std::vector<float> out[2];
    Device *devs[2] = {&env.ref, &env.cand};
    for (int d = 0; d < 2; ++d) {
        Device &dev = *devs[d];
        pi_bk_ffn f{};
        if (act != PI_BK_ACT_RELU) f.gate = dev.put(gate);
        f.up = dev.put(up);
        f.down_t = dev.put(down);
        f.up_bias = act == PI_BK_ACT_RELU ? dev.put(bias) : nullptr;  // opt-style bias with the plain ReLU
        f.activation = act;
        const float *xd = dev.put(x);
        const int32_t *ld = list.empty() ? static_cast<int32_t *>(dev.alloc(4)) : dev.put(list);
        const uint32_t *nd = dev.put(count);
        float *y = dev.put(y0);
        dev.check(dev.ops().sparse_ffn(dev.queue(), &f, xd, ld, nd, y), "sparse_ffn");
        out[d] = dev.get(y, s.n_out);
    }
    return relative_error(out[1], out[0]);
}

void sparse_ffn_cases(Env &env) {
    const FfnShape shapes[] = {
        {256, 1000, 256, 0.12, false},  {352, 700, 352, 1.0, false},   {352, 500, 352, 0.0, false},
        {4096, 11008, 4096, 0.12, false}, {100, 300, 100, 0.3, true},  {256, 333, 160, 0.5, false},
    };
    const char *act_names[] = {"silu", "reglu", "drelu", "relu"};
    for (uint32_t type : all_weight_types()) {
        for (uint32_t act = PI_BK_ACT_SILU; act <= PI_BK_ACT_RELU; ++act) {
            for (const FfnShape &s : shapes) {
                if (s.float_only && quantized(type)) continue;
                // The bench-sized shape once per type (with ReGLU), to keep the CPU reference's run time small.
                if (s.n_ff > 10000 && act != PI_BK_ACT_REGLU) continue;
                const std::string shape = "embd=" + std::to_string(s.n_embd) + " ff=" + std::to_string(s.n_ff) +
                                          " out=" + std::to_string(s.n_out) +
                                          " active=" + std::to_string(int(s.active * 100)) + "%";
                env.row("sparse_ffn", std::string(type_name(type)) + "/" + act_names[act], shape, 1e-5,
                        [&](std::string *) { return sparse_row(env, type, act, s); });
            }
        }
    }
}

}  // namespace

void sparse_cases(Env &env) {
    predict_cases(env);
    sparse_ffn_cases(env);
}

}  // namespace pi::conformance
