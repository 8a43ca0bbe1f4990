// pi-kernel-bench: speed of the CPU kernels against this machine's memory bandwidth and against oneDNN alone.
//
//   pi-kernel-bench [--threads N] [--reps N] [--no-gemm] [--no-matvec] [--types F16,Q4_0,...] [--hugepages]
//                   [--isa scalar|avx2|avx512] [--sparse FRACTION [--sparse-max-threads-only]] [--hot]
//
// Prints, for the bench-7b FFN shapes (W 11008 x 4096 = gate/up, 4096 x 11008 = down) and every weight type:
//   - dense matvec: weight bytes / time with 1..N threads, and the fraction of the streaming read bandwidth (the
//     decode roofline) with the same thread count, both best-of over interleaved passes (see interleaved());
//   - sparse forms at bench-7b's mean activity (11.6% of the neurons): matvec_rows over gate/up rows and axpy_rows
//     over down-transposed rows, bytes of the rows read / time;
//   - thread pool dispatch latency (empty job round trip, spinning and after the workers fell asleep);
//   - prefill GEMM 128 (and 32) x 4096 x 11008: oneDNN alone on a whole pre-converted matrix (its own OpenMP
//     threads), our path (panels converted on the fly, single-threaded oneDNN per panel on our pool), and the
//     blocked fallback, in GFLOP/s.
//   - with --hot: the kernels alone on one core, rows in L2 (no memory traffic): dot rows (matvec) and axpy rows
//     over 4096-column rows, GB/s of weights. What the vector micro-ops allow per core, to set against the per-core
//     share of the read bandwidth (a kernel near that share keeps too few loads in flight to reach it). Also the
//     predictor's selection of 11008 scores at each level, us per call.
//   - with --sparse F: the fused sparse FFN (sparse_ffn: gate/up dots, activation, down rows in one pass over a
//     random F of the 11008 neurons) against the same work as three separate calls (matvec_rows gate, matvec_rows
//     up, axpy_rows down) and against a bare read of the same rows, GB/s of the rows read, for F16 and Q4_0 (or
//     --types).
// Matrices are replicated so that each timed pass reads memory, not the last-level cache.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/bandwidth.h"
#include "backends/cpu/cpu_features.h"
#include "backends/cpu/f16_interleave.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/numeric.h"
#include "backends/cpu/q4_0_interleave.h"
#include "backends/cpu/q4_0_repack.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/row_convert.h"
#include "backends/cpu/sparse_ffn.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/weight_type.h"

#if defined(PI_BENCH_ONEDNN)
#include <omp.h>

#include <dnnl.hpp>
#endif

using namespace pi::cpu;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Weights in 4 KiB pages by default, as a model mmap'ed from a file gets them; --hugepages asks for 2 MiB pages
// (madvise), to show what the TLB costs the scattered row lists.
bool g_hugepages = false;

struct Args {
    int threads = 2;
    int reps = 10;
    bool gemm = true;
    bool matvec = true;
    int prefill_bound = 0;  // --prefill-bound M: oneDNN-alone time of bench-7b's projections for M tokens
    std::string types = "F32,F16,BF16,Q8_0,Q4_0";  // --types: the weight types to run
    IsaLevel isa = active_isa_level();
    double sparse = 0.0;  // --sparse F: fraction of active neurons for the fused sparse FFN section (0: off)
    bool types_given = false;
    bool sparse_all_threads = true;  // --sparse-max-threads-only: the sparse FFN section with --threads N only
    bool hot = false;                // --hot: single-core kernel speed with the rows in L2

    bool wants(WeightType t) const {
        const std::string name = weight_type_name(t);
        size_t pos = 0;
        while (pos <= types.size()) {
            const size_t end = types.find(',', pos);
            if (types.compare(pos, (end == std::string::npos ? types.size() : end) - pos, name) == 0 &&
                (end == std::string::npos ? types.size() : end) - pos == name.size()) {
                return true;
            }
            if (end == std::string::npos) break;
            pos = end + 1;
        }
        return false;
    }
};

