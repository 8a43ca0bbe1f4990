// Q4_0R copies (backends/cpu/q4_0_repack.h) of a model's Q4_0 matrices that the CPU executor multiplies with dot
// kernels: attention, predictors, the output head, and the FFN matrices of layers without FFN bundles (which
// repack their own gate and up rows). The AVX-512 dots read Q4_0R ~1.4x faster with the rows in cache: on the
// 2-core development VM a Q4_0 prompt (whose fallback GEMM runs these dots) got 15-28 % faster, while decode, bound
// by memory, did not change (docs/PERFORMANCE.md, 2026-11-27). Results are bit for bit the Q4_0 ones.
//
// Built once at load for the CPU executor (Model::load) and kept until the model is freed. Like the FFN bundles,
// each matrix is copied into huge pages and the file mapping's pages of the original are then released, so an
// mmap'ed model is not held twice; a model read into anonymous memory (no mmap) keeps both.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <vector>

#include "backends/cpu/weight_type.h"

namespace pi {

class Model;
class HugePageBuffer;

class RepackedMatrices {
public:
    // Whether a CPU-executor model gets the copies: PI_Q4_REPACK=0 never, =1 always (tests: the unpacking paths of
    // the other levels); unset, when the CPU runs the AVX-512 kernels, the only ones that read Q4_0R natively.
    static bool wanted();

    // Copies the model's eligible Q4_0 matrices (logged at info level); `skip_ffn_of[l]` set: layer l's gate and up
    // rows are in an FFN bundle already.
    RepackedMatrices(const Model &model, const std::vector<bool> &skip_ffn_of);
    ~RepackedMatrices();

    // The Q4_0R view of the Q4_0 matrix whose data begins at `data`, or nullptr.
    const cpu::WeightMatrix *find(const void *data) const;
    size_t n_matrices() const { return views_.size(); }

private:
    std::unique_ptr<HugePageBuffer> memory_;
    std::map<const void *, cpu::WeightMatrix> views_;
};

}  // namespace pi
