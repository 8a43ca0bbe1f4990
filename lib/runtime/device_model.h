// A model's share on a device (DESIGN §1, §6): the backend table and context, the placement, and what the plan puts
// on the device, uploaded through the table's buffer_alloc. Built once at load time, immutable afterwards except
// for the session KV admissions, which are guarded by a mutex; several sessions share it.
//
// Memory accounting: every device allocation goes through DeviceMemory, which refuses (PI_ERR_OUT_OF_MEMORY, with
// what was asked and what is left) anything past the budget. The plan's promise is checked twice: a ledger
// DeviceReservation (planner/device_reservation.h) holds the planned sizes and admits sessions' KV caches by the
// planner's rules, and the real allocations, never larger than the planned ones, are counted against the budget.
// Not counted: pinned host memory (not VRAM) and the GPU module's own stream workspace (docs/HYBRID.md).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "planner/cost_cache.h"
#include "planner/device_reservation.h"
#include "planner/model_problem.h"
#include "planner/placement.h"
#include "planner/scratch_layout.h"

namespace pi {

class Model;
class DeviceMemory;

// One allocation of a backend table, freed (and given back to the accounting) when destroyed. Move-only.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(DeviceMemory *owner, pi_bk_buffer *buffer, uint64_t counted_bytes)
        : owner_(owner), buffer_(buffer), counted_(counted_bytes) {}
    ~DeviceBuffer() { reset(); }
    DeviceBuffer(DeviceBuffer &&o) noexcept { *this = std::move(o); }
    DeviceBuffer &operator=(DeviceBuffer &&o) noexcept;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;

    void *address() const;       // what operations take
    void *host_address() const;  // pinned host memory: the CPU's address
    explicit operator bool() const { return buffer_ != nullptr; }
    void reset() noexcept;

private:
    DeviceMemory *owner_ = nullptr;
    pi_bk_buffer *buffer_ = nullptr;
    uint64_t counted_ = 0;  // bytes counted against the budget (0 for pinned host memory)
};

// The budget-enforcing allocator over a backend table. Thread-safe.
class DeviceMemory {
public:
    DeviceMemory(const pi_backend_ops *ops, pi_bk_context *ctx, uint64_t capacity)
        : ops_(ops), ctx_(ctx), capacity_(capacity) {}

    // Device memory, counted (rounded up to planner::kDeviceAlignment, as the plan counts it). Throws
    // PI_ERR_OUT_OF_MEMORY naming `what` when the budget or the device refuses.
    DeviceBuffer allocate(uint64_t bytes, const std::string &what);
    // Page-locked host memory the device copies to and from; not VRAM, not counted.
    DeviceBuffer allocate_pinned(uint64_t bytes, const std::string &what);

    uint64_t capacity() const { return capacity_; }
    uint64_t used() const;
    uint64_t peak() const;
    const pi_backend_ops *ops() const { return ops_; }

private:
    friend class DeviceBuffer;
    void give_back(pi_bk_buffer *buffer, uint64_t counted) noexcept;

    const pi_backend_ops *ops_;
    pi_bk_context *ctx_;
    uint64_t capacity_;
    mutable std::mutex mutex_;
    uint64_t used_ = 0, peak_ = 0;
};

// One layer's weights as the device holds them (device addresses). Only the parts the plan put there are set.
struct DeviceLayer {
    bool attention = false;  // attention, norms, biases, predictor and the KV cache on the device
    bool all_neurons = false;  // every FFN neuron on the device (LayerKind::gpu)
    bool dense_ffn = false;    // gate/up/down kept as dense matrices (matmul path): GPU layers of dense models
                               // with the ffn_down layout
    uint32_t n_hot = 0;        // FFN rows on the device
    std::vector<uint32_t> hot_neurons;   // their original indices, ascending (row j <-> hot_neurons[j])
    std::vector<uint32_t> cold_neurons;  // the complement, ascending (the CPU's neurons)

    const float *attn_norm = nullptr, *attn_norm_b = nullptr, *attn_norm_2 = nullptr, *attn_norm_2_b = nullptr;
    const float *ffn_norm = nullptr, *ffn_norm_b = nullptr, *ffn_down_b = nullptr;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
    pi_bk_matrix wq{}, wk{}, wv{}, wqkv{}, wo{}, fc1{}, fc2{};
    // wq, wk and wv as one matrix (their rows are packed back to back on the device): a decode step's q, k and v in
    // one product, [q | k | v] being exactly the one-token layout. Empty when the three are not contiguous.
    pi_bk_matrix wqkv_stacked{};
    // dense_ffn layers: ffn_gate and ffn_up stacked the same way ([gate | up] in one decode product), else empty.
    pi_bk_matrix gate_up_stacked{};
    pi_bk_ffn hot{};        // n_hot rows of gate/up/down_t (dense_ffn: gate/up of every neuron, down_t unset)
    pi_bk_matrix down{};    // dense_ffn only: ffn_down (n_embd x n_ff)
    const int32_t *slot = nullptr;  // split layers: neuron -> hot row or -1 (n_ff entries)
};