Args parse(int argc, char **argv) {
    Args a;
    a.threads = static_cast<int>(std::thread::hardware_concurrency());
    if (a.threads < 1) a.threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto next = [&]() -> const char * {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", s.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (s == "--threads")
            a.threads = std::max(1, std::atoi(next()));
        else if (s == "--reps")
            a.reps = std::max(1, std::atoi(next()));
        else if (s == "--no-gemm")
            a.gemm = false;
        else if (s == "--no-matvec")
            a.matvec = false;
        else if (s == "--prefill-bound")
            a.prefill_bound = std::max(1, std::atoi(next()));
        else if (s == "--types") {
            a.types = next();
            a.types_given = true;
        } else if (s == "--hot") {
            a.hot = true;
        } else if (s == "--sparse-max-threads-only") {
            a.sparse_all_threads = false;
        } else if (s == "--sparse") {
            a.sparse = std::atof(next());
            if (!(a.sparse > 0.0 && a.sparse <= 1.0)) {
                std::fprintf(stderr, "--sparse needs a fraction in (0, 1]\n");
                std::exit(2);
            }
        }
        else if (s == "--hugepages")
            g_hugepages = true;
        else if (s == "--isa") {
            const std::string v = next();
            a.isa = v == "scalar" ? IsaLevel::Scalar : v == "avx2" ? IsaLevel::Avx2 : IsaLevel::Avx512;
            if (a.isa > best_isa_level()) a.isa = best_isa_level();
        } else {
            std::fprintf(stderr,
                         "usage: %s [--threads N] [--reps N] [--no-gemm] [--no-matvec] [--types F16,Q4_0,...] "
                         "[--hugepages] [--isa scalar|avx2|avx512] [--prefill-bound M] [--sparse FRACTION] "
                         "[--sparse-max-threads-only] [--hot]\n",
                         argv[0]);
            std::exit(2);
        }
    }
    return a;
}

// A matrix of random weights of `type`, replicated `copies` times (each copy a separate allocation).

struct PageBuffer {
    uint8_t *data = nullptr;
    size_t bytes = 0;
    explicit PageBuffer(size_t n) : bytes((n + (2u << 20) - 1) / (2u << 20) * (2u << 20)) {
        data = static_cast<uint8_t *>(std::aligned_alloc(2u << 20, bytes));
        if (!data) throw std::bad_alloc();
        if (g_hugepages) madvise(data, bytes, MADV_HUGEPAGE);
    }
    ~PageBuffer() { std::free(data); }
    PageBuffer(const PageBuffer &) = delete;
    PageBuffer &operator=(const PageBuffer &) = delete;
};

struct Replicated {
    std::vector<std::unique_ptr<PageBuffer>> copies;
    std::vector<WeightMatrix> views;
};

void fill_random(uint8_t *data, WeightType type, size_t rows, size_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    const size_t row_bytes = weight_row_bytes(type, cols);
    if (type == WeightType::Q4_0R) {  // Q4_0 rows, repacked (the CPU executor's copies of its Q4_0 matrices)
        fill_random(data, WeightType::Q4_0, rows, cols, seed);
        std::vector<uint8_t> row(row_bytes);
        for (size_t r = 0; r < rows; ++r) {
            repack_q4_0_row(data + r * row_bytes, cols, row.data());
            std::memcpy(data + r * row_bytes, row.data(), row_bytes);
        }
        return;
    }
    if (type == WeightType::F16X8) {  // F16 rows, eight interleaved (the CPU executor's whole-read F16 matrices)
        std::vector<uint8_t> f16(rows * row_bytes);
        fill_random(f16.data(), WeightType::F16, rows, cols, seed);
        interleave_f16x8(make_weight_matrix(f16.data(), WeightType::F16, rows, cols), data);
        return;
    }
    if (type == WeightType::Q4_0X8) {  // Q4_0 rows, eight interleaved (the CPU executor's whole-read matrices)
        std::vector<uint8_t> q4(rows * row_bytes);
        fill_random(q4.data(), WeightType::Q4_0, rows, cols, seed);
        interleave_q4_0x8(make_weight_matrix(q4.data(), WeightType::Q4_0, rows, cols), data);
        return;
    }
    for (size_t r = 0; r < rows; ++r) {
        uint8_t *row = data + r * row_bytes;
        if (type == WeightType::Q8_0 || type == WeightType::Q4_0) {
            const size_t bb = type == WeightType::Q8_0 ? 34 : 18;
            for (size_t b = 0; b < cols / 32; ++b) {
                const uint16_t d = fp32_to_fp16(0.001f + 0.0001f * static_cast<float>(rng() % 100));
                std::memcpy(row + b * bb, &d, 2);
                for (size_t j = 2; j < bb; ++j) row[b * bb + j] = static_cast<uint8_t>(rng());
            }
            continue;
        }
        for (size_t c = 0; c < cols; ++c) {
            const float v = normal(rng);
            if (type == WeightType::F32)
                std::memcpy(row + 4 * c, &v, 4);
            else {
                const uint16_t h = type == WeightType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
                std::memcpy(row + 2 * c, &h, 2);
            }
        }
    }
}

Replicated make_replicated(WeightType type, size_t rows, size_t cols, size_t min_total_bytes) {
    Replicated rep;
    const size_t bytes = rows * weight_row_bytes(type, cols);
    const size_t n = std::max<size_t>(2, (min_total_bytes + bytes - 1) / bytes);
    for (size_t i = 0; i < n; ++i) {
        rep.copies.push_back(std::make_unique<PageBuffer>(bytes));
        if (i == 0)
            fill_random(rep.copies[i]->data, type, rows, cols, 1234);
        else
            std::memcpy(rep.copies[i]->data, rep.copies[0]->data, bytes);
        rep.views.push_back(make_weight_matrix(rep.copies[i]->data, type, rows, cols));
    }
    return rep;
}

