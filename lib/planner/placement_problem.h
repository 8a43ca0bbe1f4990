// The inputs of the load-time placement planner (DESIGN.md section 6): pure data, no model or backend types, so the
// planner can be tested and benchmarked on made-up models and wired to the real loader separately.
#pragma once

#include <cstdint>
#include <vector>

namespace pi::planner {

// One transformer layer as the planner sees it. All sizes are bytes of the weight types actually loaded.
struct LayerInput {
    // Activation frequency of each FFN neuron in [0, 1] (probability that the neuron fires for one token); n_ff
    // entries. Any order: the planner ranks them itself.
    std::vector<float> act_freq;
    uint64_t neuron_bytes = 0;   // gate + up + down rows of one neuron (> 0)
    uint64_t attn_bytes = 0;     // attention weights and the layer's norms
    uint64_t kv_bytes = 0;       // KV cache reserved on the device: plan_n_ctx x plan_n_sessions
    uint64_t kv_read_bytes = 0;  // KV bytes one decode step reads at the planning context (one session)
    uint64_t pred_bytes = 0;     // predictor fc1 + fc2 (read whole every step)
    uint64_t hidden_bytes = 0;   // one hidden-state vector as copied between the devices (n_embd x 4)
    // Whether the FFN may be split between the devices. A split decode step needs the predictor's list of active
    // neurons to hand the cold ones to the CPU, so a layer without a predictor (a dense model) is all or nothing:
    // FFN on the GPU, or FFN on the CPU (attention may still be on the GPU).
    bool splittable = true;
};

struct PlacementProblem {
    std::vector<LayerInput> layers;
    uint64_t output_bytes = 0;   // output head + final norm: one object, on the GPU or not
    uint64_t logits_bytes = 0;   // logits copied back to the host when the output head runs on the GPU
    uint64_t scratch_bytes = 0;  // fixed GPU workspace, needed as soon as anything is on the GPU
    uint64_t budget_bytes = 0;   // everything on the GPU, scratch included, fits this; 0 = CPU only
    uint32_t group_size = 32;    // neurons per GPU tile: split layers move whole groups (>= 1)
};

// Knobs of the exact solver; the defaults are what the library uses.
struct PlannerOptions {
    // Memory is counted in whole units (every object rounded up, so the plan never exceeds the budget). 0 = the
    // smallest neuron group of any layer (group_size x neuron_bytes), which makes a group exactly one unit on
    // uniform models. The unit is raised if the budget would need more than max_units of them.
    uint64_t memory_unit_bytes = 0;
    uint32_t max_units = 1u << 17;
    // Tests only: skip the convex fast path and take every layer with the plain O(units x groups) scan.
    bool force_plain_scan = false;
};

}  // namespace pi::planner
