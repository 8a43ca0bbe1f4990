#include "runtime/repacked_weights.h"

#include <chrono>
#include <cstdlib>
#include <string>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/q4_0_repack.h"
#include "common/log.h"
#include "model/model.h"
#include "runtime/ffn_bundle.h"
#include "runtime/host_layers.h"
#include "runtime/huge_page_buffer.h"

namespace pi {
namespace {

// The matrices the CPU executor reads through dot kernels (never down_t, which axpy_rows reads), in file order.
std::vector<const WeightView *> candidates(const Model &model, const std::vector<bool> &skip_ffn_of) {
    const ModelWeights &w = model.weights();
    std::vector<const WeightView *> out;
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerWeights &L = w.layers[l];
        for (const WeightView *v : {&L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.fc1, &L.fc2}) out.push_back(v);
        if (l >= skip_ffn_of.size() || !skip_ffn_of[l]) {
            for (const WeightView *v : {&L.ffn_gate, &L.ffn_up}) out.push_back(v);
        }
        out.push_back(&L.ffn_down);  // the dense layout: a matvec
    }
    out.push_back(w.output ? &w.output : &w.token_embd);
    std::vector<const WeightView *> q4;
    for (const WeightView *v : out) {
        if (v->data && as_matrix(*v).type == cpu::WeightType::Q4_0) q4.push_back(v);
    }
    return q4;
}

}  // namespace

bool RepackedMatrices::wanted() {
    const char *v = std::getenv("PI_Q4_REPACK");
    if (v && std::string(v) == "0") return false;
    if (v && std::string(v) == "1") return true;
    return cpu::active_isa_level() >= cpu::IsaLevel::Avx512;
}

RepackedMatrices::RepackedMatrices(const Model &model, const std::vector<bool> &skip_ffn_of) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<const WeightView *> matrices = candidates(model, skip_ffn_of);
    size_t bytes = 0;
    for (const WeightView *v : matrices) bytes += round_up(static_cast<size_t>(v->info->n_bytes), kCacheLine);
    if (bytes == 0) return;
    memory_ = std::make_unique<HugePageBuffer>(bytes, "repacked Q4_0 weights");
    size_t at = 0, released = 0;
    for (const WeightView *v : matrices) {
        const cpu::WeightMatrix src = as_matrix(*v);
        if (views_.count(src.data)) continue;  // a matrix reached twice (a tied head) is copied once
        const size_t row = cpu::weight_row_bytes(src.type, src.n_cols);
        populate_read(src.data, src.n_rows * row);
        uint8_t *dst = memory_->data() + at;
        for (size_t r = 0; r < src.n_rows; ++r) cpu::repack_q4_0_row(src.row(r), src.n_cols, dst + r * row);
        cpu::WeightMatrix view = cpu::make_weight_matrix(dst, cpu::WeightType::Q4_0R, src.n_rows, src.n_cols);
        views_.emplace(src.data, view);
        at += round_up(src.n_rows * row, kCacheLine);
        // Each matrix's file pages are released right after its copy (the copy buffer itself is faulted in whole at
        // the start: one mapping, not one per matrix, which would round each up to 2 MiB).
        released += release_file_pages(v->data, static_cast<size_t>(v->info->n_bytes));
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    log_info("repacked Q4_0 weights: " + std::to_string(views_.size()) + " matrices, " + std::to_string(at >> 20) +
             " MiB copied, " + std::to_string(released >> 20) + " MiB of the file mapping released, " +
             std::to_string(static_cast<long>(ms)) + " ms");
}

RepackedMatrices::~RepackedMatrices() = default;

const cpu::WeightMatrix *RepackedMatrices::find(const void *data) const {
    const auto it = views_.find(data);
    return it == views_.end() ? nullptr : &it->second;
}

}  // namespace pi
