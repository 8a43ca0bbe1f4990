// FFN bundles: a layer's gate, up and down_t rows of neuron i copied next to each other (gate_i | up_i | down_t_i)
// into anonymous memory with transparent huge pages, for the CPU executor's sparse decode.
//
// Why: a sparse step reads ~12 % of each layer's neurons at random. In the file layout the three rows of a neuron
// lie in three tensors hundreds of MiB apart, so every active neuron costs three scattered 4 KiB-page streams (and
// their TLB misses); bundled, they are one stride of 3 rows inside a 2 MiB page. The matrices stay ordinary strided
// views (WeightMatrix::row_stride), so matvec, the GEMMs (oneDNN panels too) and the sparse kernels read them
// unchanged, prefill included; Q4_0 gate and up rows may be written as Q4_0R (the AVX-512 dots' layout, same
// results; runtime/repacked_weights.h says when).
//
// Memory: after copying a layer, the file mapping's pages of its three tensors are released (MADV_DONTNEED on their
// page-aligned interior), so the process does not hold the FFN twice; the model's WeightViews still point into the
// mapping and a later read there re-faults from the page cache (correct, slow: the CPU executor never reads them).
// Layer by layer, so the peak stays one layer above the file. Only pages of a file-backed mapping are released: a
// model read into anonymous memory (no mmap) would lose its data, so its FFN is kept (and held twice).
//
// The bundles are built once at load (Model::load) and shared by all the model's sessions; see
// FfnBundles::wanted for when (PI_FFN_BUNDLE=0/1 overrides, for measurements and tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/cpu/weight_type.h"

namespace pi {

class Model;
class HugePageBuffer;

// Releases the pages of [data, data + bytes) that lie wholly inside it, when the range lies in one file-backed
// mapping; otherwise does nothing. Returns the bytes released.
size_t release_file_pages(const void *data, size_t bytes);

// One layer's bundled rows: an anonymous mapping owning n rows of stride() bytes, each gate | up | down_t (each part
// padded to 64 bytes, so rows start on cache lines).
class FfnBundle {
public:
    // Whether three matrices can be bundled: same type, same number of rows, same row size, none empty.
    static bool eligible(const cpu::WeightMatrix &gate, const cpu::WeightMatrix &up, const cpu::WeightMatrix &down_t);
    // Copies the three matrices (which must be eligible); with repack_q4_0, Q4_0 gate and up rows are written as
    // Q4_0R (the AVX-512 dots' layout; down_t stays Q4_0). Throws pi::Error(PI_ERR_OUT_OF_MEMORY) when the memory
    // cannot be mapped, PI_ERR_INVALID_ARGUMENT when they are not eligible.
    FfnBundle(const cpu::WeightMatrix &gate, const cpu::WeightMatrix &up, const cpu::WeightMatrix &down_t,
              bool repack_q4_0 = false);
    ~FfnBundle();
    FfnBundle(const FfnBundle &) = delete;
    FfnBundle &operator=(const FfnBundle &) = delete;

    // The views of the copies: the source matrices' shapes, row_stride = stride().
    const cpu::WeightMatrix &gate() const { return gate_; }
    const cpu::WeightMatrix &up() const { return up_; }
    const cpu::WeightMatrix &down_t() const { return down_t_; }
    size_t stride() const { return gate_.row_stride; }
    size_t mapped_bytes() const;

private:
    std::unique_ptr<HugePageBuffer> memory_;
    cpu::WeightMatrix gate_, up_, down_t_;
};

// The bundles of a model's layers (nullptr for a layer that is not eligible).
class FfnBundles {
public:
    // Whether a model gets bundles (the CPU executor: every layer; the hybrid executor: the layers whose FFN the CPU
    // takes part in): PI_FFN_BUNDLE=0 never, =1 always; unset, when its FFN is quantized (Q8_0/Q4_0). Float FFNs are
    // off by default: the copy is 3-4x larger (bench-7b F16: 8.6 GB, 15-17 s at load on the 2-core development VM,
    // against 4-6 s for Q4_0; +2-2.5 s on the GPU machine) for a gain measured at ~11 % on the CPU executor and
    // within the host's noise on the hybrid (bench-7b F16 at 8 GiB on the H100: 157.6 / 152.8 / 134.4 / 137.7 tok/s
    // with them, 151.8 / 138.3 / 148.7 without; on a steadier host, 2026-11-27: 147.0 / 146.3 / 149.1 / 146.6 against
    // 143.0 / 141.8 / 147.7 / 143.1, +2-4 %), and F16 sparse decode on the CPU was already at 90 % of its roofline.
    static bool wanted(const Model &model);

    // Builds the bundles of a model's eligible layers (copying and releasing layer by layer, logged at info level),
    // or only of those with `only[l]` set when `only` is given (the hybrid executor: the layers whose FFN the CPU
    // takes part in). The model keeps them (Model::ffn_bundles) from load to free.
    // repack_q4_0: see FfnBundle.
    explicit FfnBundles(const Model &model, const std::vector<bool> *only = nullptr, bool repack_q4_0 = false);

    const FfnBundle *layer(size_t l) const { return l < layers_.size() ? layers_[l].get() : nullptr; }
    size_t n_bundled() const;

private:
    std::vector<std::unique_ptr<FfnBundle>> layers_;
};

}  // namespace pi
