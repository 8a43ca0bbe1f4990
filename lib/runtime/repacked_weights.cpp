#include "runtime/repacked_weights.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/f16_interleave.h"
#include "backends/cpu/q4_0_interleave.h"
#include "backends/cpu/q4_0_repack.h"
#include "backends/cpu/thread_pool.h"
#include "common/log.h"
#include "model/model.h"
#include "runtime/ffn_bundle.h"
#include "runtime/host_layers.h"
#include "runtime/huge_page_buffer.h"

namespace pi {
namespace {

// The matrices the CPU executor reads through dot kernels (never down_t, which axpy_rows reads), in file order, with
// the layout each is copied to: Q4_0X8 for Q4_0 ones that decode reads whole (never by row lists) and that fit it,
// Q4_0R for the other Q4_0 ones, F16X8 for F16 ones that decode reads whole and that fit it.
std::vector<std::pair<const WeightView *, cpu::WeightType>> candidates(const Model &model,
                                                                       const std::vector<bool> &skip_ffn_of,
                                                                       const RepackedMatrices::Layouts &on) {
    const ModelWeights &w = model.weights();
    std::vector<std::pair<const WeightView *, bool>> dots;  // (matrix, read whole by decode)
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerWeights &L = w.layers[l];
        for (const WeightView *v : {&L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.fc1}) dots.emplace_back(v, true);
        // Float fc2: decode reads its transposed copy, by rows of live units; quantized fc2: one matvec.
        dots.emplace_back(&L.fc2, L.fc2.data && cpu::weight_type_is_quantized(as_matrix(L.fc2).type));
        if (l >= skip_ffn_of.size() || !skip_ffn_of[l]) {
            for (const WeightView *v : {&L.ffn_gate, &L.ffn_up}) dots.emplace_back(v, false);  // row lists
        }
        dots.emplace_back(&L.ffn_down, false);  // the dense layout: a matvec
    }
    dots.emplace_back(w.output ? &w.output : &w.token_embd, true);
    std::vector<std::pair<const WeightView *, cpu::WeightType>> chosen;
    for (const auto &[v, whole] : dots) {
        if (!v->data) continue;
        const cpu::WeightMatrix m = as_matrix(*v);
        if (on.q4_0x8 && whole && cpu::q4_0x8_fits(m)) {
            chosen.emplace_back(v, cpu::WeightType::Q4_0X8);
        } else if (on.q4_0r && m.type == cpu::WeightType::Q4_0) {
            chosen.emplace_back(v, cpu::WeightType::Q4_0R);
        } else if (on.f16x8 && whole && cpu::f16x8_fits(m)) {
            chosen.emplace_back(v, cpu::WeightType::F16X8);
        }
    }
    return chosen;
}

// A load-time copy's switch: "0" never, "1" always (tests: the other levels' unpacking paths), unset: when the CPU
// runs the AVX-512 kernels, the only ones that read the copies natively.
bool switched_on(const char *env) {
    const char *v = std::getenv(env);
    if (v && std::string(v) == "0") return false;
    if (v && std::string(v) == "1") return true;
    return cpu::active_isa_level() >= cpu::IsaLevel::Avx512;
}

// Threads for the load-time copies: the hardware's, at most 8 (memory-bound beyond that).
size_t copy_threads() {
    const unsigned hw = std::thread::hardware_concurrency();
    return std::max<size_t>(1, std::min<size_t>(8, hw));
}

}  // namespace

bool RepackedMatrices::f16_wanted() { return switched_on("PI_F16_INTERLEAVE"); }

bool RepackedMatrices::wanted() { return switched_on("PI_Q4_REPACK"); }

bool RepackedMatrices::q4_interleave_wanted() { return switched_on("PI_Q4_INTERLEAVE"); }