// Options of the wiring (model.cpp) for one device model.
struct DeviceModelOptions {
    uint64_t budget_bytes = 0;
    planner::ModelPlanOptions plan;       // budget_bytes inside is ignored (the field above decides)
    planner::CostOverrides cost;
    int32_t n_threads = 1;                // the CPU's threads (cost model) and the CPU "device"'s pool
    int32_t device = 0;
    // Tests: a fixed placement instead of the planner's (PI_TEST_PLAN, see parse_forced_plan). Empty: plan.
    std::string forced_plan;
};

// A session's KV cache on the device: one allocation (K then V) per layer with attention there.
struct DeviceSessionKv {
    std::vector<DeviceBuffer> layers;  // indexed by layer; empty buffers for layers without device attention
    std::vector<void *> k, v;          // device addresses of each layer's K and V rows (nullptr: not on device)
    planner::DeviceReservation::SessionKv ledger;
};

class DeviceModel {
public:
    // Opens a context on `ops`, plans (or takes the forced plan), uploads the device's share. Throws pi::Error:
    // PI_ERR_BACKEND when the backend fails, PI_ERR_OUT_OF_MEMORY when the share does not fit, PI_ERR_INVALID_ARGUMENT
    // for a malformed forced plan.
    static std::unique_ptr<DeviceModel> create(const Model &model, const pi_backend_ops *ops,
                                               const DeviceModelOptions &options);
    ~DeviceModel();
    DeviceModel(const DeviceModel &) = delete;
    DeviceModel &operator=(const DeviceModel &) = delete;

    const pi_backend_ops *ops() const { return ops_; }
    pi_bk_context *context() const { return ctx_; }
    const planner::Placement &placement() const { return placement_; }
    const DeviceLayer &layer(uint32_t l) const { return layers_[l]; }
    bool output_on_device() const { return output_on_device_; }
    const pi_bk_matrix &output() const { return output_; }
    const float *output_norm() const { return output_norm_; }
    const float *output_norm_b() const { return output_norm_b_; }
    bool any_on_device() const { return placement_.gpu_bytes > 0; }
    // Bytes on the device now (the model's share plus live sessions' KV caches).
    uint64_t device_bytes() const { return memory_->used(); }
    // The model's share as uploaded (what pi_model_info.gpu_bytes reports).
    uint64_t model_bytes() const { return model_bytes_; }

    // The shared device workspace (planned once, as scratch): prompt chunks of at most chunk_tokens() tokens.
    // A session holds scratch_lock() for the whole of each run, so sessions on one model take turns on the device.
    float *scratch() const { return static_cast<float *>(scratch_.address()); }
    uint32_t chunk_tokens() const { return chunk_tokens_; }
    std::mutex &scratch_lock() const { return scratch_mutex_; }
    // A device array 0, 1, ..., n_ff - 1: the row list of dense steps over a layer's hot rows.
    const int32_t *iota() const { return iota_; }

    // A session's KV cache for n_ctx tokens of kv_type (PI_BK_KV_F16/F32). PI_ERR_OUT_OF_MEMORY when it does not fit
    // the reservation or the budget (the message says how much is needed and left).
    DeviceSessionKv reserve_session(uint32_t n_ctx, uint32_t kv_type) const;
    void release_session(DeviceSessionKv &kv) const noexcept;

    DeviceMemory &memory() const { return *memory_; }

private:
    DeviceModel() = default;
    void upload(const Model &model, const planner::ModelObjects &objects);

    const pi_backend_ops *ops_ = nullptr;
    pi_bk_context *ctx_ = nullptr;
    std::unique_ptr<DeviceMemory> memory_;
    planner::Placement placement_;
    planner::ModelObjects objects_;
    std::unique_ptr<planner::DeviceAllocator> ledger_;
    std::unique_ptr<planner::DeviceReservation> reservation_;
    std::vector<DeviceLayer> layers_;
    std::vector<DeviceBuffer> buffers_;  // the model's share
    DeviceBuffer scratch_;  // the workspace: activations, then the split layers' slot tables, then the iota list
    const int32_t *iota_ = nullptr;
    uint32_t chunk_tokens_ = 1;
    bool output_on_device_ = false;
    pi_bk_matrix output_{};
    const float *output_norm_ = nullptr, *output_norm_b_ = nullptr;
    uint64_t model_bytes_ = 0;
    uint32_t kv_dim_ = 0;
    mutable std::mutex session_mutex_, scratch_mutex_;
};

using planner::ScratchLayout;  // the device workspace layout (lib/planner/scratch_layout.h)

// A fixed placement for tests, from a spec like "split:37,cpu,gpu,attn,out": one item per layer — cpu (nothing on
// the device), gpu (every neuron), split:N (attention + the N most frequent neurons), attn (split:0) — and an
// optional last item "out" (the output head on the device). Exposed for the unit test; throws
// PI_ERR_INVALID_ARGUMENT naming the bad item.
planner::Placement parse_forced_plan(const std::string &spec, const planner::PlacementProblem &problem);

}  // namespace pi
