#include "runtime/device_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <sstream>

#include "backends/cpu/weight_type.h"
#include "common/error.h"
#include "common/log.h"
#include "model/model.h"
#include "planner/cost_cache.h"
#include "runtime/device_probe.h"
#include "planner/neuron_order.h"
#include "planner/planner.h"

namespace pi {
namespace {

using planner::align_up;
using planner::kDeviceAlignment;

std::string mib(uint64_t bytes) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(bytes) / (1024.0 * 1024.0));
    return buf;
}

void check(const pi_backend_ops *ops, int32_t rc, const std::string &what) {
    if (rc == PI_BK_OK) return;
    const std::string msg = what + ": " + ops->last_error();
    fail(rc == PI_BK_ERR_OUT_OF_MEMORY ? PI_ERR_OUT_OF_MEMORY : PI_ERR_BACKEND, msg);
}

// The planner's view of device memory for the ledger: counts bytes, holds none. Admits sessions by the planner's
// rules (planner::DeviceReservation) before the real KV buffers are allocated.
class Ledger final : public planner::DeviceAllocator {
public:
    explicit Ledger(uint64_t capacity) : capacity_(capacity) {}
    uint64_t allocate(uint64_t bytes, const std::string &what) override {
        bytes = align_up(bytes, kDeviceAlignment);
        if (bytes > capacity_ - used_) {
            fail(PI_ERR_OUT_OF_MEMORY, what + " needs " + mib(bytes) + " but only " + mib(capacity_ - used_) +
                                           " of the " + mib(capacity_) + " VRAM budget are left");
        }
        used_ += bytes;
        live_[next_] = bytes;
        return next_++;
    }
    void release(uint64_t id) noexcept override {
        auto it = live_.find(id);
        if (it == live_.end()) return;
        used_ -= it->second;
        live_.erase(it);
    }
    uint64_t capacity() const override { return capacity_; }
    uint64_t used() const override { return used_; }
    uint64_t alignment() const override { return kDeviceAlignment; }

private:
    uint64_t capacity_, used_ = 0, next_ = 1;
    std::map<uint64_t, uint64_t> live_;
};

pi_bk_matrix matrix_at(const void *data, gguf::TensorType type, uint64_t rows, uint64_t cols) {
    pi_bk_matrix m{};
    m.data = data;
    m.type = static_cast<uint32_t>(type);
    m.n_rows = rows;
    m.n_cols = cols;
    m.row_stride = cpu::weight_row_bytes(static_cast<cpu::WeightType>(type), cols);
    return m;
}

uint64_t element_bytes(gguf::TensorType t) { return t == gguf::TensorType::F32 ? 4 : 2; }
bool is_float(gguf::TensorType t) {
    return t == gguf::TensorType::F32 || t == gguf::TensorType::F16 || t == gguf::TensorType::BF16;
}

// Copies host data into device buffers; the staged copies stay alive until finish() (the queue may read them
// late).
class Uploader {
public:
    Uploader(const pi_backend_ops *ops, pi_bk_context *ctx) : ops_(ops) {
        check(ops, ops->queue_create(ctx, &queue_), "creating the upload queue");
    }
    ~Uploader() {
        if (queue_) {
            ops_->queue_synchronize(queue_);
            ops_->queue_free(queue_);
        }
    }
    void copy(void *dst, const void *src, uint64_t bytes) {
        if (bytes) check(ops_, ops_->copy_to_device(queue_, dst, src, bytes), "uploading weights");
    }
    std::vector<uint8_t> &stage(uint64_t bytes) {
        staged_.emplace_back(bytes);
        return staged_.back();
    }
    void finish() {
        check(ops_, ops_->queue_synchronize(queue_), "uploading weights");
        staged_.clear();
    }

private:
    const pi_backend_ops *ops_;
    pi_bk_queue *queue_ = nullptr;
    std::list<std::vector<uint8_t>> staged_;
};

