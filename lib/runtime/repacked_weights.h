// Copies of a model's matrices in the AVX-512 dot kernels' own layouts, for the CPU executor:
// - Q4_0R (backends/cpu/q4_0_repack.h) of the Q4_0 matrices it multiplies with dot kernels: attention, predictors,
//   the output head, and the FFN matrices of layers without FFN bundles (which repack their own gate and up rows).
//   The AVX-512 dots read Q4_0R ~1.4x faster with the rows in cache: on the 2-core development VM a Q4_0 prompt
//   (whose fallback GEMM runs these dots) got 15-28 % faster, while decode, bound by memory, did not change
//   (docs/PERFORMANCE.md, 2026-11-27).
// - F16X8 (backends/cpu/f16_interleave.h) of the F16 matrices that decode reads whole through dot kernels and never
//   by row lists: attention (q, k, v, q|k|v, o), the predictors' fc1 and the output head. Eight rows interleaved are
//   one stream for the hardware prefetcher: a sparse F16 decode step, 73 % attention bytes, got faster
//   (docs/PERFORMANCE.md 2026-11-27 (fifth)). The FFN matrices stay as they are (the sparse FFN reads row lists).
// - Q4_0X8 (backends/cpu/q4_0_interleave.h) instead of Q4_0R for the Q4_0 matrices that decode reads whole: the same
//   list as F16X8 plus a quantized predictor's fc2 (a whole matvec; only float fc2 is read transposed), where
//   n_rows % 8 == 0. One stream per eight rows instead of sixteen: sparse Q4_0 decode 17-18 -> 21-23 tok/s on the
//   development VM (docs/PERFORMANCE.md 2026-11-27 (seventh)). PI_Q4_REPACK and PI_Q4_INTERLEAVE switch the two
//   Q4_0 layouts independently.
// Results are bit for bit those of the file's layout.
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
    // Whether a CPU-executor model gets the Q4_0R copies: PI_Q4_REPACK=0 never, =1 always (tests: the unpacking paths
    // of the other levels); unset, when the CPU runs the AVX-512 kernels, the only ones that read Q4_0R natively.
    static bool wanted();
    // The same for the F16X8 copies, switched by PI_F16_INTERLEAVE.
    static bool f16_wanted();
    // The same for the Q4_0X8 copies, switched by PI_Q4_INTERLEAVE.
    static bool q4_interleave_wanted();

    // Which copies to make.
    struct Layouts {
        bool q4_0r = true;    // Q4_0 dot matrices as Q4_0R
        bool q4_0x8 = false;  // Q4_0 matrices that decode reads whole as Q4_0X8 (where they fit; else Q4_0R if q4_0r)
        bool f16x8 = false;   // F16 matrices that decode reads whole as F16X8
    };

    // Copies the model's eligible matrices in `layouts`, logged at info level; `skip_ffn_of[l]` set: layer l's gate
    // and up rows are in an FFN bundle already.
    RepackedMatrices(const Model &model, const std::vector<bool> &skip_ffn_of, const Layouts &layouts);
    ~RepackedMatrices();

    // The Q4_0R, Q4_0X8 or F16X8 view of the matrix whose data begins at `data`, or nullptr.
    const cpu::WeightMatrix *find(const void *data) const;
    size_t n_matrices() const { return views_.size(); }

private:
    std::unique_ptr<HugePageBuffer> memory_;
    std::map<const void *, cpu::WeightMatrix> views_;
};

}  // namespace pi
