#include "sparse/activation_stats.h"

#include <algorithm>

namespace pi {

ActivationStats::ActivationStats(std::vector<uint32_t> n_ff, bool profile) : profile_(profile) {
    layers_.resize(n_ff.size());
    for (size_t l = 0; l < n_ff.size(); ++l) {
        layers_[l].n_ff = n_ff[l];
        if (profile) layers_[l].counts.assign(n_ff[l], 0);
    }
}

double ActivationStats::mean_active_fraction(uint32_t layer) const {
    const Layer &L = layers_[layer];
    if (L.tokens == 0 || L.n_ff == 0) return 0.0;
    return double(L.active_sum) / (double(L.tokens) * double(L.n_ff));
}

double ActivationStats::mean_ffn_rows_read(uint32_t layer) const {
    const Layer &L = layers_[layer];
    return L.ffn_rows_offered ? double(L.ffn_rows_read) / double(L.ffn_rows_offered) : 0.0;
}

double ActivationStats::mean_predictor_read(uint32_t layer) const {
    const Layer &L = layers_[layer];
    return L.predictor_offered ? double(L.predictor_read) / double(L.predictor_offered) : 0.0;
}

void ActivationStats::reset() {
    for (Layer &L : layers_) {
        L.tokens = 0;
        L.active_sum = 0;
        L.ffn_rows_read = L.ffn_rows_offered = 0;
        L.predictor_read = L.predictor_offered = 0;
        std::fill(L.counts.begin(), L.counts.end(), 0);
    }
}

}  // namespace pi