// PI_VRAM_BUDGET_AUTO (UINT64_MAX): the device's free memory minus a reserve for what the budget does not count —
// the GPU module's stream workspace (cuBLAS panels of up to 64 MiB, q8 activations, sparse and attention partials),
// the cuBLAS handle and fragmentation: 512 MiB plus 5% of the device. A device that reports no memory (the CPU table
// used as the device, for tests) has no limit.
uint64_t resolve_budget(const pi_backend_ops *ops, pi_bk_context *ctx, uint64_t requested) {
    if (requested != UINT64_MAX) return requested;
    pi_bk_device_info info{};
    info.struct_size = sizeof info;
    check(ops, ops->device_info(ctx, &info), "reading the device's free memory");
    if (info.total_bytes == 0) return uint64_t(1) << 50;
    const uint64_t reserve = (uint64_t(512) << 20) + info.total_bytes / 20;
    return info.free_bytes > reserve ? info.free_bytes - reserve : 0;
}

}  // namespace

// ---- buffers and accounting ---------------------------------------------------------------------------------------

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&o) noexcept {
    if (this != &o) {
        reset();
        owner_ = o.owner_;
        buffer_ = o.buffer_;
        counted_ = o.counted_;
        o.owner_ = nullptr;
        o.buffer_ = nullptr;
        o.counted_ = 0;
    }
    return *this;
}

void *DeviceBuffer::address() const { return buffer_ ? owner_->ops()->buffer_address(buffer_) : nullptr; }
void *DeviceBuffer::host_address() const { return buffer_ ? owner_->ops()->buffer_host_address(buffer_) : nullptr; }

void DeviceBuffer::reset() noexcept {
    if (buffer_) owner_->give_back(buffer_, counted_);
    buffer_ = nullptr;
    owner_ = nullptr;
    counted_ = 0;
}

DeviceBuffer DeviceMemory::allocate(uint64_t bytes, const std::string &what) {
    const uint64_t counted = align_up(std::max<uint64_t>(bytes, 1), kDeviceAlignment);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (counted > capacity_ - used_) {
            fail(PI_ERR_OUT_OF_MEMORY, what + ": needs " + mib(counted) + " of device memory, but " + mib(used_) +
                                           " of the " + mib(capacity_) + " VRAM budget are in use");
        }
        used_ += counted;
        peak_ = std::max(peak_, used_);
    }
    pi_bk_buffer *b = nullptr;
    const int32_t rc = ops_->buffer_alloc(ctx_, counted, PI_BK_MEMORY_DEVICE, &b);
    if (rc != PI_BK_OK) {
        std::lock_guard<std::mutex> lock(mutex_);
        used_ -= counted;
        fail(PI_ERR_OUT_OF_MEMORY, what + ": the device refused " + mib(counted) + ": " + ops_->last_error());
    }
    return DeviceBuffer(this, b, counted);
}

DeviceBuffer DeviceMemory::allocate_pinned(uint64_t bytes, const std::string &what) {
    pi_bk_buffer *b = nullptr;
    const int32_t rc = ops_->buffer_alloc(ctx_, std::max<uint64_t>(bytes, 64), PI_BK_MEMORY_HOST_PINNED, &b);
    if (rc != PI_BK_OK) {
        fail(PI_ERR_OUT_OF_MEMORY, what + ": cannot allocate " + mib(bytes) + " of pinned host memory: " +
                                       ops_->last_error());
    }
    return DeviceBuffer(this, b, 0);
}

uint64_t DeviceMemory::used() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return used_;
}
uint64_t DeviceMemory::peak() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_;
}

void DeviceMemory::give_back(pi_bk_buffer *buffer, uint64_t counted) noexcept {
    ops_->buffer_free(buffer);
    std::lock_guard<std::mutex> lock(mutex_);
    used_ -= counted;
}

// ---- forced plans (tests) -----------------------------------------------------------------------------------------

