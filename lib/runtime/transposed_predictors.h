// Transposed copies of the predictors' second matrices (fc2: n_ff x width) for the CPU executor, so that a decode
// step's predictor reads only the fc2 rows of hidden units ReLU left nonzero (backends/cpu/predictor.h): fc2_t row j
// is fc2's column j. On bench-7b F16 half of the 1024 hidden units are zero per token, and fc2 (22.5 MB a layer) was
// a fifth of a sparse step at 20 GB/s (docs/PERFORMANCE.md, 2026-11-27 (third)).
//
// Float fc2 only (F32/F16/BF16: transposing moves values without changing them); a quantized fc2 keeps its row dots,
// whose 8-bit rounding of z runs along the rows. Built once at load (Model::load) and kept until the model is freed,
// in huge pages like the FFN bundles, after which the file mapping's pages of each fc2 are released (an mmap'ed
// model is not held twice; one read into anonymous memory keeps both).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "backends/cpu/weight_type.h"

namespace pi {

class Model;
class HugePageBuffer;

class TransposedPredictors {
public:
    // Whether a CPU-executor model gets the copies: PI_PRED_TRANSPOSE=0 never (tests: the row-dot path); default on.
    static bool wanted();

    // Copies every layer's float fc2 transposed (logged at info level).
    explicit TransposedPredictors(const Model &model);
    ~TransposedPredictors();

    // Layer l's fc2 transposed, or nullptr (no predictor, or a quantized one).
    const cpu::WeightMatrix *fc2_t(size_t layer) const;
    size_t n_layers() const { return n_copied_; }

private:
    std::unique_ptr<HugePageBuffer> memory_;
    std::vector<cpu::WeightMatrix> fc2_t_;  // per layer; data == nullptr where not copied
    size_t n_copied_ = 0;
};

}  // namespace pi
