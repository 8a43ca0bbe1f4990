#include "backends/cpu/sparse_ffn.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "backends/cpu/isa_kernels.h"
#include "common/error.h"

namespace pi::cpu {
namespace {

// Below this many weight bytes the call runs on the calling thread in one chunk (as matvec: waking the workers
// would cost more than the work).
constexpr size_t kMinParallelBytes = 64 * 1024;
// Compile-time knobs, for tuning on other machines (as PI_CPU_PREFETCH_BYTES).
#ifndef PI_SPARSE_MIN_CHUNK_BYTES
#define PI_SPARSE_MIN_CHUNK_BYTES (128 * 1024)
#endif
#ifndef PI_SPARSE_CHUNKS_PER_THREAD
#define PI_SPARSE_CHUNKS_PER_THREAD 4
#endif
// A chunk reads at least this much (when the list has enough): each chunk pays a prefetch ramp at the start of each
// of its three row streams and a partial sum of n_out floats (zeroing it, reducing it), both small against 128 KiB.
constexpr size_t kMinChunkBytes = PI_SPARSE_MIN_CHUNK_BYTES;
// Chunks per thread: enough that the thread that drew the slow core or the densest chunk does not hold the others
// up for long (dynamic hand-out), few enough that the partials stay small (64 chunks of 4096 floats = 1 MiB at 16
// threads).
constexpr size_t kChunksPerThread = PI_SPARSE_CHUNKS_PER_THREAD;
// Partials reduced on several threads only above this many bytes (a second dispatch costs a few microseconds).
constexpr size_t kMinParallelReduceBytes = 256 * 1024;
// Partial rows are padded to whole cache lines; column splits of the reduction start on them.
constexpr size_t kColumnAlign = 16;

bool has_gate(FfnActivation act) { return act != FfnActivation::Relu; }
// Activations where a gate <= 0 forces a = 0, so the up row need not be read.
bool gate_can_zero(FfnActivation act) { return act == FfnActivation::Reglu || act == FfnActivation::Drelu; }

void check_x(const WeightMatrix &w, const MatvecInput &x, const char *what, const char *matrix) {
    if (x.n != w.n_cols) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": x has " + std::to_string(x.n) + " values, the " +
                                          matrix + " rows " + std::to_string(w.n_cols));
    }
    if (weight_type_is_quantized(w.type)) {
        if (!x.q8 || x.q8->size() != w.n_cols) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": " + weight_type_name(w.type) + " " + matrix +
                                              " weights need x quantized (Q8Activation) to " +
                                              std::to_string(w.n_cols) + " values");
        }
    } else if (!x.f32 && w.n_cols > 0) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": x is missing");
    }
}

// Everything the kernels trust, checked before any work.
void check_ffn(const SparseFfnWeights &w, const MatvecInput &x, const uint32_t *rows, size_t n, bool need_down,
               const char *what) {
    const auto act = static_cast<uint32_t>(w.activation);
    if (act > static_cast<uint32_t>(FfnActivation::Relu)) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": unknown activation " + std::to_string(act));
    }
    check_weight_matrix(w.up, what);
    check_x(w.up, x, what, "up");
    if (has_gate(w.activation)) {
        if (!w.gate.data && w.up.n_rows > 0) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": this activation needs a gate matrix");
        }
        check_weight_matrix(w.gate, what);
        if (w.gate.n_rows != w.up.n_rows || w.gate.n_cols != w.up.n_cols) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": gate is " + std::to_string(w.gate.n_rows) + " x " +
                                              std::to_string(w.gate.n_cols) + ", up " + std::to_string(w.up.n_rows) +
                                              " x " + std::to_string(w.up.n_cols));
        }
        check_x(w.gate, x, what, "gate");
    }
    if (need_down) {
        check_weight_matrix(w.down_t, what);
        if (w.down_t.n_rows != w.up.n_rows) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": down_t has " + std::to_string(w.down_t.n_rows) +
                                              " rows (one per neuron), up " + std::to_string(w.up.n_rows));
        }
    }
    if (n > 0 && !rows) fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": the neuron list is missing");
    for (size_t i = 0; i < n; ++i) {
        if (rows[i] >= w.up.n_rows) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": neuron " + std::to_string(rows[i]) + " at " +
                                              std::to_string(i) + " is out of range (" + std::to_string(w.up.n_rows) +
                                              " neurons)");
        }
    }
}