planner::Placement parse_forced_plan(const std::string &spec, const planner::PlacementProblem &problem) {
    std::vector<std::string> items;
    std::stringstream in(spec);
    for (std::string item; std::getline(in, item, ',');) items.push_back(item);
    planner::Placement p;
    if (!items.empty() && items.back() == "out") {
        p.output_on_gpu = true;
        items.pop_back();
    }
    if (items.size() != problem.layers.size()) {
        fail(PI_ERR_INVALID_ARGUMENT, "PI_TEST_PLAN '" + spec + "': " + std::to_string(items.size()) +
                                          " layer items for a model of " + std::to_string(problem.layers.size()) +
                                          " layers");
    }
    bool any = p.output_on_gpu;
    for (size_t l = 0; l < items.size(); ++l) {
        const planner::LayerInput &in_l = problem.layers[l];
        const uint32_t F = static_cast<uint32_t>(in_l.act_freq.size());
        planner::LayerPlacement lp;
        const std::string &it = items[l];
        if (it == "cpu") {
            lp.kind = planner::LayerKind::cpu;
        } else if (it == "gpu") {
            lp.kind = planner::LayerKind::gpu;
            lp.n_gpu_neurons = F;
        } else if (it == "attn" || it.rfind("split:", 0) == 0) {
            lp.kind = planner::LayerKind::split;
            if (it != "attn") {
                char *end = nullptr;
                const unsigned long n = std::strtoul(it.c_str() + 6, &end, 10);
                if (!end || *end != '\0' || it.size() == 6 || n > F) {
                    fail(PI_ERR_INVALID_ARGUMENT, "PI_TEST_PLAN '" + spec + "': item '" + it + "' needs a neuron count in [0, " +
                                                      std::to_string(F) + "]");
                }
                lp.n_gpu_neurons = static_cast<uint32_t>(n);
            }
        } else {
            fail(PI_ERR_INVALID_ARGUMENT, "PI_TEST_PLAN '" + spec + "': item '" + it +
                                              "' is not cpu, gpu, attn, split:N or (last) out");
        }
        lp.attention_on_gpu = lp.kind != planner::LayerKind::cpu;
        lp.gpu_neurons = planner::hottest_neurons(in_l.act_freq, planner::sorted_hottest_first(in_l.act_freq, uint32_t(l)),
                                                  lp.n_gpu_neurons);
        if (lp.attention_on_gpu) {
            lp.gpu_bytes = in_l.attn_bytes + in_l.kv_bytes + in_l.pred_bytes + uint64_t(lp.n_gpu_neurons) * in_l.neuron_bytes;
        }
        any = any || lp.attention_on_gpu;
        p.gpu_bytes += lp.gpu_bytes;
        p.layers.push_back(std::move(lp));
    }
    if (p.output_on_gpu) p.gpu_bytes += problem.output_bytes;
    if (any) p.gpu_bytes += problem.scratch_bytes;
    return p;
}

// ---- the device model ---------------------------------------------------------------------------------------------

std::unique_ptr<DeviceModel> DeviceModel::create(const Model &model, const pi_backend_ops *ops,
                                                 const DeviceModelOptions &options) {
    std::unique_ptr<DeviceModel> dm(new DeviceModel());
    dm->ops_ = ops;
    pi_bk_context_params cp{};
    cp.struct_size = sizeof cp;
    cp.device = options.device;
    cp.n_threads = options.n_threads;
    cp.isa_level = -1;
    check(ops, ops->context_create(&cp, &dm->ctx_), std::string("opening the ") + ops->name + " backend");
    const uint64_t budget = resolve_budget(ops, dm->ctx_, options.budget_bytes);
    dm->memory_ = std::make_unique<DeviceMemory>(ops, dm->ctx_, budget);

    planner::ModelPlanOptions plan_options = options.plan;
    plan_options.budget_bytes = budget;
    planner::ModelProblem mp = planner::build_model_problem(model.file(), model.hparams(), model.weights(), plan_options);
    if (!options.forced_plan.empty()) {
        dm->placement_ = parse_forced_plan(options.forced_plan, mp.problem);
        if (dm->placement_.gpu_bytes > budget) {
            fail(PI_ERR_OUT_OF_MEMORY, "PI_TEST_PLAN '" + options.forced_plan + "' needs " +
                                           mib(dm->placement_.gpu_bytes) + " on the device, more than the " +
                                           mib(budget) + " VRAM budget");
        }
    } else {
        planner::CostCacheOptions cache;
        cache.n_threads = std::max(1, options.n_threads);
        // The GPU numbers measured on this device once (then cached per device name). Not for the CPU-backed test
        // devices, whose "device" is this CPU: a probe there would only slow the tests down.
        const std::string backend = ops->name;
        if (backend != "cpu" && backend != "sim") {
            pi_bk_device_info info{};
            info.struct_size = sizeof info;
            if (ops->device_info(dm->ctx_, &info) == PI_BK_OK) {
                cache.gpu_name = std::string(backend) + "." + info.name;
                pi_bk_context *ctx = dm->ctx_;
                cache.measure_gpu = [ops, ctx] { return probe_device(ops, ctx); };
            }
        }
        const planner::ResolvedCosts costs = planner::resolve_costs(options.cost, cache);
        dm->placement_ = planner::plan(mp.problem, costs.params);
    }
    dm->objects_ = mp.objects;
    dm->ledger_ = std::make_unique<Ledger>(budget);
    dm->reservation_ = std::make_unique<planner::DeviceReservation>(dm->placement_, dm->objects_, *dm->ledger_);
    dm->upload(model, mp.objects);
    return dm;
}

