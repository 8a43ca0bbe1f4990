// The planner's answer: where each layer's parts live and what the cost model predicts for one decode step.
#pragma once

#include <cstdint>
#include <vector>

namespace pi::planner {

enum class LayerKind {
    cpu,    // attention, predictor and every neuron on the CPU
    split,  // attention + predictor + the hottest neurons on the GPU, the rest on the CPU (two copies per token)
    gpu,    // everything on the GPU, no copies
};

struct LayerPlacement {
    LayerKind kind = LayerKind::cpu;
    bool attention_on_gpu = false;  // attention, KV cache and predictor (they always go together)
    uint32_t n_gpu_neurons = 0;
    // The GPU's neurons in ascending original index: the n_gpu_neurons most frequent ones (equal frequencies: the
    // lower index first). The GPU backend stores their rows compacted in this order.
    std::vector<uint32_t> gpu_neurons;
    uint64_t gpu_bytes = 0;  // exact bytes this layer puts on the GPU (attention + KV + predictor + neuron rows)
    double t_gpu = 0.0;      // predicted seconds of the GPU path (0 for a CPU layer)
    double t_cpu = 0.0;      // predicted seconds of the CPU path (0 for a GPU layer)
    double time = 0.0;       // the layer's predicted seconds per decode step
};

struct Placement {
    std::vector<LayerPlacement> layers;
    bool output_on_gpu = false;
    double output_time = 0.0;
    uint64_t gpu_bytes = 0;   // everything on the GPU, scratch included (0 when nothing is); <= the budget
    double step_time = 0.0;   // predicted seconds per decode step: sum of layer times + output head
    uint64_t memory_unit_bytes = 0;  // the unit the solver counted memory in
    uint64_t gpu_units = 0;          // units the plan uses (every object rounded up), scratch excluded
};

}  // namespace pi::planner
