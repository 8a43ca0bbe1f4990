// Prefill matrix products: Y (n_tokens x n_out) = X (n_tokens x n_in, binary32) . W^T for a WeightMatrix W
// (n_out rows of n_in, any supported type).
//
// With oneDNN (CMake option PI_ONEDNN, default ON), W is cut into panels of rows; each thread of the pool takes a
// fixed range of panels and, per panel, converts it when needed and runs a single-threaded oneDNN matmul (so the
// process has one set of threads, ours, and no OpenMP team spins against the decode pool). oneDNN 2.6 multiplies
// f32 and bf16 only on these CPUs:
//   GemmPrecision::F32:  W converted exactly to f32 (F16, BF16, Q8_0 and Q4_0 are exact in f32); X as given.
//                        F32 weights are used in place.
//   GemmPrecision::BF16: X and W rounded to bf16 (round-to-nearest-even, 8-bit significand), products accumulated
//                        in f32: about 1.9x the f32 speed here. Relative L2 error of Y against the f32 product,
//                        measured on random data with 4096 inputs: 2.4e-3 (1.7e-3 for BF16 weights, where only X is
//                        rounded). That is above the engine's 2e-3 tolerance on logits for a single product, so F32
//                        is the default and BF16 an opt-in speed mode. BF16 weights are used in place.
// Without oneDNN (or GemmOptions::use_onednn false) a blocked product over the matvec kernels runs instead: row
// panels stay in cache while every token passes over them, so W is read from memory once. It computes in f32 like
// the decode path (Q8_0/Q4_0 with the Q8Activation rounding of each token: prefill and decode then give identical
// results), and ignores a BF16 request.
//
// Converted panels can be kept between calls (GemmOptions::cache_bytes): that saves the conversion (a pass over W
// in cache, a few % to ~20% of a prefill) at 2 (bf16) or 4 (f32) bytes per weight of extra memory, more than the
// quantized weights themselves, so it is off by default and only worth it for small models with frequent prefills.
//
// Results are deterministic for a fixed thread count (fixed panel assignment, single-threaded oneDNN calls) and,
// since every output element is computed within one panel, do not depend on the thread count either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/weight_type.h"

namespace pi::cpu {

enum class GemmPrecision { F32, BF16 };

struct GemmOptions {
    bool use_onednn = true;             // false: always the blocked fallback (tests compare the two)
    size_t cache_bytes = 0;             // converted panels kept between calls, at most this many bytes in total
    IsaLevel isa = active_isa_level();  // for the conversions and the fallback kernels
};

// Whether this build has oneDNN.
bool gemm_onednn_compiled();

class Gemm {
public:
    // pool == nullptr runs on the calling thread. Neither is owned.
    explicit Gemm(ThreadPool *pool, const GemmOptions &options = {});
    ~Gemm();
    Gemm(const Gemm &) = delete;
    Gemm &operator=(const Gemm &) = delete;

    // y[t * ldy + o] = sum_i x[t * ldx + i] * W[o][i] for t < n_tokens, o < W.n_rows. ldx >= W.n_cols,
    // ldy >= W.n_rows. Throws pi::Error: PI_ERR_INVALID_ARGUMENT for bad shapes, PI_ERR_BACKEND if oneDNN fails.
    // One call at a time per Gemm.
    void multiply(const WeightMatrix &w, const float *x, size_t n_tokens, size_t ldx, float *y, size_t ldy,
                  GemmPrecision precision = GemmPrecision::F32);

    // Whether multiply() uses oneDNN (compiled in, available, and not disabled by the options).
    bool uses_onednn() const;

    // Bytes held by the converted-panel cache.
    size_t cached_bytes() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pi::cpu
