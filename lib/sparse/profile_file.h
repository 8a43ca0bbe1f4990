// Activation profiles on disk (DESIGN §6, §7): a GGUF file with one F32 tensor `blk.N.ffn_act_freq` of n_ff
// frequencies in [0, 1] per layer (count / tokens), the key `powerinfer.profile.tokens` (UINT64, tokens profiled in
// layer 0) and `general.architecture` of the model. The same tensors can be written into a model file
// (tools/add_profile.py), where the loader binds them as LayerWeights::act_freq.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparse/activation_stats.h"

namespace pi {

// Writes the stats' per-neuron frequencies. PI_ERR_INVALID_ARGUMENT when the stats hold no profile (profiling was
// off) or no token was profiled; PI_ERR_IO when the file cannot be written.
void save_activation_profile(const std::string &path, const std::string &arch, const ActivationStats &stats);

struct ActivationProfile {
    uint64_t tokens = 0;
    std::vector<std::vector<float>> frequency;  // [layer][neuron]
};

// Reads a profile; checks every layer's tensor against n_ff (PI_ERR_FORMAT naming what is wrong, PI_ERR_IO).
ActivationProfile load_activation_profile(const std::string &path, const std::vector<uint32_t> &n_ff);

}  // namespace pi
