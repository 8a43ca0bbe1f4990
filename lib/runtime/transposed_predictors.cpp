#include "runtime/transposed_predictors.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "common/log.h"
#include "model/model.h"
#include "runtime/ffn_bundle.h"
#include "runtime/host_layers.h"
#include "runtime/huge_page_buffer.h"

namespace pi {
namespace {

bool transposable(const cpu::WeightMatrix &m) {
    return m.data && !cpu::weight_type_is_quantized(m.type) && m.n_rows > 0 && m.n_cols > 0;
}

// dst (cols x rows, rows of dst_stride bytes) = src transposed, in tiles of 64 x 64 elements: each tile reads 64
// source lines and writes 64 destination lines (2-byte elements), all of which stay in L1 while it runs.
template <typename T>
void transpose(const cpu::WeightMatrix &src, uint8_t *dst, size_t dst_stride) {
    constexpr size_t kTile = 64;
    for (size_t r0 = 0; r0 < src.n_rows; r0 += kTile) {
        const size_t r1 = std::min<size_t>(src.n_rows, r0 + kTile);
        for (size_t c0 = 0; c0 < src.n_cols; c0 += kTile) {
            const size_t c1 = std::min<size_t>(src.n_cols, c0 + kTile);
            for (size_t c = c0; c < c1; ++c) {
                T *out = reinterpret_cast<T *>(dst + c * dst_stride);
                for (size_t r = r0; r < r1; ++r) {
                    T v;
                    std::memcpy(&v, src.row(r) + c * sizeof(T), sizeof(T));
                    out[r] = v;
                }
            }
        }
    }
}

}  // namespace

bool TransposedPredictors::wanted() {
    const char *v = std::getenv("PI_PRED_TRANSPOSE");
    return !(v && std::string(v) == "0");
}

TransposedPredictors::TransposedPredictors(const Model &model) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelWeights &w = model.weights();
    fc2_t_.resize(w.layers.size());
    size_t bytes = 0;
    for (const LayerWeights &L : w.layers) {
        const cpu::WeightMatrix m = as_matrix(L.fc2);
        if (transposable(m)) bytes += m.n_cols * round_up(cpu::weight_row_bytes(m.type, m.n_rows), kCacheLine);
    }
    if (bytes == 0) return;
    memory_ = std::make_unique<HugePageBuffer>(bytes, "transposed predictor weights");
    // Each layer's place first, then the copies on a few threads (layers are independent; bench-7b F16 on the
    // development VM: ~0.9 s on one core, ~0.5 s on two).
    std::vector<size_t> offset(w.layers.size(), SIZE_MAX);
    size_t at = 0;
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const cpu::WeightMatrix src = as_matrix(w.layers[l].fc2);
        if (!transposable(src)) continue;
        const size_t stride = round_up(cpu::weight_row_bytes(src.type, src.n_rows), kCacheLine);
        cpu::WeightMatrix t = cpu::make_weight_matrix(memory_->data() + at, src.type, src.n_cols, src.n_rows);
        t.row_stride = stride;
        fc2_t_[l] = t;
        offset[l] = at;
        at += src.n_cols * stride;
        ++n_copied_;
    }
    std::atomic<size_t> next{0}, released{0};
    const auto copy_layers = [&] {
        for (size_t l; (l = next.fetch_add(1)) < w.layers.size();) {
            if (offset[l] == SIZE_MAX) continue;
            const WeightView &v = w.layers[l].fc2;
            const cpu::WeightMatrix src = as_matrix(v);
            populate_read(src.data, src.n_rows * cpu::weight_row_bytes(src.type, src.n_cols));
            uint8_t *dst = memory_->data() + offset[l];
            if (src.type == cpu::WeightType::F32) transpose<uint32_t>(src, dst, fc2_t_[l].row_stride);
            else transpose<uint16_t>(src, dst, fc2_t_[l].row_stride);  // F16, BF16
            released += release_file_pages(v.data, static_cast<size_t>(v.info->n_bytes));
        }
    };
    const size_t n_threads = std::min<size_t>({std::max(1u, std::thread::hardware_concurrency()), n_copied_, 8});
    std::vector<std::thread> helpers;
    helpers.reserve(n_threads);  // no reallocation (which could throw) once threads are running
    for (size_t t = 1; t < n_threads; ++t) {
        try {
            helpers.emplace_back(copy_layers);
        } catch (const std::system_error &) {
            break;  // no thread to be had: the layers left are copied by the threads there are
        }
    }
    copy_layers();
    for (std::thread &t : helpers) t.join();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    log_info("transposed predictors: " + std::to_string(n_copied_) + " layers, " + std::to_string(at >> 20) +
             " MiB copied, " + std::to_string(released.load() >> 20) + " MiB of the file mapping released, " +
             std::to_string(static_cast<long>(ms)) + " ms");
}

TransposedPredictors::~TransposedPredictors() = default;

const cpu::WeightMatrix *TransposedPredictors::fc2_t(size_t layer) const {
    return layer < fc2_t_.size() && fc2_t_[layer].data ? &fc2_t_[layer] : nullptr;
}

}  // namespace pi