// Best time of `reps` passes, each pass running fn(copy) over every copy once; returns seconds per call.
template <typename F>
double best_per_call(const Replicated &rep, int reps, F &&fn) {
    for (const WeightMatrix &w : rep.views) fn(w);  // warm-up (page tables, code)
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        for (const WeightMatrix &w : rep.views) fn(w);
        best = std::min(best, seconds_since(t0) / static_cast<double>(rep.views.size()));
    }
    return best;
}

// This machine's memory bandwidth moves with the host's other tenants from one second to the next. So each case
// alternates, `rounds` times, a 256 MiB streaming-read pass and a pass of the kernel over all copies, and reports
// the best of each: both are then the quiet-host figures of the same period, and their ratio is the roofline
// fraction.
struct Measured {
    double gbps;     // kernel: bytes per call / best time per call
    double bw_gbps;  // best streaming read over the same rounds
};

template <typename F>
Measured interleaved(const Replicated &rep, double bytes_per_call, ThreadPool *pool, IsaLevel isa, int rounds, F &&fn) {
    BandwidthOptions opt;
    opt.buffer_bytes = 256u << 20;
    opt.repeats = 1;
    for (const WeightMatrix &w : rep.views) fn(w);  // warm-up
    double best_sec = 1e30, best_bw = 0.0;
    for (int r = 0; r < rounds; ++r) {
        best_bw = std::max(best_bw, measure_read_bandwidth(pool->size(), pool, isa, opt));
        const auto t0 = Clock::now();
        for (const WeightMatrix &w : rep.views) fn(w);
        best_sec = std::min(best_sec, seconds_since(t0) / static_cast<double>(rep.views.size()));
    }
    return {bytes_per_call / best_sec / 1e9, best_bw};
}

double load_average() {
    double load = -1.0;
    if (FILE *f = std::fopen("/proc/loadavg", "r")) {
        if (std::fscanf(f, "%lf", &load) != 1) load = -1.0;
        std::fclose(f);
    }
    return load;
}