RepackedMatrices::RepackedMatrices(const Model &model, const std::vector<bool> &skip_ffn_of, const Layouts &layouts) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto matrices = candidates(model, skip_ffn_of, layouts);
    size_t bytes = 0;
    for (const auto &[v, layout] : matrices) bytes += round_up(static_cast<size_t>(v->info->n_bytes), kCacheLine);
    if (bytes == 0) return;
    memory_ = std::make_unique<HugePageBuffer>(bytes, "repacked weights");

    // Where each copy goes (a matrix reached twice, a tied head, is copied once).
    struct Copy {
        const WeightView *view;
        cpu::WeightMatrix src;  // the file's matrix (as_matrix(*view))
        cpu::WeightType layout;
        size_t at;
        cpu::WeightMatrix result;
        size_t released = 0;
    };
    std::vector<Copy> copies;
    std::unordered_set<const void *> seen;
    size_t at = 0;
    for (const auto &[v, layout] : matrices) {
        const cpu::WeightMatrix src = as_matrix(*v);
        if (!seen.insert(src.data).second) continue;
        copies.push_back({v, src, layout, at, {}, 0});
        at += round_up(src.n_rows * cpu::weight_row_bytes(src.type, src.n_cols), kCacheLine);
    }

    // The copies run on several threads, a whole matrix each (so each copy is the one-thread copy, byte for byte):
    // the load spent seconds in them on one core (bench-7b: 1.5 GB of Q4_0, 4.6 GB of F16), and reading the file's
    // pages, rearranging and writing them is work that more cores get through faster.
    std::atomic<size_t> next{0};
    const auto copy = [&](Copy &c) {
        const cpu::WeightMatrix &src = c.src;
        const size_t row = cpu::weight_row_bytes(src.type, src.n_cols);
        populate_read(src.data, src.n_rows * row);
        uint8_t *dst = memory_->data() + c.at;
        if (c.layout == cpu::WeightType::F16X8) {
            c.result = cpu::interleave_f16x8(src, dst);
        } else if (c.layout == cpu::WeightType::Q4_0X8) {
            c.result = cpu::interleave_q4_0x8(src, dst);
        } else {
            for (size_t r = 0; r < src.n_rows; ++r) cpu::repack_q4_0_row(src.row(r), src.n_cols, dst + r * row);
            c.result = cpu::make_weight_matrix(dst, cpu::WeightType::Q4_0R, src.n_rows, src.n_cols);
        }
        // Each matrix's file pages are released right after its copy (the copy buffer itself is faulted in whole at
        // the start: one mapping, not one per matrix, which would round each up to 2 MiB). Only pages wholly inside
        // the matrix go, so a neighbour another thread is reading keeps its pages.
        c.released = release_file_pages(c.view->data, static_cast<size_t>(c.view->info->n_bytes));
    };
    std::unique_ptr<cpu::ThreadPool> pool;
    try {
        pool = std::make_unique<cpu::ThreadPool>(static_cast<int>(std::min(copies.size(), copy_threads())));
    } catch (const std::system_error &) {
        pool = std::make_unique<cpu::ThreadPool>(1);  // no more threads: this one does the copies
    }
    // Matrices are handed out one at a time (their sizes differ); after a failure the others stop taking more, and
    // the pool rethrows the first exception once every thread is done.
    pool->run([&](int) {
        for (size_t i; (i = next.fetch_add(1)) < copies.size();) {
            try {
                copy(copies[i]);
            } catch (...) {
                next.store(copies.size());
                throw;
            }
        }
    });

    size_t released = 0, n_q4r = 0, n_q4x8 = 0, n_f16 = 0;
    for (const Copy &c : copies) {
        views_.emplace(c.src.data, c.result);
        released += c.released;
        n_f16 += c.layout == cpu::WeightType::F16X8;
        n_q4x8 += c.layout == cpu::WeightType::Q4_0X8;
        n_q4r += c.layout == cpu::WeightType::Q4_0R;
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    log_info("repacked weights: " + std::to_string(n_q4r) + " Q4_0 matrices as Q4_0R, " + std::to_string(n_q4x8) +
             " as Q4_0X8, " + std::to_string(n_f16) + " F16 matrices as F16X8, " + std::to_string(at >> 20) +
             " MiB copied, " + std::to_string(released >> 20) + " MiB of the file mapping released, " +
             std::to_string(static_cast<long>(ms)) + " ms");
}

RepackedMatrices::~RepackedMatrices() = default;

const cpu::WeightMatrix *RepackedMatrices::find(const void *data) const {
    const auto it = views_.find(data);
    return it == views_.end() ? nullptr : &it->second;
}

}  // namespace pi