float activate(FfnActivation act, float g, float u) {
    switch (act) {
        case FfnActivation::Silu: return g / (1.0f + std::exp(-g)) * u;
        case FfnActivation::Reglu: return g > 0.0f ? g * u : 0.0f;
        case FfnActivation::Drelu: return g > 0.0f && u > 0.0f ? g * u : 0.0f;
        case FfnActivation::Relu: return u > 0.0f ? u : 0.0f;
    }
    return 0.0f;
}

// Prefetches the first ~kPrefetchBytes of the rows a kernel call is about to stream, issued one call ahead, so that
// call does not start on a cold stream (the kernels prefetch only within their own list, from its second group on).
void prefetch_head(const WeightMatrix &w, const uint32_t *rows, size_t n) {
    const size_t row_bytes = weight_row_bytes(w.type, w.n_cols);
    size_t budget = detail::kPrefetchBytes;
    for (size_t i = 0; i < n && budget > 0; ++i) {
        const uint8_t *p = w.row(rows[i]);
        const size_t bytes = std::min(row_bytes, budget);
        for (size_t off = 0; off < bytes; off += 64) detail::prefetch_line(p + off);
        budget -= bytes;
    }
}

struct Call {
    const SparseFfnWeights &w;
    const MatvecInput &x;
    const uint32_t *rows;
    size_t n;
    size_t n_chunks;
    const detail::KernelTable &k;

    size_t chunk_begin(size_t c) const { return n * c / n_chunks; }
    size_t max_chunk_rows() const { return (n + n_chunks - 1) / n_chunks; }

    // The first rows the chunk will stream: gate rows, or up rows when there is no gate.
    void prefetch_chunk(size_t c) const {
        if (c >= n_chunks) return;
        const size_t b = chunk_begin(c), e = chunk_begin(c + 1);
        prefetch_head(has_gate(w.activation) ? w.gate : w.up, rows + b, e - b);
    }

    // Activations of the chunk's neurons into a[0 .. end - begin). With `partial`, then adds their down rows into it
    // (partial[c] += a * down_t[r][c], list order, zeros skipped). `claim` is called once, before the down rows,
    // and returns the chunk this thread will run next, whose first rows are then prefetched.
    template <typename Claim>
    void run(size_t c, float *a, float *partial, SparseFfnScratch::Thread &ts, Claim &&claim) const {
        const size_t begin = chunk_begin(c), m = chunk_begin(c + 1) - begin;
        const uint32_t *r = rows + begin;
        const FfnActivation act = w.activation;

        // 1. Gate dots (into a, overwritten below), and the neurons the gate leaves alive.
        const uint32_t *alive_rows = r;
        const uint32_t *alive_pos = nullptr;  // nullptr: every position, in order
        size_t alive = m;
        if (has_gate(act)) {
            prefetch_head(w.up, r, m);
            k.dot_rows(w.gate, x.f32, x.q8, r, 0, m, a);
            ts.read.gate += m;
            if (gate_can_zero(act)) {
                alive = 0;
                for (size_t j = 0; j < m; ++j) {
                    if (a[j] > 0.0f) {
                        ts.rows.data()[alive] = r[j];
                        ts.pos.data()[alive] = static_cast<uint32_t>(j);
                        ++alive;
                    } else {
                        a[j] = 0.0f;
                    }
                }
                if (alive < m) {
                    alive_rows = ts.rows.data();
                    alive_pos = ts.pos.data();
                }
            }
        }

        // 2. Up dots of the survivors, then their activations.
        if (partial) prefetch_head(w.down_t, alive_rows, alive);
        float *u = ts.up.data();
        k.dot_rows(w.up, x.f32, x.q8, alive_rows, 0, alive, u);
        ts.read.up += alive;
        for (size_t i = 0; i < alive; ++i) {
            const size_t j = alive_pos ? alive_pos[i] : i;
            const float uv = w.up_bias ? u[i] + w.up_bias[alive_rows[i]] : u[i];
            a[j] = activate(act, has_gate(act) ? a[j] : 0.0f, uv);
        }

        // 3. Down rows of the neurons with a != 0, in list order.
        const size_t next = claim();
        if (!partial) return;
        size_t live = 0;
        for (size_t j = 0; j < m; ++j) {
            if (a[j] != 0.0f) {
                ts.rows.data()[live] = r[j];
                ts.coeff.data()[live] = a[j];
                ++live;
            }
        }
        prefetch_chunk(next);
        ts.read.down += live;
        if (live > 0) k.axpy_rows(w.down_t, ts.coeff.data(), ts.rows.data(), live, 0, w.down_t.n_cols, partial);
    }
};

