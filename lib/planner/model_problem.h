// Builds the planner's input (a PlacementProblem) from a model file's metadata and tensor infos alone, so a plan
// for a 70B file takes milliseconds: no weight is read. The only tensor data touched are the small
// `blk.N.ffn_act_freq` frequency tensors (n_ff floats per layer). docs/PLANNER.md "From a model file".
//
// Every object the plan may put on the device is described allocation by allocation (ModelObjects), and the
// problem's byte sizes are built from those same numbers, padding included, so that a DeviceReservation
// (device_reservation.h) allocating them never exceeds what the planner promised.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/hparams.h"
#include "model/model_weights.h"
#include "planner/placement_problem.h"

namespace pi::planner {

// Every device allocation is rounded up to this (cudaMalloc's and hipMalloc's alignment; a sub-allocator must use
// the same or a divisor of it).
constexpr uint64_t kDeviceAlignment = 256;

// The GPU workspace is sized for this many tokens at once (the default of ModelPlanOptions::scratch_tokens): the
// executor runs prompts through the GPU's layers in chunks of at most this many tokens (decode is one token). 512 (a usual n_batch): the device's GEMMs need wide
// chunks to be compute-bound (32-token chunks re-read every weight 16x as often for a 512-token prompt).
constexpr uint32_t kScratchTokens = 512;

// Frequencies used for layers without a profile, when the file has predictors: about the mean active fraction of
// ReLU-fied llama models (PowerInfer reports 10-20%; bench-7b plants 11.6%). Uniform, so the hottest neurons are
// simply the lowest indices.
constexpr float kSparsePrior = 0.1f;

// Where a layer's activation frequencies came from, in order of preference.
enum class FreqSource {
    prior = 0,    // no profile: kSparsePrior for every neuron
    file = 1,     // the model file's blk.N.ffn_act_freq tensor
    profile = 2,  // the profile file (ModelPlanOptions::profile_path)
    dense = 3,    // the model has no predictors: every neuron is computed for every token (frequency 1)
};
const char *freq_source_name(FreqSource source);

struct ModelPlanOptions {
    uint64_t budget_bytes = 0;     // the VRAM budget (0: CPU only)
    uint32_t plan_n_ctx = 2048;    // KV cache reserved on the device: plan_n_ctx tokens x plan_n_sessions
    uint32_t plan_n_sessions = 1;
    uint32_t group_size = 32;      // neurons per GPU tile
    std::string profile_path;      // empty: no profile file
    uint32_t scratch_tokens = kScratchTokens;  // prompt chunk the GPU workspace is planned for (>= 1)
};

// What the device holds for one layer, allocation by allocation.
struct LayerObjects {
    uint64_t attention_block = 0;       // attention weights, the layer's norms and biases, and the predictor: one
                                        // allocation, padded to the alignment
    uint64_t predictor_bytes = 0;       // of which the predictor (fc1 + fc2, unpadded)
    std::vector<uint64_t> neuron_rows;  // per FFN matrix (gate, up, down, up bias): bytes of one neuron's share;
                                        // the GPU's neurons of a matrix are one allocation
    uint64_t kv_bytes_per_token = 0;    // K and V of one position (F16)
};

struct ModelObjects {
    std::vector<LayerObjects> layers;
    uint64_t output_block = 0;  // output head + final norm, padded
    uint64_t scratch = 0;       // GPU workspace (formula in model_problem.cpp), padded
    uint32_t plan_n_ctx = 0;
    uint32_t plan_n_sessions = 0;
    uint64_t alignment = kDeviceAlignment;
};

inline uint64_t align_up(uint64_t bytes, uint64_t alignment) { return (bytes + alignment - 1) / alignment * alignment; }

// One session's KV cache of one layer for n_ctx tokens, as allocated.
uint64_t kv_allocation_bytes(const LayerObjects &layer, uint32_t n_ctx, uint64_t alignment);

struct ModelProblem {
    PlacementProblem problem;
    ModelObjects objects;
    std::vector<FreqSource> freq_source;  // per layer
    bool sparse = false;                  // the file has predictors
};

// The shape facts the problem needs beyond the objects (read from hparams).
struct ModelShape {
    uint32_t n_embd = 0;
    uint32_t n_vocab = 0;
    std::vector<uint32_t> n_ff;  // per layer
};

// Assembles the planner's problem from objects and per-layer frequencies (n_ff[l] values each, in [0, 1]). The
// byte sizes: attn_bytes + pred_bytes = attention block + one alignment per FFN matrix (the rounding of the hot
// rows' allocations), kv_bytes = plan_n_sessions x one session's padded KV, kv_read_bytes = plan_n_ctx positions.
PlacementProblem assemble_problem(const ModelObjects &objects, const ModelShape &shape,
                                  std::vector<std::vector<float>> frequencies, const ModelPlanOptions &options);

// From a file already opened and bound (the loader's path). Throws pi::Error: PI_ERR_INVALID_ARGUMENT for bad
// options, PI_ERR_FORMAT for frequencies outside [0, 1] (naming the tensor), the profile file's errors.
ModelProblem build_model_problem(const gguf::File &file, const HParams &hp, const ModelWeights &weights,
                                 const ModelPlanOptions &options);

// From a path: opens the file mapped (lazily: only metadata and tensor infos are parsed), reads the hyper-parameters
// and tensor infos and builds the problem. pi_plan_placement's path.
ModelProblem build_model_problem(const std::string &path, const ModelPlanOptions &options);

}  // namespace pi::planner
