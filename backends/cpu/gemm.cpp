#include "backends/cpu/gemm.h"

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/gemm_fallback.h"
#include "backends/cpu/gemm_onednn.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/q8_activation.h"
#include "common/error.h"

namespace pi::cpu {
namespace {

using detail::PanelType;

// Rows of W per oneDNN call. Each call packs its panel of W and multiplies it by all of X; 256 rows x 4096 columns
// is 4 MiB as f32 / 2 MiB as bf16, and at 32 tokens about a millisecond of work per call, so oneDNN's per-call cost
// stays small. (Measured on the development machine: the panel path reaches 90-100% of one oneDNN call over the
// whole pre-converted matrix, see pi-kernel-bench.)
constexpr size_t kPanelRows = 256;

size_t element_bytes(PanelType t) { return t == PanelType::F32 ? 4 : 2; }

// Whether W can be handed to oneDNN as it is (its type is the compute type and its rows are element-aligned).
bool usable_in_place(const WeightMatrix &w, PanelType t) {
    const bool same =
        (w.type == WeightType::F32 && t == PanelType::F32) || (w.type == WeightType::BF16 && t == PanelType::BF16);
    return same && w.row_stride % element_bytes(t) == 0;
}

}  // namespace

bool gemm_onednn_compiled() { return detail::onednn_compiled(); }

struct Gemm::Impl {
    ThreadPool *pool;
    GemmOptions options;
    std::unique_ptr<detail::OnednnPanelMatmul> onednn;
    std::vector<AlignedBuffer<uint8_t>> panel;  // per thread: a converted panel
    AlignedBuffer<uint16_t> x_bf16;             // X rounded to bf16
    std::vector<Q8Activation> xq;               // fallback: tokens quantized

    struct CacheEntry {
        AlignedBuffer<uint8_t> data;
        bool complete = false;
    };
    using CacheKey = std::tuple<const void *, uint32_t, size_t, size_t, size_t, int>;
    std::map<CacheKey, CacheEntry> cache;
    size_t cache_used = 0;

    int n_threads() const { return pool ? pool->size() : 1; }

    template <typename F>
    void parallel_for(size_t n, F &&fn) {
        if (pool) {
            pool->parallel_for(n, fn);
        } else {
            for (size_t i = 0; i < n; ++i) fn(i, 0);
        }
    }

    // Writes rows [r0, r1) of W as `t` into dst (row-major, n_cols per row).
    void convert_rows(const WeightMatrix &w, size_t r0, size_t r1, PanelType t, uint8_t *dst) {
        const detail::KernelTable &k = detail::kernels(options.isa);
        const size_t n = w.n_cols;
        if (t == PanelType::F32) {
            k.rows_to_f32(w, r0, r1, reinterpret_cast<float *>(dst), n);
            return;
        }
        k.rows_to_bf16(w, r0, r1, reinterpret_cast<uint16_t *>(dst), n);
    }

    void multiply_onednn(const WeightMatrix &w, const float *x, size_t m, size_t ldx, float *y, size_t ldy,
                         PanelType t) {
        const size_t k_dim = w.n_cols, n_out = w.n_rows, esz = element_bytes(t);
        const detail::KernelTable &k = detail::kernels(options.isa);

        // X in the compute type.
        const void *xs = x;
        size_t ldxs = ldx;
        if (t == PanelType::BF16) {
            x_bf16.reserve(m * k_dim);
            uint16_t *xb = x_bf16.data();
            parallel_for(m, [&](size_t tok, int) { k.f32_to_bf16(x + tok * ldx, k_dim, xb + tok * k_dim); });
            xs = xb;
            ldxs = k_dim;
        }

        // Where the converted weights come from: W itself, a complete cache entry, a cache entry being filled now,
        // or per-thread panel buffers.
        const bool in_place = usable_in_place(w, t);
        CacheEntry *entry = nullptr;
        if (!in_place && options.cache_bytes > 0) {
            const CacheKey key{
                w.data, static_cast<uint32_t>(w.type), w.n_rows, w.n_cols, w.row_stride, static_cast<int>(t)};
            auto it = cache.find(key);
            if (it != cache.end()) {
                entry = &it->second;
            } else if (cache_used + n_out * k_dim * esz <= options.cache_bytes) {
                entry = &cache[key];
                entry->data.reserve(n_out * k_dim * esz);
                cache_used += n_out * k_dim * esz;
            }
        }
        const bool fill_entry = entry && !entry->complete;
        const size_t n_panels = (n_out + kPanelRows - 1) / kPanelRows;
        parallel_for(n_panels, [&](size_t p, int thread) {
            const size_t r0 = p * kPanelRows;
            const size_t rows = r0 + kPanelRows <= n_out ? kPanelRows : n_out - r0;
            const void *wp;
            size_t ldw = k_dim;
            if (in_place) {
                wp = w.row(r0);
                ldw = w.row_stride / esz;
            } else if (entry) {
                uint8_t *dst = entry->data.data() + r0 * k_dim * esz;
                if (fill_entry) convert_rows(w, r0, r0 + rows, t, dst);
                wp = dst;
            } else {
                AlignedBuffer<uint8_t> &buf = panel[static_cast<size_t>(thread)];
                buf.reserve(kPanelRows * k_dim * esz);
                convert_rows(w, r0, r0 + rows, t, buf.data());
                wp = buf.data();
            }
            onednn->run(t, xs, m, k_dim, ldxs, wp, rows, ldw, y + r0, ldy);
        });
        if (fill_entry) entry->complete = true;
    }
};

Gemm::Gemm(ThreadPool *pool, const GemmOptions &options) : impl_(std::make_unique<Impl>()) {
    impl_->pool = pool;
    impl_->options = options;
    if (options.use_onednn) impl_->onednn = detail::make_onednn_panel_matmul();
    impl_->panel.resize(static_cast<size_t>(impl_->n_threads()));
}

Gemm::~Gemm() = default;

bool Gemm::uses_onednn() const { return impl_->onednn != nullptr; }

size_t Gemm::cached_bytes() const { return impl_->cache_used; }

void Gemm::multiply(const WeightMatrix &w, const float *x, size_t n_tokens, size_t ldx, float *y, size_t ldy,
                    GemmPrecision precision) {
    check_weight_matrix(w, "gemm");
    if (n_tokens == 0 || w.n_rows == 0) return;
    if (!x || !y) fail(PI_ERR_INVALID_ARGUMENT, "gemm: missing X or Y");
    if (w.n_cols == 0) fail(PI_ERR_INVALID_ARGUMENT, "gemm: W has no columns");
    if (ldx < w.n_cols || ldy < w.n_rows) {
        fail(PI_ERR_INVALID_ARGUMENT, "gemm: leading dimensions " + std::to_string(ldx) + " / " + std::to_string(ldy) +
                                          " are shorter than the rows of X (" + std::to_string(w.n_cols) + ") / Y (" +
                                          std::to_string(w.n_rows) + ")");
    }
    if (!impl_->onednn) {
        detail::gemm_fallback(w, x, n_tokens, ldx, y, ldy, impl_->pool, impl_->options.isa, impl_->xq);
        return;
    }
    impl_->multiply_onednn(w, x, n_tokens, ldx, y, ldy,
                           precision == GemmPrecision::F32 ? PanelType::F32 : PanelType::BF16);
}

}  // namespace pi::cpu