size_t row_bytes_of(const WeightMatrix &m) { return m.data ? weight_row_bytes(m.type, m.n_cols) : 0; }

// The chunk count: a function of n, the pool size and the bytes per neuron only (so results are reproducible).
size_t chunk_count(const SparseFfnWeights &w, size_t n, const ThreadPool *pool, bool with_down) {
    if (n == 0) return 0;
    const size_t per_row = (has_gate(w.activation) ? row_bytes_of(w.gate) : 0) + row_bytes_of(w.up) +
                           (with_down ? row_bytes_of(w.down_t) : 0);
    const size_t total = n * per_row;
    const size_t threads = pool ? static_cast<size_t>(pool->size()) : 1;
    if (threads <= 1 || total < kMinParallelBytes) return 1;
    size_t chunks = std::min(threads * kChunksPerThread, total / kMinChunkBytes);
    chunks = std::min(chunks, n);
    return std::max<size_t>(1, chunks);
}

void reserve_threads(SparseFfnScratch &s, size_t threads, size_t rows) {
    if (s.threads.size() < threads) s.threads.resize(threads);
    for (size_t t = 0; t < threads; ++t) {
        SparseFfnScratch::Thread &ts = s.threads[t];
        ts.up.reserve(rows);
        ts.a.reserve(rows);
        ts.rows.reserve(rows);
        ts.pos.reserve(rows);
        ts.coeff.reserve(rows);
        ts.read = {};
    }
}

// Sums the threads' row counts into s.last_read (after a call: each thread's counts are its chunks').
void collect_rows_read(SparseFfnScratch &s, size_t threads) {
    s.last_read = {};
    for (size_t t = 0; t < threads; ++t) {
        const SparseFfnScratch::RowsRead &r = s.threads[t].read;
        s.last_read.gate += r.gate;
        s.last_read.up += r.up;
        s.last_read.down += r.down;
    }
}

// Runs every chunk: the caller alone when there is one, else handed out in order to whichever thread is free.
template <typename Body>
void run_chunks(ThreadPool *pool, size_t n_chunks, Body &&body) {
    // body calls claim exactly once per chunk; claim advances this thread's loop to the chunk it returns.
    if (n_chunks == 1 || !pool) {
        size_t c = 0;
        while (c < n_chunks) body(c, 0, [&] { return ++c; });
        return;
    }
    std::atomic<size_t> next{0};
    pool->run([&](int t) {
        size_t c = next.fetch_add(1, std::memory_order_relaxed);
        auto claim = [&] { return c = next.fetch_add(1, std::memory_order_relaxed); };
        while (c < n_chunks) body(c, static_cast<size_t>(t), claim);
    });
}

