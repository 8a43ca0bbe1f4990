#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "backends/cpu/cpu_backend.h"
#include "runtime/device_model.h"
#include "runtime/ffn_bundle.h"
#include "runtime/repacked_weights.h"
#include "runtime/transposed_predictors.h"
#include "runtime/plugin_loader.h"

namespace pi {
namespace {

void report(const LoadOptions &options, float fraction) {
    if (options.progress && !options.progress(fraction)) fail(PI_ERR_CANCELLED, "model load cancelled by the progress callback");
}

// Reads one byte per page of every tensor so the weights are resident before the first token (a predictable first
// step instead of page faults in the middle of it); this is also what makes load progress meaningful.
void prefault(const gguf::File &file, const LoadOptions &options, float from, float to) {
    uint64_t total = 0;
    for (const auto &t : file.tensors()) total += t.n_bytes;
    uint64_t done = 0;
    volatile uint8_t sink = 0;
    constexpr uint64_t kPage = 4096, kReportEvery = 64ull << 20;
    uint64_t next_report = kReportEvery;
    for (const auto &t : file.tensors()) {
        const uint8_t *data = file.tensor_data(t);
        for (uint64_t off = 0; off < t.n_bytes; off += kPage) {
            sink = sink + data[off];
            if (done + off >= next_report) {
                next_report += kReportEvery;
                report(options, from + (to - from) * float(double(done + off) / double(total)));
            }
        }
        done += t.n_bytes;
    }
    (void)sink;
}

// The backend a load runs on: "cpu" (ops == nullptr: the CPU executor alone) or a device table for the hybrid
// executor. "cpu-device" is for tests: the CPU backend's table used as the device, so that the whole hybrid path
// (plans, uploads, splits, copies, merges) runs without a GPU.
struct BackendChoice {
    std::string name = "cpu";
    const pi_backend_ops *ops = nullptr;
};

BackendChoice choose_backend(const LoadOptions &options) {
    const std::string &b = options.backend;
    if (b == "cpu") return {};
    if (b == "cpu-device") return {"cpu-device", cpu::cpu_backend_ops()};
    if (b != "auto" && b != "cuda" && b != "hip") {
        fail(PI_ERR_INVALID_ARGUMENT, "pi_model_load: backend '" + b + "' is not one of auto, cpu, cuda, hip");
    }
    if (options.vram_budget == 0) return {};  // a zero budget means CPU only, whatever was asked
    const std::vector<std::string> wanted = b == "auto" ? std::vector<std::string>{"cuda", "hip"}
                                                        : std::vector<std::string>{b};
    std::string reasons;
    for (const std::string &name : wanted) {
        ModuleProbe probe = probe_backend_module(name);
        if (!probe.found) {
            reasons += probe.why + "; ";
            continue;
        }
        char why[512] = {0};
        const int32_t n = probe.module->device_count(why, sizeof why);
        if (n > options.device) return {name, probe.module};
        reasons += probe.path + ": " + (n < 0 ? std::string(why) : "device " + std::to_string(options.device) +
                                                                      " not present (" + std::to_string(n) + " devices)") + "; ";
    }
    if (b == "auto") {
        log_info("no GPU backend used, running on the CPU (" + reasons + ")");
        return {};
    }
    fail(PI_ERR_BACKEND, "backend '" + b + "' is not available: " + reasons.substr(0, reasons.size() - 2));
}

}  // namespace

Model::Model() = default;
Model::~Model() = default;

uint64_t Model::gpu_bytes() const { return device_ ? device_->model_bytes() : 0; }

std::unique_ptr<Model> Model::load(const std::string &path, const LoadOptions &options) {
    if (options.n_threads < 0) fail(PI_ERR_INVALID_ARGUMENT, "pi_model_load: n_threads must be >= 0");
    std::unique_ptr<Model> model(new Model());
    const BackendChoice backend = choose_backend(options);
    model->backend_ = backend.name;
    report(options, 0.0f);

    gguf::OpenOptions open_options;
    open_options.use_mmap = options.use_mmap;
    open_options.populate = true;  // decode touches rows at random: map them now, not one fault at a time
    model->file_ = gguf::File::open(path, open_options);
    report(options, 0.05f);

    const gguf::File &file = *model->file_;
    model->hparams_ = HParams::from_gguf(file);
    model->tokenizer_ = Tokenizer::create(Vocabulary::from_gguf(file));
    model->weights_ = ModelWeights::bind(file, model->hparams_);
    HParams &hp = model->hparams_;
    hp.n_vocab = static_cast<uint32_t>(model->weights_.token_embd.rows());
    if (hp.n_vocab != model->tokenizer_->n_vocab()) {
        fail(PI_ERR_FORMAT, "tensor 'token_embd.weight' has " + std::to_string(hp.n_vocab) +
                                " rows but the tokenizer has " + std::to_string(model->tokenizer_->n_vocab()) +
                                " tokens");
    }
    // DESIGN §5: a llama file without our key is ReLU-family when it comes from PowerInfer (magic or predictors).
    if (!hp.activation_from_file && hp.arch == Arch::Llama && (file.is_pwri() || model->weights_.has_predictors)) {
        hp.activation = FfnActivation::Reglu;
    }
    if (model->weights_.has_predictors && !activation_is_relu_family(hp.activation)) {
        fail(PI_ERR_FORMAT, "the file has activation predictors but its FFN activation is silu");
    }
    report(options, 0.1f);

    model->name_ = file.get_string_or("general.name", "");
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    model->n_threads_ = options.n_threads > 0 ? options.n_threads : static_cast<int32_t>(cores);
    model->sparse_threshold_ = std::isnan(options.sparse_threshold) ? model->hparams_.sparse_threshold : options.sparse_threshold;
    const bool bundles = FfnBundles::wanted(*model);
    prefault(file, options, 0.1f, backend.ops || bundles ? 0.8f : 1.0f);
    if (backend.ops) {
        DeviceModelOptions d;
        d.budget_bytes = options.vram_budget;
        d.plan = options.plan;
        d.cost = options.cost;
        d.n_threads = model->n_threads_;
        d.device = options.device;
        if (const char *forced = std::getenv("PI_TEST_PLAN")) d.forced_plan = forced;  // tests (docs/HYBRID.md)
        model->device_ = DeviceModel::create(*model, backend.ops, d);
        log_info("model placed on " + backend.name + ": " + std::to_string(model->device_->model_bytes()) +
                 " bytes on the device");
    }
    // Q4_0 rows the CPU's AVX-512 dots read are repacked (Q4_0R): in the bundles, and for the CPU executor every
    // other such matrix; Q4_0 and F16 matrices that decode reads whole are interleaved (Q4_0X8, F16X8) for the CPU
    // executor (runtime/repacked_weights.h).
    const bool repack = RepackedMatrices::wanted();
    // FFN bundles for the layers whose FFN the CPU computes (every layer for the CPU executor; split and CPU layers
    // for the hybrid, whose device upload above read the file's rows first).
    if (bundles) {
        std::vector<bool> host_ffn(model->hparams_.n_layer, false);
        bool any = false;
        for (uint32_t l = 0; l < model->hparams_.n_layer; ++l) {
            any |= host_ffn[l] = !model->device_ || !model->device_->layer(l).all_neurons;
        }
        if (any) {
            auto built = std::make_shared<const FfnBundles>(*model, &host_ffn, repack);
            if (built->n_bundled() > 0) model->ffn_bundles_ = std::move(built);
        }
    }
    RepackedMatrices::Layouts layouts;
    layouts.q4_0r = repack;
    layouts.q4_0x8 = RepackedMatrices::q4_interleave_wanted();
    layouts.f16x8 = RepackedMatrices::f16_wanted();
    if ((layouts.q4_0r || layouts.q4_0x8 || layouts.f16x8) && !model->device_) {
        std::vector<bool> bundled(model->hparams_.n_layer, false);
        for (uint32_t l = 0; l < model->hparams_.n_layer; ++l) {
            bundled[l] = model->ffn_bundles_ && model->ffn_bundles_->layer(l) != nullptr;
        }
        auto built = std::make_shared<const RepackedMatrices>(*model, bundled, layouts);
        if (built->n_matrices() > 0) model->repacked_ = std::move(built);
    }
    if (model->is_sparse() && !model->device_ && TransposedPredictors::wanted()) {
        auto built = std::make_shared<const TransposedPredictors>(*model);
        if (built->n_layers() > 0) model->transposed_predictors_ = std::move(built);
    }
    report(options, 1.0f);
    return model;
}

}  // namespace pi
