// A loaded model: the mapped file, its hyper-parameters, bound weights and tokenizer. Immutable after load, so
// any number of sessions and threads may share it.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>

#include "gguf/gguf_file.h"
#include "model/hparams.h"
#include "model/model_weights.h"
#include "planner/cost_cache.h"
#include "planner/model_problem.h"
#include "tokenizer/tokenizer.h"

namespace pi {

class DeviceModel;
class FfnBundles;
class RepackedMatrices;
class TransposedPredictors;

struct LoadOptions {
    std::string backend = "auto";  // auto | cpu | cuda | hip
    int32_t device = 0;
    uint64_t vram_budget = UINT64_MAX;
    int32_t n_threads = 0;  // 0 = one per core
    bool use_mmap = true;
    float sparse_threshold = std::numeric_limits<float>::quiet_NaN();  // NaN: the file's powerinfer.sparse_threshold
    // Called with a fraction in [0, 1]; returning false cancels the load (PI_ERR_CANCELLED).
    std::function<bool(float)> progress;
    // The placement planner's options and cost overrides (pi_model_params.plan_* / cost_*); plan.budget_bytes is
    // ignored: vram_budget decides.
    planner::ModelPlanOptions plan;
    planner::CostOverrides cost;
};

class Model {
public:
    // Throws pi::Error (PI_ERR_IO, PI_ERR_FORMAT, PI_ERR_UNSUPPORTED, PI_ERR_BACKEND, PI_ERR_CANCELLED, ...).
    static std::unique_ptr<Model> load(const std::string &path, const LoadOptions &options);

    const gguf::File &file() const { return *file_; }
    const HParams &hparams() const { return hparams_; }
    const ModelWeights &weights() const { return weights_; }
    const Tokenizer &tokenizer() const { return *tokenizer_; }
    const std::string &name() const { return name_; }
    const std::string &backend() const { return backend_; }
    int32_t n_threads() const { return n_threads_; }
    bool is_sparse() const { return weights_.has_predictors; }
    // The predictor threshold sessions use by default (load option, else the file's, else 0).
    float sparse_threshold() const { return sparse_threshold_; }
    // Device memory the model's share takes (0 when it runs on the CPU alone).
    uint64_t gpu_bytes() const;
    // The device share and placement, or nullptr when the model runs on the CPU alone.
    const DeviceModel *device() const { return device_.get(); }
    // The FFN rows of neuron i side by side in huge pages (runtime/ffn_bundle.h), built at load for the CPU executor
    // when FfnBundles::wanted; nullptr otherwise.
    const std::shared_ptr<const FfnBundles> &ffn_bundles() const { return ffn_bundles_; }
    // Q4_0R, Q4_0X8 and F16X8 copies of the matrices the CPU executor multiplies by dot kernels
    // (runtime/repacked_weights.h), built at load for the CPU executor when their switches want them; nullptr
    // otherwise.
    const std::shared_ptr<const RepackedMatrices> &repacked() const { return repacked_; }
    // Each layer's float fc2 transposed (runtime/transposed_predictors.h), built at load for the CPU executor of a
    // sparse model when TransposedPredictors::wanted; nullptr otherwise.
    const std::shared_ptr<const TransposedPredictors> &transposed_predictors() const { return transposed_predictors_; }

    ~Model();

private:
    Model();

    std::unique_ptr<gguf::File> file_;
    HParams hparams_;
    ModelWeights weights_;
    std::unique_ptr<Tokenizer> tokenizer_;
    std::string name_;
    std::string backend_;
    int32_t n_threads_ = 1;
    float sparse_threshold_ = 0.0f;
    std::shared_ptr<const FfnBundles> ffn_bundles_;
    std::shared_ptr<const RepackedMatrices> repacked_;
    std::shared_ptr<const TransposedPredictors> transposed_predictors_;
    std::unique_ptr<DeviceModel> device_;  // destroyed first: it refers to the weights
};

}  // namespace pi