// y[c] = y[c] + (((p_0[c] + p_1[c]) + ...) + p_{K-1}[c]) for c in [c0, c1).
void reduce_columns(const float *partials, size_t ld, size_t n_chunks, size_t c0, size_t c1, float *y) {
    constexpr size_t kTile = 64;
    float s[kTile];
    for (size_t t0 = c0; t0 < c1; t0 += kTile) {
        const size_t w = std::min(kTile, c1 - t0);
        for (size_t i = 0; i < w; ++i) s[i] = partials[t0 + i];
        for (size_t k = 1; k < n_chunks; ++k) {
            const float *p = partials + k * ld + t0;
            for (size_t i = 0; i < w; ++i) s[i] += p[i];
        }
        for (size_t i = 0; i < w; ++i) y[t0 + i] += s[i];
    }
}

}  // namespace

void ffn_activations_rows(const SparseFfnWeights &w, const MatvecInput &x, const uint32_t *rows, size_t n, float *a,
                          ThreadPool *pool, IsaLevel isa, SparseFfnScratch &scratch) {
    check_ffn(w, x, rows, n, /*need_down=*/false, "ffn_activations_rows");
    if (n > 0 && !a) fail(PI_ERR_INVALID_ARGUMENT, "ffn_activations_rows: a is missing");
    const detail::KernelTable &k = detail::kernels(isa);
    scratch.last_read = {};
    if (n == 0) return;
    const size_t n_chunks = chunk_count(w, n, pool, false);
    const Call call{w, x, rows, n, n_chunks, k};
    const size_t threads = n_chunks > 1 ? static_cast<size_t>(pool->size()) : 1;
    reserve_threads(scratch, threads, call.max_chunk_rows());
    run_chunks(pool, n_chunks, [&](size_t c, size_t t, auto &&claim) {
        call.run(c, a + call.chunk_begin(c), nullptr, scratch.threads[t], claim);
    });
    collect_rows_read(scratch, threads);
}

void sparse_ffn(const SparseFfnWeights &w, const MatvecInput &x, const uint32_t *rows, size_t n, float *y,
                ThreadPool *pool, IsaLevel isa, SparseFfnScratch &scratch) {
    check_ffn(w, x, rows, n, /*need_down=*/true, "sparse_ffn");
    const size_t n_out = w.down_t.n_cols;
    if (n > 0 && n_out > 0 && !y) fail(PI_ERR_INVALID_ARGUMENT, "sparse_ffn: y is missing");
    const detail::KernelTable &k = detail::kernels(isa);
    scratch.last_read = {};
    if (n == 0 || n_out == 0) return;

    const size_t n_chunks = chunk_count(w, n, pool, true);
    const Call call{w, x, rows, n, n_chunks, k};
    const size_t threads = n_chunks > 1 ? static_cast<size_t>(pool->size()) : 1;
    reserve_threads(scratch, threads, call.max_chunk_rows());
    const size_t ld = (n_out + kColumnAlign - 1) / kColumnAlign * kColumnAlign;
    scratch.partials.reserve(n_chunks * ld);
    float *partials = scratch.partials.data();

    run_chunks(pool, n_chunks, [&](size_t c, size_t t, auto &&claim) {
        float *p = partials + c * ld;
        std::fill(p, p + n_out, 0.0f);
        SparseFfnScratch::Thread &ts = scratch.threads[t];
        call.run(c, ts.a.data(), p, ts, claim);
    });
    collect_rows_read(scratch, threads);

    // Fixed-order reduction; split over columns (never over chunks) when it is large enough to be worth a dispatch.
    const size_t units = ld / kColumnAlign;
    size_t red_threads = 1;
    if (pool && n_chunks * n_out * sizeof(float) >= kMinParallelReduceBytes) {
        red_threads = std::min(units, static_cast<size_t>(pool->size()));
    }
    if (red_threads <= 1) {
        reduce_columns(partials, ld, n_chunks, 0, n_out, y);
        return;
    }
    pool->run([&](int t) {
        const size_t ti = static_cast<size_t>(t);
        if (ti >= red_threads) return;
        const size_t c0 = units * ti / red_threads * kColumnAlign;
        const size_t c1 = std::min(n_out, units * (ti + 1) / red_threads * kColumnAlign);
        if (c0 < c1) reduce_columns(partials, ld, n_chunks, c0, c1, y);
    });
}

}  // namespace pi::cpu
