// What the predictors decided during a session: per layer, how many neurons were predicted active in total (the
// measured sparsity, always kept: one addition per layer and token) and, when profiling is on, how often each
// neuron was (one increment per active neuron: about 1,300 per layer and token for bench-7b, nothing next to the
// FFN rows the step reads). The placement planner consumes the per-neuron frequencies (DESIGN §6).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pi {

class ActivationStats {
public:
    // n_ff[l]: neurons of layer l. profile: keep per-neuron counts.
    ActivationStats(std::vector<uint32_t> n_ff, bool profile);

    // One token's active neuron indices (each < n_ff(layer)) of one layer.
    void record(uint32_t layer, const uint32_t *active, size_t n_active) {
        Layer &L = layers_[layer];
        L.tokens += 1;
        L.active_sum += n_active;
        if (profile_) {
            for (size_t i = 0; i < n_active; ++i) L.counts[active[i]] += 1;
        }
    }

    // One token's sparse FFN of one layer: `read` of the layer's `total` FFN weight rows (gate, up and down rows
    // together) were read.
    void record_ffn_rows(uint32_t layer, uint64_t read, uint64_t total) {
        Layer &L = layers_[layer];
        L.ffn_rows_read += read;
        L.ffn_rows_offered += total;
    }

    // One token's predictor of one layer: `read` of its `total` weight bytes (fc1 and fc2 together) were read.
    void record_predictor_bytes(uint32_t layer, uint64_t read, uint64_t total) {
        Layer &L = layers_[layer];
        L.predictor_read += read;
        L.predictor_offered += total;
    }

    size_t n_layer() const { return layers_.size(); }
    bool profiling() const { return profile_; }
    uint32_t n_ff(uint32_t layer) const { return static_cast<uint32_t>(layers_[layer].n_ff); }
    // Tokens whose predictor ran in this layer since creation or the last reset.
    uint64_t tokens(uint32_t layer) const { return layers_[layer].tokens; }
    // Mean fraction of the layer's neurons predicted active per token (0 when no token was recorded).
    double mean_active_fraction(uint32_t layer) const;
    // Fraction of the layer's FFN weight rows its sparse FFN read per token (0 when none was recorded).
    double mean_ffn_rows_read(uint32_t layer) const;
    // Fraction of the layer's predictor weight bytes read per token (0 when none was recorded).
    double mean_predictor_read(uint32_t layer) const;
    // Per-neuron counts (empty unless profiling).
    const std::vector<uint64_t> &counts(uint32_t layer) const { return layers_[layer].counts; }

    void reset();

private:
    struct Layer {
        uint64_t n_ff = 0;
        uint64_t tokens = 0;
        uint64_t active_sum = 0;
        uint64_t ffn_rows_read = 0, ffn_rows_offered = 0;
        uint64_t predictor_read = 0, predictor_offered = 0;
        std::vector<uint64_t> counts;
    };
    bool profile_;
    std::vector<Layer> layers_;
};

}  // namespace pi
