// pi_model_* entry points.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <thread>

#include "api/c_api_placement.h"
#include "api/guard.h"
#include "api/handles.h"
#include "api/struct_io.h"
#include "backends/cpu/bandwidth.h"

using pi::api::guarded;
using pi::api::require;

namespace {

// The first published sizes: no valid caller has a smaller struct (docs/API_GUIDELINES.md).
constexpr size_t kModelParamsV1Size = offsetof(pi_model_params, sparse_threshold);
static_assert(kModelParamsV1Size == 56, "the published prefix of pi_model_params must never change");
constexpr size_t kModelInfoV1Size = offsetof(pi_model_info, ffn_activation) + sizeof(const char *);

pi_model_params default_model_params() {
    pi_model_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.backend = "auto";
    p.device = 0;
    p.vram_budget = PI_VRAM_BUDGET_AUTO;
    p.n_threads = 0;
    p.use_mmap = 1;
    p.sparse_threshold = std::numeric_limits<float>::quiet_NaN();  // the file's
    p.plan_n_ctx = 2048;  // the planner's fields (cost_* stay 0: measure or default); see c_api_placement.h
    p.plan_n_sessions = 1;
    p.neuron_group = 32;
    return p;
}

}  // namespace

extern "C" {

PI_API void pi_model_params_init_sized(pi_model_params *params, size_t size) {
    const pi_model_params defaults = default_model_params();
    pi::api::init_versioned(params, size, &defaults, sizeof defaults);
}

PI_API void(pi_model_params_init)(pi_model_params *params) { pi_model_params_init_sized(params, kModelParamsV1Size); }

PI_API pi_status pi_model_load(const char *path, const pi_model_params *params, pi_model **out) {
    return guarded([&] {
        require(path != nullptr, "pi_model_load", "path is NULL");
        require(out != nullptr, "pi_model_load", "out is NULL");
        require(path[0] != '\0', "pi_model_load", "path is empty");
        const pi_model_params p =
            pi::api::read_params(params, default_model_params(), kModelParamsV1Size, "pi_model_load", "pi_model_params");
        require(p.n_threads >= 0, "pi_model_load", "n_threads must be >= 0 (0 = one per core)");
        require(p.device >= 0, "pi_model_load", "device must be >= 0");
        pi::api::check_plan_params(p, "pi_model_load");
        pi::LoadOptions options;
        options.backend = p.backend ? p.backend : "auto";
        options.device = p.device;
        options.vram_budget = p.vram_budget;
        options.n_threads = p.n_threads;
        options.use_mmap = p.use_mmap != 0;
        options.sparse_threshold = p.sparse_threshold;
        options.plan = pi::api::plan_options(p, 0);  // budget_bytes unused: vram_budget decides (model.h)
        options.cost = pi::api::cost_overrides(p);
        if (p.progress) {
            options.progress = [fn = p.progress, user = p.progress_user_data](float f) { return fn(f, user) == 0; };
        }
        auto handle = std::make_unique<pi_model>();
        handle->model = pi::Model::load(path, options);
        *out = handle.release();
    });
}

PI_API void pi_model_free(pi_model *model) { delete model; }

PI_API void pi_model_info_init_sized(pi_model_info *info, size_t size) {
    pi_model_info zero;
    std::memset(&zero, 0, sizeof zero);
    pi::api::init_versioned(info, size, &zero, sizeof zero);
}

// 0.1.0's pi_model_info ended with decode_weight_bytes: 96 bytes.
PI_API void(pi_model_info_init)(pi_model_info *info) {
    pi_model_info_init_sized(info, offsetof(pi_model_info, ffn_weight_bytes));
}

PI_API pi_status pi_model_get_info(const pi_model *model, pi_model_info *out) {
    return guarded([&] {
        require(model != nullptr, "pi_model_get_info", "model is NULL");
        require(out != nullptr, "pi_model_get_info", "out is NULL");
        const pi::Model &m = *model->model;
        const pi::HParams &hp = m.hparams();
        pi_model_info info;
        std::memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        info.arch = hp.arch_name.c_str();
        info.name = m.name().c_str();
        info.n_vocab = hp.n_vocab;
        info.n_ctx_train = hp.n_ctx_train;
        info.n_embd = hp.n_embd;
        info.n_layer = hp.n_layer;
        info.n_ff = hp.n_ff;
        info.n_head = hp.n_head;
        info.n_head_kv = hp.n_head_kv;
        info.is_sparse = m.is_sparse() ? 1 : 0;
        info.n_params = m.weights().n_params;
        info.file_bytes = m.weights().n_bytes;
        info.gpu_bytes = m.gpu_bytes();
        info.ffn_activation = pi::activation_name(hp.activation);
        info.decode_weight_bytes = m.weights().decode_bytes;
        info.ffn_weight_bytes = m.weights().ffn_bytes;
        info.predictor_weight_bytes = m.weights().predictor_bytes;
        pi::api::write_versioned(out, &info, sizeof info, kModelInfoV1Size, "pi_model_get_info", "pi_model_info");
    });
}

PI_API pi_status pi_measure_memory_bandwidth(int32_t n_threads, double *gb_per_s) {
    return guarded([&] {
        require(gb_per_s != nullptr, "pi_measure_memory_bandwidth", "gb_per_s is NULL");
        require(n_threads >= 0, "pi_measure_memory_bandwidth", "n_threads must be >= 0 (0 = one per core)");
        const int threads = n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        *gb_per_s = pi::cpu::measure_read_bandwidth(threads);
    });
}

}  // extern "C"