DeviceModel::~DeviceModel() {
    layers_.clear();
    buffers_.clear();
    scratch_.reset();
    reservation_.reset();
    memory_.reset();
    if (ctx_) ops_->context_free(ctx_);
}

void DeviceModel::upload(const Model &model, const planner::ModelObjects &objects) {
    const HParams &hp = model.hparams();
    const ModelWeights &w = model.weights();
    const uint32_t E = hp.n_embd, F = hp.n_ff;
    kv_dim_ = hp.n_head_kv * hp.head_dim;
    Uploader up(ops_, ctx_);
    layers_.resize(hp.n_layer);

    // Packs views into one allocation, 16-byte aligned each (the GPU's vector loads); returns each view's address.
    auto pack = [&](const std::vector<const WeightView *> &views, const std::string &what) {
        uint64_t total = 0;
        std::vector<uint64_t> offsets;
        for (const WeightView *v : views) {
            offsets.push_back(total);
            total += *v ? align_up(v->info->n_bytes, 16) : 0;
        }
        buffers_.push_back(memory_->allocate(total, what));
        uint8_t *base = static_cast<uint8_t *>(buffers_.back().address());
        std::vector<const void *> at;
        for (size_t i = 0; i < views.size(); ++i) {
            const WeightView &v = *views[i];
            at.push_back(v ? base + offsets[i] : nullptr);
            if (v) up.copy(base + offsets[i], v.data, v.info->n_bytes);
        }
        return at;
    };
    auto as_matrix = [](const WeightView &v, const void *at) {
        return v ? matrix_at(at, v.type(), v.rows(), v.cols()) : pi_bk_matrix{};
    };

    for (uint32_t l = 0; l < hp.n_layer; ++l) {
        const planner::LayerPlacement &lp = placement_.layers[l];
        DeviceLayer &D = layers_[l];
        const LayerWeights &L = w.layers[l];
        D.attention = lp.attention_on_gpu;
        D.all_neurons = lp.kind == planner::LayerKind::gpu;
        D.hot_neurons = D.attention ? lp.gpu_neurons : std::vector<uint32_t>{};
        const bool dense_down = !L.ffn_down_t;
        // Transposing the hot columns of a quantized dense ffn_down would re-quantize them (not the CPU's
        // function), so such layers keep every neuron on the CPU (less than the plan, so the budget still holds).
        if (D.attention && !D.all_neurons && dense_down && !is_float(L.ffn_down.type()) && !D.hot_neurons.empty()) {
            log_warn("layer " + std::to_string(l) + ": the hot rows of a quantized dense ffn_down cannot be transposed "
                     "exactly; its FFN stays on the CPU");
            D.hot_neurons.clear();
        }
        D.dense_ffn = D.all_neurons && dense_down && !model.is_sparse();
        if (D.all_neurons && dense_down && !D.dense_ffn && !is_float(L.ffn_down.type())) {
            log_warn("layer " + std::to_string(l) + ": sparse decode of a quantized dense ffn_down is not available on the "
                     "device; the layer runs with its FFN on the CPU");
            D.all_neurons = false;
            D.hot_neurons.clear();
        }
        D.n_hot = static_cast<uint32_t>(D.hot_neurons.size());
        {
            std::vector<bool> hot(F, false);
            for (uint32_t n : D.hot_neurons) hot[n] = true;
            for (uint32_t n = 0; n < F; ++n) {
                if (!hot[n]) D.cold_neurons.push_back(n);
            }
        }
        if (!D.attention) continue;
        const std::string name = "layer " + std::to_string(l);
        const std::vector<const WeightView *> views = {
            &L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.fc1, &L.fc2, &L.attn_norm, &L.attn_norm_b, &L.attn_norm_2,
            &L.attn_norm_2_b, &L.ffn_norm, &L.ffn_norm_b, &L.bq, &L.bk, &L.bv, &L.bo, &L.ffn_down_b};
        const std::vector<const void *> at = pack(views, name + " attention, norms and predictor");
        D.wq = as_matrix(L.wq, at[0]);
        D.wk = as_matrix(L.wk, at[1]);
        D.wv = as_matrix(L.wv, at[2]);
        D.wqkv = as_matrix(L.wqkv, at[3]);
        if (L.wq && L.wk && L.wv && L.wq.type() == L.wk.type() && L.wq.type() == L.wv.type() &&
            L.wq.cols() == L.wk.cols() && L.wq.cols() == L.wv.cols() &&
            at[1] == static_cast<const uint8_t *>(at[0]) + L.wq.info->n_bytes &&
            at[2] == static_cast<const uint8_t *>(at[1]) + L.wk.info->n_bytes) {
            D.wqkv_stacked = matrix_at(at[0], L.wq.type(), L.wq.rows() + L.wk.rows() + L.wv.rows(), L.wq.cols());
        }
        D.wo = as_matrix(L.wo, at[4]);
        D.fc1 = as_matrix(L.fc1, at[5]);
        D.fc2 = as_matrix(L.fc2, at[6]);
        const float **norms[] = {&D.attn_norm, &D.attn_norm_b, &D.attn_norm_2, &D.attn_norm_2_b, &D.ffn_norm,
                                 &D.ffn_norm_b, &D.bq, &D.bk, &D.bv, &D.bo, &D.ffn_down_b};
        for (size_t i = 0; i < 11; ++i) *norms[i] = static_cast<const float *>(at[7 + i]);

        D.hot.activation = static_cast<uint32_t>(hp.activation == FfnActivation::Silu    ? PI_BK_ACT_SILU
                                                 : hp.activation == FfnActivation::Reglu ? PI_BK_ACT_REGLU
                                                 : hp.activation == FfnActivation::Drelu ? PI_BK_ACT_DRELU
                                                                                         : PI_BK_ACT_RELU);
        if (D.n_hot == 0) continue;
        // The hot rows of each matrix, compacted in hot_neurons order: one allocation per matrix (as planned).
        auto rows = [&](const WeightView &v, const std::string &what) -> pi_bk_matrix {
            if (!v) return pi_bk_matrix{};
            const uint64_t rb = cpu::weight_row_bytes(static_cast<cpu::WeightType>(v.type()), v.cols());
            buffers_.push_back(memory_->allocate(uint64_t(D.n_hot) * rb, name + " " + what + " hot rows"));
            void *dst = buffers_.back().address();
            if (D.n_hot == v.rows()) {
                up.copy(dst, v.data, uint64_t(D.n_hot) * rb);
            } else {
                std::vector<uint8_t> &s = up.stage(uint64_t(D.n_hot) * rb);
                for (uint32_t j = 0; j < D.n_hot; ++j) std::memcpy(&s[j * rb], v.data + D.hot_neurons[j] * rb, rb);
                up.copy(dst, s.data(), s.size());
            }
            return matrix_at(dst, v.type(), D.n_hot, v.cols());
        };
        if (D.dense_ffn && L.ffn_gate && L.ffn_up && L.ffn_gate.type() == L.ffn_up.type() &&
            L.ffn_gate.cols() == L.ffn_up.cols() && L.ffn_gate.rows() == L.ffn_up.rows()) {
            // A dense layer's gate and up in one allocation, back to back: a decode step takes both in one product.
            const uint64_t bytes = L.ffn_gate.info->n_bytes;
            buffers_.push_back(memory_->allocate(2 * bytes, name + " ffn_gate and ffn_up"));
            uint8_t *dst = static_cast<uint8_t *>(buffers_.back().address());
            up.copy(dst, L.ffn_gate.data, bytes);
            up.copy(dst + bytes, L.ffn_up.data, bytes);
            D.hot.gate = matrix_at(dst, L.ffn_gate.type(), L.ffn_gate.rows(), L.ffn_gate.cols());
            D.hot.up = matrix_at(dst + bytes, L.ffn_up.type(), L.ffn_up.rows(), L.ffn_up.cols());
            D.gate_up_stacked = matrix_at(dst, L.ffn_gate.type(), 2 * L.ffn_gate.rows(), L.ffn_gate.cols());
        } else {
            D.hot.gate = rows(L.ffn_gate, "ffn_gate");
            D.hot.up = rows(L.ffn_up, "ffn_up");
        }
        if (L.ffn_up_b) {
            buffers_.push_back(memory_->allocate(uint64_t(D.n_hot) * 4, name + " ffn_up bias hot rows"));
            std::vector<uint8_t> &s = up.stage(uint64_t(D.n_hot) * 4);
            const float *b = reinterpret_cast<const float *>(L.ffn_up_b.data);
            for (uint32_t j = 0; j < D.n_hot; ++j) std::memcpy(&s[j * 4], &b[D.hot_neurons[j]], 4);
            up.copy(buffers_.back().address(), s.data(), s.size());
            D.hot.up_bias = static_cast<const float *>(buffers_.back().address());
        }
        if (!dense_down) {
            D.hot.down_t = rows(L.ffn_down_t, "ffn_down_t");
        } else if (D.dense_ffn) {
            buffers_.push_back(memory_->allocate(L.ffn_down.info->n_bytes, name + " ffn_down"));
            up.copy(buffers_.back().address(), L.ffn_down.data, L.ffn_down.info->n_bytes);
            D.down = matrix_at(buffers_.back().address(), L.ffn_down.type(), E, F);
        } else {
            // Dense ffn_down (n_embd rows of n_ff): the hot columns become down_t rows, exactly (float types).
            const uint64_t es = element_bytes(L.ffn_down.type()), rb = uint64_t(E) * es;
            buffers_.push_back(memory_->allocate(uint64_t(D.n_hot) * rb, name + " ffn_down hot columns"));
            std::vector<uint8_t> &s = up.stage(uint64_t(D.n_hot) * rb);
            for (uint32_t j = 0; j < D.n_hot; ++j) {
                for (uint32_t c = 0; c < E; ++c) {
                    std::memcpy(&s[j * rb + c * es], L.ffn_down.data + (uint64_t(c) * F + D.hot_neurons[j]) * es, es);
                }
            }
            up.copy(buffers_.back().address(), s.data(), s.size());
            D.hot.down_t = matrix_at(buffers_.back().address(), L.ffn_down.type(), D.n_hot, E);
        }
    }

    output_on_device_ = placement_.output_on_gpu;
    if (output_on_device_) {
        const WeightView &head = w.output ? w.output : w.token_embd;
        const std::vector<const void *> at = pack({&head, &w.output_norm, &w.output_norm_b}, "output head");
        output_ = matrix_at(at[0], head.type(), head.rows(), head.cols());
        output_norm_ = static_cast<const float *>(at[1]);
        output_norm_b_ = static_cast<const float *>(at[2]);
    }

    // The workspace: activations of chunk_tokens_ tokens, the slot tables of split layers and the iota list, in the
    // planned scratch. The largest chunk (at most kScratchTokens) that fits what the plan promised is taken.
    if (any_on_device()) {
        const uint32_t q_dim = hp.n_head * hp.head_dim;
        uint32_t n_split = 0;
        for (const DeviceLayer &D : layers_) n_split += D.attention && !D.all_neurons;
        auto bytes_for = [&](uint32_t T) {
            return planner::workspace_bytes(T, E, F, q_dim, kv_dim_, hp.n_vocab, hp.n_layer, n_split);
        };
        chunk_tokens_ = planner::kScratchTokens;
        while (chunk_tokens_ > 1 && bytes_for(chunk_tokens_) > objects.scratch) --chunk_tokens_;
        const uint64_t scratch_bytes =
            align_up(ScratchLayout::of(chunk_tokens_, E, F, q_dim, kv_dim_, hp.n_vocab, hp.n_layer).floats * 4, kDeviceAlignment);
        scratch_ = memory_->allocate(bytes_for(chunk_tokens_), "device workspace");
        uint8_t *base = static_cast<uint8_t *>(scratch_.address());
        uint64_t at = scratch_bytes;
        std::vector<uint8_t> &iota_bytes = up.stage(uint64_t(F) * 4);
        for (uint32_t i = 0; i < F; ++i) std::memcpy(&iota_bytes[i * 4], &i, 4);
        for (DeviceLayer &D : layers_) {
            if (!D.attention || D.all_neurons) continue;  // every split layer, also one without hot rows
            std::vector<uint8_t> &s = up.stage(uint64_t(F) * 4);
            std::vector<int32_t> slot(F, -1);
            for (uint32_t j = 0; j < D.n_hot; ++j) slot[D.hot_neurons[j]] = static_cast<int32_t>(j);
            std::memcpy(s.data(), slot.data(), s.size());
            up.copy(base + at, s.data(), s.size());
            D.slot = reinterpret_cast<const int32_t *>(base + at);
            at += uint64_t(F) * 4;
        }
        at = align_up(at, kDeviceAlignment);
        up.copy(base + at, iota_bytes.data(), iota_bytes.size());
        // counts[2l + 1] = the layer's hot row count, for dense steps over every hot row (sessions write only the
        // even entries, the predictor's counts).
        const ScratchLayout layout = ScratchLayout::of(chunk_tokens_, E, F, q_dim, kv_dim_, hp.n_vocab, hp.n_layer);
        std::vector<uint8_t> &counts = up.stage(uint64_t(hp.n_layer) * 8);
        for (uint32_t l = 0; l < hp.n_layer; ++l) {
            const uint32_t pair[2] = {0, layers_[l].n_hot};
            std::memcpy(&counts[l * 8], pair, 8);
        }
        up.copy(base + layout.counts * 4, counts.data(), counts.size());
        iota_ = reinterpret_cast<const int32_t *>(base + at);
    }
    up.finish();
    model_bytes_ = memory_->used();
    if (model_bytes_ > placement_.gpu_bytes) {
        // Only possible through tensor padding beyond the plan's slack: say so instead of silently overrunning.
        log_warn("device share " + mib(model_bytes_) + " exceeds the plan's " + mib(placement_.gpu_bytes));
    }
}

