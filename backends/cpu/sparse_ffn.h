// The sparse FFN of one decode token on the CPU (DESIGN §5): only the neurons of an active list are computed.
//
// For neuron r:  g = gate[r] . x,  u = up[r] . x + up_bias[r],  a = act(g, u)  with
//   Silu   silu(g) * u = g / (1 + exp(-g)) * u        (never skips; the dense llama FFN through the sparse path)
//   Reglu  g > 0 ? g * u : 0                          (relu-llama, prosparse)
//   Drelu  g > 0 && u > 0 ? g * u : 0                 (bamboo)
//   Relu   u > 0 ? u : 0, no gate                     (falcon, opt)
// and the FFN output is y += sum over the list of a * down_t[r] (down_t: the down projection transposed, one row of
// n_embd per neuron). The comparisons are written so that a NaN gate or up gives 0, not NaN; a 0 gate gives 0 even
// when u is inf.
//
// Memory traffic, per active neuron: its gate row; its up row only when the gate leaves a non-zero possible (for
// Reglu/Drelu a gate <= 0 makes a = 0 whatever u is, so the up row is not read); its down_t row only when a != 0.
// A neuron with a == 0 (either sign) never has its down row read, so such a row may hold inf or NaN.
//
// Work split (sparse_ffn): the list is cut into n_chunks contiguous chunks, n_chunks a function of the list length,
// the pool's thread count and the row sizes only (see chunk_count in sparse_ffn.cpp: about 4 per thread, none under
// ~128 KiB of weights). Threads take chunks in order from a shared counter; a chunk runs its gate dots, up dots,
// activations and down rows (KernelTable::axpy_rows over all n_embd columns) into that chunk's own partial sum, in
// ONE pass over its rows. Then y[c] = y[c] + (((p_0[c] + p_1[c]) + p_2[c]) + ...), chunks in list order.
//
// Determinism: every dot is computed by dot_rows, whose result depends only on the row, x, the weight type and the
// ISA level (matvec.h); a chunk's partial is its axpy terms added in list order (bit-identical on every level);
// partials are reduced in chunk order. So y depends on the list (its order included), the weights, x, the ISA level
// (through the dots only) and the chunk boundaries, which depend on (n, pool size, weight types and widths) — not on
// which thread ran which chunk or on timing. The same call with the same pool size gives the same bits every time.
// A different pool size may change the last bits of y (not a).
//
// Lists may be unsorted and may repeat a neuron (its term is then added again); sorted lists read memory in order
// and are faster. Bad shapes, missing inputs or an index >= the neuron count throw
// pi::Error(PI_ERR_INVALID_ARGUMENT) before any work; a level the CPU lacks, PI_ERR_UNSUPPORTED.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/cpu_features.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/weight_type.h"

namespace pi::cpu {

// Same numbers as pi_bk_activation in backends/backend.h.
enum class FfnActivation : uint32_t { Silu = 0, Reglu = 1, Drelu = 2, Relu = 3 };

// One layer's FFN, row r of every matrix (and up_bias[r]) belonging to neuron r.
struct SparseFfnWeights {
    WeightMatrix gate;                // n_ff x n_embd; ignored (may be empty) for Relu
    WeightMatrix up;                  // n_ff x n_embd
    WeightMatrix down_t;              // n_ff x n_out (n_out: usually n_embd); may be empty for ffn_activations_rows
    const float *up_bias = nullptr;   // n_ff values, or nullptr
    FfnActivation activation = FfnActivation::Reglu;
};

// Reusable buffers of sparse_ffn / ffn_activations_rows, so that decode does not allocate per call once they have
// grown to the largest list and pool seen. One scratch per caller thread (per session); not shareable between
// concurrent calls.
class SparseFfnScratch {
public:
    SparseFfnScratch() = default;
    SparseFfnScratch(const SparseFfnScratch &) = delete;
    SparseFfnScratch &operator=(const SparseFfnScratch &) = delete;

    // Rows a call read from each matrix: gate rows of every listed neuron, up rows of the neurons the gate left
    // alive, down rows of those with a != 0 (the roofline counts what a step reads, not what it was offered).
    struct RowsRead {
        uint64_t gate = 0, up = 0, down = 0;
    };
    // Per-thread buffers of one chunk (each its own 64-byte aligned allocations: no false sharing).
    struct Thread {
        AlignedBuffer<float> up;          // up dots of the chunk's surviving neurons
        AlignedBuffer<float> a;           // activations of the chunk (sparse_ffn; ffn_activations_rows writes out)
        AlignedBuffer<uint32_t> rows;     // surviving neurons, then the neurons with a != 0
        AlignedBuffer<uint32_t> pos;      // their positions in the chunk
        AlignedBuffer<float> coeff;       // a of the neurons with a != 0, in list order
        RowsRead read;                    // this thread's rows of the current call
    };
    std::vector<Thread> threads;
    AlignedBuffer<float> partials;  // [n_chunks][partial_ld]
    RowsRead last_read;             // the last sparse_ffn / ffn_activations_rows call's rows, all threads together
};

// a[j] = act(gate[rows[j]] . x, up[rows[j]] . x + up_bias[rows[j]]) for j < n: the gate/up half alone, for files
// whose down matrix is in the dense ffn_down layout (the caller scatters a into a zero vector and runs a dense down
// matvec). Each a[j] depends only on its neuron, x and the ISA level (not on the list or the thread count).
// Differs from the brief's first sketch by the scratch argument (no allocation per call).
void ffn_activations_rows(const SparseFfnWeights &w, const MatvecInput &x, const uint32_t *rows, size_t n, float *a,
                          ThreadPool *pool, IsaLevel isa, SparseFfnScratch &scratch);

// y[c] += sum over j < n of a_j * down_t[rows[j]][c] for c < down_t.n_cols, a_j as in ffn_activations_rows, terms
// with a_j == 0 skipped (their down rows never read). See the top of this file for the split and determinism.
// pool == nullptr runs on the calling thread.
void sparse_ffn(const SparseFfnWeights &w, const MatvecInput &x, const uint32_t *rows, size_t n, float *y,
                ThreadPool *pool, IsaLevel isa, SparseFfnScratch &scratch);

}  // namespace pi::cpu