void bench_matvec(const Args &args) {
    const WeightType types[] = {WeightType::F32,  WeightType::F16,  WeightType::F16X8, WeightType::BF16,
                                WeightType::Q8_0, WeightType::Q4_0, WeightType::Q4_0R, WeightType::Q4_0X8};
    struct Shape {
        size_t rows, cols;
        const char *name;
    };
    // The last two are bench-7b's predictor (fc1 1024 x 4096, fc2 11008 x 1024: short rows, per-row overhead).
    const Shape shapes[] = {{11008, 4096, "11008x4096 (gate/up)"},
                            {4096, 11008, "4096x11008 (down)"},
                            {1024, 4096, "1024x4096 (pred fc1)"},
                            {11008, 1024, "11008x1024 (pred fc2)"}};
    std::printf(
        "\n== dense matvec y = W x: GB/s of weights (%% of the streaming read GB/s, same threads, same period) ==\n");
    std::printf("%-22s %-5s", "shape", "type");
    for (int t = 1; t <= args.threads; ++t) std::printf("   %2d thr GB/s (%%bw of read)", t);
    std::printf("\n");
    std::vector<ThreadPool *> pools;
    std::vector<std::unique_ptr<ThreadPool>> owned;
    for (int t = 1; t <= args.threads; ++t) {
        owned.push_back(std::make_unique<ThreadPool>(t));
        pools.push_back(owned.back().get());
    }
    const size_t llc_multiple = 256u << 20;
    for (const Shape &s : shapes) {
        for (WeightType type : types) {
            if (!args.wants(type)) continue;
            const Replicated rep = make_replicated(type, s.rows, s.cols, llc_multiple);
            std::vector<float> x(s.cols), y(s.rows);
            std::mt19937 rng(5);
            std::normal_distribution<float> normal(0.0f, 1.0f);
            for (float &v : x) v = normal(rng);
            Q8Activation xq;
            MatvecInput in;
            in.f32 = x.data();
            in.n = s.cols;
            if (weight_type_is_quantized(type)) {
                xq.quantize(x.data(), s.cols, args.isa);
                in.q8 = &xq;
            }
            const double bytes = static_cast<double>(s.rows * weight_row_bytes(type, s.cols));
            std::printf("%-22s %-5s", s.name, weight_type_name(type));
            for (int t = 1; t <= args.threads; ++t) {
                ThreadPool *pool = pools[static_cast<size_t>(t - 1)];
                const Measured m = interleaved(rep, bytes, pool, args.isa, args.reps, [&](const WeightMatrix &w) {
                    matvec(w, in, 0, s.rows, y.data(), pool, args.isa);
                });
                std::printf("   %11.2f  (%3.0f%% of %4.1f)", m.gbps, 100.0 * m.gbps / m.bw_gbps, m.bw_gbps);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }

    // Sparse forms at bench-7b's mean activity: 11.6% of the 11008 neurons, sorted.
    std::printf("\n== sparse forms, 11.6%% of 11008 neurons active: GB/s of the rows read (as above) ==\n");
    std::printf("%-30s %-5s", "form", "type");
    for (int t = 1; t <= args.threads; ++t) std::printf("   %2d thr GB/s (%%bw of read)", t);
    std::printf("\n");
    std::vector<uint32_t> active;
    std::mt19937 rng(17);
    for (uint32_t i = 0; i < 11008; ++i) {
        if (rng() % 1000 < 116) active.push_back(i);
    }
    std::vector<float> coeff(active.size());
    for (size_t i = 0; i < coeff.size(); ++i) coeff[i] = 0.5f + static_cast<float>(i % 7);
    for (int form = 0; form < 2; ++form) {
        for (WeightType type : types) {
            if (!args.wants(type) || weight_type_group_rows(type) > 1) continue;  // row lists: not interleaved
            // Both forms read rows of 4096: gate/up rows (11008 x 4096) and down-transposed rows (11008 x 4096).
            // Enough copies that the active rows of all of them (not just the matrices) exceed the LLC 4 times.
            const size_t active_bytes = active.size() * weight_row_bytes(type, 4096);
            const size_t matrix_bytes = 11008 * weight_row_bytes(type, 4096);
            const size_t copies = std::max<size_t>(2, (128u << 20) / active_bytes + 1);
            const Replicated rep = make_replicated(type, 11008, 4096, copies * matrix_bytes);
            std::vector<float> x(4096, 0.25f), y(std::max<size_t>(active.size(), 4096));
            Q8Activation xq;
            MatvecInput in;
            in.f32 = x.data();
            in.n = 4096;
            if (weight_type_is_quantized(type)) {
                xq.quantize(x.data(), 4096, args.isa);
                in.q8 = &xq;
            }
            const double bytes = static_cast<double>(active.size() * weight_row_bytes(type, 4096));
            std::printf("%-30s %-5s", form == 0 ? "matvec_rows (gate/up)" : "axpy_rows (down, transposed)",
                        weight_type_name(type));
            for (int t = 1; t <= args.threads; ++t) {
                ThreadPool *pool = pools[static_cast<size_t>(t - 1)];
                const Measured m = interleaved(rep, bytes, pool, args.isa, args.reps, [&](const WeightMatrix &w) {
                    if (form == 0)
                        matvec_rows(w, in, active.data(), active.size(), y.data(), pool, args.isa);
                    else
                        axpy_rows(w, coeff.data(), active.data(), active.size(), y.data(), pool, args.isa);
                });
                std::printf("   %11.2f  (%3.0f%% of %4.1f)", m.gbps, 100.0 * m.gbps / m.bw_gbps, m.bw_gbps);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
}

// A bare read of a row pattern: one 8-byte load per 64-byte line of the listed rows of each matrix (gate rows, then
// up, then down_t), each thread a contiguous share of that sequence, in the row kernels' order -- eight rows at a
// time, line by line across the eight, each line of the next eight prefetched (with the kernels' hint,
// detail::prefetch_line) beside the load of the same line of the current eight -- so what the arithmetic costs shows
// as the gap to this line.
uint64_t g_read_rows_sink = 0;
void read_rows(std::initializer_list<const WeightMatrix *> matrices, const std::vector<uint32_t> &rows,
               ThreadPool *pool) {
    constexpr size_t kGroup = 8;
    static std::vector<const uint8_t *> starts;  // reused: no allocation inside the timed call after the first
    starts.clear();
    size_t row_bytes = 0;
    for (const WeightMatrix *m : matrices) {
        row_bytes = weight_row_bytes(m->type, m->n_cols);
        for (uint32_t r : rows) starts.push_back(m->row(r));
    }
    const size_t lines = row_bytes / 64, n_threads = static_cast<size_t>(pool->size());
    std::atomic<uint64_t> sink{0};
    pool->run([&](int t) {
        const size_t b = starts.size() * size_t(t) / n_threads, e = starts.size() * size_t(t + 1) / n_threads;
        uint64_t acc = 0;
        const auto load = [&](const uint8_t *p) {
            uint64_t v;
            std::memcpy(&v, p, sizeof v);
            acc ^= v;
        };
        size_t i = b;
        for (; i + kGroup <= e; i += kGroup) {
            const bool next = i + 2 * kGroup <= e;
            for (size_t line = 0; line < lines; ++line) {
                for (size_t r = 0; r < kGroup; ++r) {
                    if (next) detail::prefetch_line(starts[i + kGroup + r] + 64 * line);
                    load(starts[i + r] + 64 * line);
                }
            }
        }
        for (; i < e; ++i) {
            for (size_t line = 0; line < lines; ++line) load(starts[i] + 64 * line);
        }
        sink.fetch_xor(acc, std::memory_order_relaxed);
    });
    g_read_rows_sink ^= sink.load();
}

// The fused sparse FFN of a bench-7b layer (gate, up, down_t: 11008 neurons x 4096) over a random `fraction` of the
// neurons, against the same rows read by three separate calls. SiLU, so every listed neuron reads all three of its
// rows (with ReGLU and random weights half the gates would be negative and skip their up/down rows, which says
// nothing about streaming speed; the predictor's neurons mostly fire). GB/s = bytes of the listed rows / time. A third
// line reads the same rows without arithmetic, in the kernels' order (read_rows).
void bench_sparse_ffn(const Args &args) {
    const size_t n_ff = 11008, n_embd = 4096;
    std::printf("\n== fused sparse FFN, %.1f%% of %zu neurons active (SiLU: 3 rows each): GB/s of the rows read ==\n",
                100.0 * args.sparse, n_ff);
    std::printf("%-34s %-5s", "form", "type");
    const int t_first = args.sparse_all_threads ? 1 : args.threads;
    for (int t = t_first; t <= args.threads; ++t) std::printf("   %2d thr GB/s (%%bw of read)", t);
    std::printf("\n");
    std::vector<uint32_t> active;
    std::mt19937 rng(23);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    for (uint32_t i = 0; i < n_ff; ++i) {
        if (coin(rng) < args.sparse) active.push_back(i);
    }
    std::vector<std::unique_ptr<ThreadPool>> pools;
    for (int t = 1; t <= args.threads; ++t) pools.push_back(std::make_unique<ThreadPool>(t));
    BandwidthOptions opt;
    opt.buffer_bytes = 256u << 20;
    opt.repeats = 1;
    for (WeightType type : {WeightType::F32, WeightType::F16, WeightType::BF16, WeightType::Q8_0, WeightType::Q4_0}) {
        const bool by_default = type == WeightType::F16 || type == WeightType::Q4_0;
        if (args.types_given ? !args.wants(type) : !by_default) continue;
        const size_t row_bytes = weight_row_bytes(type, n_embd);
        const double bytes = static_cast<double>(3 * active.size() * row_bytes);
        // Layers (copies of all three matrices) enough that the listed rows of all of them exceed the LLC 4 times.
        const size_t layers = std::max<size_t>(2, static_cast<size_t>((128u << 20) / bytes) + 1);
        const Replicated gate = make_replicated(type, n_ff, n_embd, layers * n_ff * row_bytes);
        const Replicated up = make_replicated(type, n_ff, n_embd, layers * n_ff * row_bytes);
        const Replicated down = make_replicated(type, n_ff, n_embd, layers * n_ff * row_bytes);
        const size_t n_layers = std::min({gate.views.size(), up.views.size(), down.views.size()});
        std::vector<float> x(n_embd), y(n_embd), g(active.size()), u(active.size());
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float &v : x) v = normal(rng);
        Q8Activation xq;
        MatvecInput in;
        in.f32 = x.data();
        in.n = n_embd;
        if (weight_type_is_quantized(type)) {
            xq.quantize(x.data(), n_embd, args.isa);
            in.q8 = &xq;
        }
        SparseFfnScratch scratch;
        static const char *const kForms[] = {"sparse_ffn (fused, one pass)", "matvec_rows x2 + axpy_rows",
                                             "read of the same rows (no math)"};
        for (int form = 0; form < 3; ++form) {
            std::printf("%-34s %-5s", kForms[form], weight_type_name(type));
            for (int t = t_first; t <= args.threads; ++t) {
                ThreadPool *pool = pools[static_cast<size_t>(t - 1)].get();
                auto layer = [&](size_t i) {
                    SparseFfnWeights w;
                    w.gate = gate.views[i];
                    w.up = up.views[i];
                    w.down_t = down.views[i];
                    w.activation = FfnActivation::Silu;
                    if (form == 0) {
                        sparse_ffn(w, in, active.data(), active.size(), y.data(), pool, args.isa, scratch);
                        return;
                    }
                    if (form == 2) {
                        read_rows({&w.gate, &w.up, &w.down_t}, active, pool);
                        return;
                    }
                    matvec_rows(w.gate, in, active.data(), active.size(), g.data(), pool, args.isa);
                    matvec_rows(w.up, in, active.data(), active.size(), u.data(), pool, args.isa);
                    for (size_t j = 0; j < g.size(); ++j) g[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
                    axpy_rows(w.down_t, g.data(), active.data(), active.size(), y.data(), pool, args.isa);
                };
                for (size_t i = 0; i < n_layers; ++i) layer(i);  // warm-up
                double best_sec = 1e30, best_bw = 0.0;
                for (int r = 0; r < args.reps; ++r) {
                    best_bw = std::max(best_bw, measure_read_bandwidth(t, pool, args.isa, opt));
                    const auto t0 = Clock::now();
                    for (size_t i = 0; i < n_layers; ++i) layer(i);
                    best_sec = std::min(best_sec, seconds_since(t0) / static_cast<double>(n_layers));
                }
                const double gbps = bytes / best_sec / 1e9;
                std::printf("   %11.2f  (%3.0f%% of %4.1f)", gbps, 100.0 * gbps / best_bw, best_bw);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
}

// One core, rows in L2: 512 KiB of 4096-column rows, each pass over all of them, best of many passes (a pass is
// tens of microseconds, so the best one ran undisturbed).
// The predictor's selection (KernelTable::select_at_least) of bench-7b's 11008 scores, 11.6 % of them at or above the
// threshold at random, scores in L1/L2 (as after fc2): microseconds per call at each level this CPU runs.
void bench_select(const Args &args) {
    const size_t n = 11008;
    std::vector<float> s(n);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> coin(0.0f, 1.0f);
    for (float &v : s) v = coin(rng) < 0.116f ? coin(rng) : -coin(rng);
    std::vector<uint32_t> out(n);
    std::printf("\n== predictor selection, 11008 scores (11.6 %% selected), in cache: us per call ==\n");
    for (IsaLevel level : {IsaLevel::Scalar, IsaLevel::Avx2, IsaLevel::Avx512}) {
        if (level > best_isa_level()) continue;
        const detail::KernelTable &k = detail::kernels(level);
        size_t count = 0;
        double best = 1e30;
        for (int r = 0; r < 5 * args.reps; ++r) {
            const auto t0 = Clock::now();
            for (int i = 0; i < 1000; ++i) count += k.select_at_least(s.data(), n, 0.0f, out.data());
            best = std::min(best, seconds_since(t0) / 1000);
        }
        std::printf("%-7s %6.2f us (%zu selected)\n", isa_level_name(level).c_str(), best * 1e6,
                    count / (5 * size_t(args.reps) * 1000));
    }
}

void bench_hot(const Args &args) {
    const size_t cols = 4096;
    const int passes = 50 * args.reps;
    std::printf("\n== kernels alone, one core, rows in L2 (512 KiB of %zu-column rows): GB/s of weights ==\n", cols);
    std::printf("%-5s %14s %14s\n", "type", "dot rows", "axpy rows");
    for (WeightType type : {WeightType::F32, WeightType::F16, WeightType::F16X8, WeightType::BF16, WeightType::Q8_0,
                            WeightType::Q4_0, WeightType::Q4_0R, WeightType::Q4_0X8}) {
        if (!args.wants(type)) continue;
        const size_t row_bytes = weight_row_bytes(type, cols);
        const size_t group = weight_type_group_rows(type), rows = (512u << 10) / row_bytes / group * group;
        PageBuffer buf(rows * row_bytes);
        fill_random(buf.data, type, rows, cols, 77);
        const WeightMatrix w = make_weight_matrix(buf.data, type, rows, cols);
        std::vector<float> x(cols), y(std::max(rows, cols)), coeff(rows);
        std::mt19937 rng(9);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float &v : x) v = normal(rng);
        for (size_t i = 0; i < rows; ++i) coeff[i] = 0.5f + static_cast<float>(i % 7);
        std::vector<uint32_t> all(rows);
        for (size_t i = 0; i < rows; ++i) all[i] = static_cast<uint32_t>(i);
        Q8Activation xq;
        MatvecInput in;
        in.f32 = x.data();
        in.n = cols;
        if (weight_type_is_quantized(type)) {
            xq.quantize(x.data(), cols, args.isa);
            in.q8 = &xq;
        }
        auto best_gbps = [&](auto &&fn) {
            fn();  // warm-up: rows into L2
            double best = 1e30;
            for (int p = 0; p < passes; ++p) {
                const auto t0 = Clock::now();
                fn();
                best = std::min(best, seconds_since(t0));
            }
            return static_cast<double>(rows * row_bytes) / best / 1e9;
        };
        const double dot = best_gbps([&] { matvec(w, in, 0, rows, y.data(), nullptr, args.isa); });
        const double axpy = best_gbps([&] {
            axpy_rows(w, coeff.data(), all.data(), rows, y.data(), nullptr, args.isa);
        });
        std::printf("%-5s %14.2f %14.2f\n", weight_type_name(type), dot, axpy);
        std::fflush(stdout);
    }
}

void bench_dispatch(const Args &args) {
    std::printf("\n== thread pool dispatch (empty job round trip, %d threads) ==\n", args.threads);
    if (args.threads < 2) {
        std::printf("(needs --threads >= 2)\n");
        return;
    }
    ThreadPool pool(args.threads);
    std::vector<double> hot, cold;
    pool.run([](int) {});
    for (int i = 0; i < 20000; ++i) {
        const auto t0 = Clock::now();
        pool.run([](int) {});
        hot.push_back(seconds_since(t0) * 1e6);
    }
    for (int i = 0; i < 30; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // > spin time: workers are asleep
        const auto t0 = Clock::now();
        pool.run([](int) {});
        cold.push_back(seconds_since(t0) * 1e6);
    }
    std::sort(hot.begin(), hot.end());
    std::sort(cold.begin(), cold.end());
    std::printf("spinning workers: median %.2f us, p99 %.2f us, best %.2f us\n", hot[hot.size() / 2],
                hot[hot.size() * 99 / 100], hot[0]);
    std::printf("sleeping workers: median %.1f us, best %.1f us\n", cold[cold.size() / 2], cold[0]);
}

#if defined(PI_BENCH_ONEDNN)
// oneDNN alone: one matmul over the whole pre-converted matrix, oneDNN's own OpenMP threads.
double onednn_alone(size_t m, size_t k, size_t n, bool bf16, int threads, int reps) {
    using dt = dnnl::memory::data_type;
    const dt t = bf16 ? dt::bf16 : dt::f32;
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream s(eng);
    const auto M = static_cast<dnnl::memory::dim>(m), K = static_cast<dnnl::memory::dim>(k),
               N = static_cast<dnnl::memory::dim>(n);
    dnnl::memory::desc a({M, K}, t, dnnl::memory::format_tag::ab);
    dnnl::memory::desc b({K, N}, t, dnnl::memory::format_tag::ba);  // W as stored: n rows of k
    dnnl::memory::desc c({M, N}, dt::f32, dnnl::memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), eng);
    dnnl::matmul mm(pd);
    dnnl::memory am(a, eng), bm(b, eng), cm(c, eng);
    std::memset(am.get_data_handle(), 0, a.get_size());
    std::memset(bm.get_data_handle(), 0, b.get_size());
    omp_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < reps + 1; ++r) {
        const auto t0 = Clock::now();
        mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
        s.wait();
        if (r > 0) best = std::min(best, seconds_since(t0));
    }
    return 2.0 * static_cast<double>(m * k * n) / best / 1e9;
}
#endif

// The bar of the prefill target: how fast oneDNN alone (f32, pre-converted weights, its own threads) runs the
// matrix products of a bench-7b prefill of M tokens (32 layers of q, k, v, o 4096x4096, gate, up 11008x4096, down
// 4096x11008; the output head for the last token only, as the engine does). Attention, norms and the conversions
// of F16 weights are not in it, so the engine's prefill tok/s over this bound is the fraction the target asks for.
void bench_prefill_bound(const Args &args) {
#if defined(PI_BENCH_ONEDNN)
    const size_t m = static_cast<size_t>(args.prefill_bound);
    const int reps = std::max(2, args.reps / 3);
    struct Shape {
        size_t n, k;
        int per_layer;
    };
    double seconds = 0.0;
    std::printf("\n== oneDNN-alone bound for a bench-7b prefill of %zu tokens, %d threads ==\n", m, args.threads);
    for (const Shape sh : {Shape{4096, 4096, 4}, Shape{11008, 4096, 2}, Shape{4096, 11008, 1}}) {
        const double gflops = onednn_alone(m, sh.k, sh.n, false, args.threads, reps);
        const double t = 2.0 * double(m * sh.k * sh.n) / (gflops * 1e9);
        std::printf("  %5zu x %5zu: %7.1f GFLOP/s, %.3f s per layer\n", sh.n, sh.k, gflops, t * sh.per_layer);
        seconds += 32 * sh.per_layer * t;
    }
    const double head = 2.0 * 32000.0 * 4096.0 / (onednn_alone(1, 4096, 32000, false, args.threads, reps) * 1e9);
    seconds += head;
    std::printf("  total %.2f s: bound %.2f tok/s\n", seconds, double(m) / seconds);
#else
    std::printf("\n(built without oneDNN: no prefill bound)\n");
    (void)args;
#endif
}

void bench_gemm(const Args &args) {
    const size_t k = 4096, n = 11008;
    ThreadPool pool(args.threads);
    std::printf("\n== prefill GEMM Y = X W^T, W %zu x %zu, %d threads (GFLOP/s) ==\n", n, k, args.threads);
    for (size_t m : {size_t{128}, size_t{32}}) {
        std::vector<float> x(m * k);
        std::mt19937 rng(3);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float &v : x) v = normal(rng);
        std::vector<float> y(m * n);
        const int reps = std::max(2, args.reps / 3);
        double alone_f32 = 0.0, alone_bf16 = 0.0;
#if defined(PI_BENCH_ONEDNN)
        alone_f32 = onednn_alone(m, k, n, false, args.threads, reps);
        alone_bf16 = onednn_alone(m, k, n, true, args.threads, reps);
        std::printf("M=%-4zu oneDNN alone (pre-converted W, its own threads): f32 %7.1f   bf16 %7.1f\n", m, alone_f32,
                    alone_bf16);
#else
        std::printf("M=%-4zu (built without oneDNN: no oneDNN-alone baseline)\n", m);
#endif
        const double flop = 2.0 * static_cast<double>(m * k * n);
        GemmOptions fallback_opt;
        fallback_opt.use_onednn = false;
        fallback_opt.isa = args.isa;
        GemmOptions opt;
        opt.isa = args.isa;
        Gemm ours(&pool, opt), fallback(&pool, fallback_opt);
        for (WeightType type :
             {WeightType::F32, WeightType::BF16, WeightType::F16, WeightType::Q8_0, WeightType::Q4_0}) {
            if (!args.wants(type)) continue;
            const Replicated rep = make_replicated(type, n, k, 1);  // 2 copies: W is >= 25 MB, X/Y small
            std::printf("M=%-4zu W %-5s", m, weight_type_name(type));
            for (GemmPrecision prec : {GemmPrecision::F32, GemmPrecision::BF16}) {
                if (!ours.uses_onednn()) break;
                const double sec = best_per_call(
                    rep, reps, [&](const WeightMatrix &w) { ours.multiply(w, x.data(), m, k, y.data(), n, prec); });
                const double gf = flop / sec / 1e9;
                const double base = prec == GemmPrecision::F32 ? alone_f32 : alone_bf16;
                std::printf("   ours %s %7.1f (%3.0f%% of alone)", prec == GemmPrecision::F32 ? "f32 " : "bf16", gf,
                            base > 0 ? 100.0 * gf / base : 0.0);
            }
            const double sec = best_per_call(rep, 1, [&](const WeightMatrix &w) {
                fallback.multiply(w, x.data(), m, k, y.data(), n, GemmPrecision::F32);
            });
            std::printf("   fallback %7.1f", flop / sec / 1e9);
            if (ours.uses_onednn() && m == 128) {
                // BF16 error against the f32 product (W converted exactly), relative L2 over all of Y.
                std::vector<float> y32(m * n), y16(m * n);
                ours.multiply(rep.views[0], x.data(), m, k, y32.data(), n, GemmPrecision::F32);
                ours.multiply(rep.views[0], x.data(), m, k, y16.data(), n, GemmPrecision::BF16);
                double num = 0.0, den = 0.0;
                for (size_t i = 0; i < y32.size(); ++i) {
                    num += (static_cast<double>(y16[i]) - y32[i]) * (static_cast<double>(y16[i]) - y32[i]);
                    den += static_cast<double>(y32[i]) * y32[i];
                }
                std::printf("   bf16 rel. L2 err %.2e", std::sqrt(num / den));
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
}

}  // namespace

int main(int argc, char **argv) {
    const Args args = parse(argc, argv);
    const CpuFeatures &f = cpu_features();
    std::printf(
        "pi-kernel-bench: ISA %s (best %s), AVX512-VNNI %d, AVX512-BF16 %d, AMX %d; %u hardware threads; "
        "load average %.2f\n",
        isa_level_name(args.isa).c_str(), isa_level_name(best_isa_level()).c_str(), f.avx512_vnni, f.avx512_bf16,
        f.amx_tile, std::thread::hardware_concurrency(), load_average());

    std::vector<double> bw;
    std::printf("\n== memory read bandwidth (streaming, best of 5) ==\n");
    for (int t = 1; t <= args.threads; ++t) {
        ThreadPool pool(t);
        bw.push_back(measure_read_bandwidth(t, &pool, args.isa));
        std::printf("%d thread%s: %.2f GB/s\n", t, t > 1 ? "s" : "", bw.back());
    }
    std::fflush(stdout);
    if (args.hot) {
        bench_hot(args);
        bench_select(args);
    }
    if (args.matvec) bench_matvec(args);
    if (args.sparse > 0.0) bench_sparse_ffn(args);
    bench_dispatch(args);
    if (args.gemm) bench_gemm(args);
    if (args.prefill_bound) bench_prefill_bound(args);
    std::printf("\nload average at the end: %.2f\n", load_average());
    return 0;
}