DeviceSessionKv DeviceModel::reserve_session(uint32_t n_ctx, uint32_t kv_type) const {
    std::lock_guard<std::mutex> lock(session_mutex_);
    DeviceSessionKv kv;
    // The plan counted F16 rows; an F32 cache is the F16 cache of twice the positions, byte for byte.
    const uint32_t scale = kv_type == PI_BK_KV_F32 ? 2 : 1;
    kv.ledger = reservation_->reserve_session(n_ctx * scale);
    const uint64_t half = uint64_t(n_ctx) * kv_dim_ * (kv_type == PI_BK_KV_F32 ? 4 : 2);
    try {
        kv.layers.resize(layers_.size());
        kv.k.assign(layers_.size(), nullptr);
        kv.v.assign(layers_.size(), nullptr);
        for (size_t l = 0; l < layers_.size(); ++l) {
            if (!layers_[l].attention) continue;
            kv.layers[l] = memory_->allocate(2 * half, "session KV cache, layer " + std::to_string(l));
            kv.k[l] = kv.layers[l].address();
            kv.v[l] = static_cast<uint8_t *>(kv.layers[l].address()) + half;
        }
    } catch (...) {
        kv.layers.clear();
        reservation_->release_session(kv.ledger);
        throw;
    }
    return kv;
}

void DeviceModel::release_session(DeviceSessionKv &kv) const noexcept {
    std::lock_guard<std::mutex> lock(session_mutex_);
    kv.layers.clear();
    kv.k.clear();
    kv.v.clear();
    reservation_->release_session(kv.ledger);
    kv.ledger = {};
}

}  // namespace pi
