#include "backends/cpu/gemm_fallback.h"

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail {
namespace {

// Rows per tile: about 128 KiB of weights, so a tile stays in L2 while all tokens use it.
size_t tile_rows(const WeightMatrix &w) {
    const size_t row_bytes = weight_row_bytes(w.type, w.n_cols);
    size_t rows = row_bytes ? (128u * 1024u) / row_bytes : 64;
    if (rows < 1) rows = 1;
    if (rows > 64) rows = 64;
    // Whole groups of the interleaved layouts (F16X8, Q4_0X8), whose partial groups are read row by row.
    const size_t group = weight_type_group_rows(w.type);
    if (rows > group) rows -= rows % group;
    return rows;
}

}  // namespace

void gemm_fallback(const WeightMatrix &w, const float *x, size_t m, size_t ldx, float *y, size_t ldy, ThreadPool *pool,
                   IsaLevel isa, std::vector<Q8Activation> &xq) {
    const KernelTable &k = kernels(isa);
    const bool quantized = weight_type_is_quantized(w.type);
    if (quantized) {
        if (xq.size() < m) xq.resize(m);
        auto quantize = [&](size_t t, int) { xq[t].quantize(x + t * ldx, w.n_cols, isa); };
        if (pool)
            pool->parallel_for(m, quantize);
        else
            for (size_t t = 0; t < m; ++t) quantize(t, 0);
    }
    const size_t rows = tile_rows(w);
    const size_t n_tiles = (w.n_rows + rows - 1) / rows;
    auto tile = [&](size_t i, int) {
        const size_t r0 = i * rows;
        const size_t n = r0 + rows <= w.n_rows ? rows : w.n_rows - r0;
        for (size_t t = 0; t < m; ++t) {
            k.dot_rows(w, x + t * ldx, quantized ? &xq[t] : nullptr, nullptr, r0, n, y + t * ldy + r0);
        }
    };
    if (pool)
        pool->parallel_for(n_tiles, tile);
    else
        for (size_t i = 0; i < n_tiles; ++i) tile(i, 0);
}

}  // namespace pi::cpu::detail
