#include "runtime/ffn_bundle.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>

#include "backends/cpu/q4_0_repack.h"
#include "common/error.h"
#include "common/log.h"
#include "model/model.h"
#include "runtime/host_layers.h"
#include "runtime/huge_page_buffer.h"

namespace pi {
namespace {

// Whether [begin, end) lies inside one mapping of /proc/self/maps that is backed by a file (inode != 0). Anonymous
// memory must never be released: MADV_DONTNEED would zero it.
bool in_file_mapping(uintptr_t begin, uintptr_t end) {
    FILE *f = std::fopen("/proc/self/maps", "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (std::fgets(line, sizeof line, f)) {
        unsigned long lo = 0, hi = 0, offset = 0, inode = 0;
        char perms[8] = {0}, dev[32] = {0};
        if (std::sscanf(line, "%lx-%lx %7s %lx %31s %lu", &lo, &hi, perms, &offset, dev, &inode) != 6) continue;
        if (begin >= lo && end <= hi) {
            // A private file mapping written to would hold anonymous copies of its pages: only read-only ones.
            found = inode != 0 && perms[1] == '-';
            break;
        }
    }
    std::fclose(f);
    return found;
}

}  // namespace

size_t release_file_pages(const void *data, size_t bytes) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t p = reinterpret_cast<uintptr_t>(data);
    const uintptr_t begin = (p + page - 1) / page * page, end = (p + bytes) / page * page;
    if (!data || end <= begin || !in_file_mapping(begin, end)) return 0;
    if (::madvise(reinterpret_cast<void *>(begin), end - begin, MADV_DONTNEED) != 0) return 0;  // a hint only
    return end - begin;
}

bool FfnBundle::eligible(const cpu::WeightMatrix &gate, const cpu::WeightMatrix &up, const cpu::WeightMatrix &down_t) {
    if (!gate.data || !up.data || !down_t.data || up.n_rows == 0) return false;
    if (gate.type != up.type || up.type != down_t.type) return false;
    if (gate.n_rows != up.n_rows || up.n_rows != down_t.n_rows) return false;
    const size_t row = cpu::weight_row_bytes(up.type, up.n_cols);
    return cpu::weight_row_bytes(gate.type, gate.n_cols) == row && cpu::weight_row_bytes(down_t.type, down_t.n_cols) == row;
}

FfnBundle::FfnBundle(const cpu::WeightMatrix &gate, const cpu::WeightMatrix &up, const cpu::WeightMatrix &down_t,
                     bool repack_q4_0) {
    if (!eligible(gate, up, down_t)) fail(PI_ERR_INVALID_ARGUMENT, "ffn bundle: gate/up/down_t differ in type or shape");
    const size_t n = up.n_rows;
    const size_t row = cpu::weight_row_bytes(up.type, up.n_cols);
    const size_t part = round_up(row, kCacheLine);
    const size_t stride = 3 * part;
    memory_ = std::make_unique<HugePageBuffer>(n * stride, "ffn bundle");
    // Fault the sources in with one call each rather than one fault per page: their pages may not be mapped (a
    // model opened without populating, or released by an earlier build of the same file's rows), and page by page
    // that took longer than the copy.
    for (const cpu::WeightMatrix *m : {&gate, &up, &down_t}) populate_read(m->data, (n - 1) * m->row_stride + row);
    // The gate and up rows go through the dot kernels, which read Q4_0R faster; down_t rows go through axpy_rows,
    // which reads Q4_0 (q4_0_repack.h).
    const bool repack = repack_q4_0 && up.type == cpu::WeightType::Q4_0;
    uint8_t *base = memory_->data();
    for (size_t i = 0; i < n; ++i) {
        uint8_t *dst = base + i * stride;
        if (repack) {
            cpu::repack_q4_0_row(gate.row(i), gate.n_cols, dst);
            cpu::repack_q4_0_row(up.row(i), up.n_cols, dst + part);
        } else {
            std::memcpy(dst, gate.row(i), row);
            std::memcpy(dst + part, up.row(i), row);
        }
        std::memcpy(dst + 2 * part, down_t.row(i), row);
    }
    auto view = [&](const cpu::WeightMatrix &src, size_t offset, bool repacked) {
        cpu::WeightMatrix v = src;
        v.data = base + offset;
        v.row_stride = stride;
        if (repacked) v.type = cpu::WeightType::Q4_0R;
        return v;
    };
    gate_ = view(gate, 0, repack);
    up_ = view(up, part, repack);
    down_t_ = view(down_t, 2 * part, false);
}

FfnBundle::~FfnBundle() = default;

size_t FfnBundle::mapped_bytes() const { return memory_->size(); }

bool FfnBundles::wanted(const Model &model) {
    const char *v = std::getenv("PI_FFN_BUNDLE");
    if (v && std::string(v) == "0") return false;
    if (v && std::string(v) == "1") return true;
    for (const LayerWeights &L : model.weights().layers) {
        const cpu::WeightMatrix gate = as_matrix(L.ffn_gate), up = as_matrix(L.ffn_up), down_t = as_matrix(L.ffn_down_t);
        if (FfnBundle::eligible(gate, up, down_t)) return cpu::weight_type_is_quantized(up.type);
    }
    return false;
}

FfnBundles::FfnBundles(const Model &model, const std::vector<bool> *only, bool repack_q4_0) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelWeights &w = model.weights();
    layers_.resize(w.layers.size());
    size_t copied = 0, released = 0;
    for (size_t l = 0; l < w.layers.size(); ++l) {
        if (only && (l >= only->size() || !(*only)[l])) continue;
        const LayerWeights &L = w.layers[l];
        const cpu::WeightMatrix gate = as_matrix(L.ffn_gate), up = as_matrix(L.ffn_up), down_t = as_matrix(L.ffn_down_t);
        if (!FfnBundle::eligible(gate, up, down_t)) continue;
        layers_[l] = std::make_unique<FfnBundle>(gate, up, down_t, repack_q4_0);
        copied += layers_[l]->mapped_bytes();
        // Copy, then release, one layer at a time: the peak stays one layer above the file.
        for (const WeightView *t : {&L.ffn_gate, &L.ffn_up, &L.ffn_down_t}) {
            released += release_file_pages(t->data, static_cast<size_t>(t->info->n_bytes));
        }
    }
    const size_t n = n_bundled();
    if (n == 0) return;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    log_info("ffn bundles: " + std::to_string(n) + " of " + std::to_string(layers_.size()) + " layers, " +
             std::to_string(copied >> 20) + " MiB copied, " + std::to_string(released >> 20) +
             " MiB of the file mapping released, " + std::to_string(static_cast<long>(ms)) + " ms");
}

size_t FfnBundles::n_bundled() const {
    size_t n = 0;
    for (const auto &b : layers_) n += b != nullptr;
    return n;
}

}  // namespace pi
