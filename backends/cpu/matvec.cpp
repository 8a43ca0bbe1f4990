#include "backends/cpu/matvec.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/row_shares.h"
#include "common/error.h"

namespace pi::cpu {
namespace {

// Below this many weight bytes a product runs on the calling thread: waking the workers would cost more than the
// work (a 64 KiB row range streams in about 3 us at 20 GB/s, about the dispatch latency).
constexpr size_t kMinParallelBytes = 64 * 1024;
// Threads take half of what a share (row_shares.h) has left at a time, at most the first and at least the second
// many bytes: the first bounds how much a thread commits to at once, the second keeps a chunk long against the
// kernels' prefetch ramp at its start.
constexpr size_t kChunkBytes = 1024 * 1024;
constexpr size_t kMinChunkBytes = 96 * 1024;
constexpr size_t kMaxBatchJobs = 8;

// Column chunks of axpy_rows start at multiples of this many columns: whole Q8_0/Q4_0 blocks, whole cache lines of y.
constexpr size_t kAxpyColumnAlign = 64;

void check_input(const WeightMatrix &w, const MatvecInput &x, const char *what) {
    check_weight_matrix(w, what);
    if (x.n != w.n_cols) {
        fail(PI_ERR_INVALID_ARGUMENT,
             std::string(what) + ": x has " + std::to_string(x.n) + " values, the rows " + std::to_string(w.n_cols));
    }
    if (weight_type_is_quantized(w.type)) {
        if (!x.q8 || x.q8->size() != w.n_cols) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": " + weight_type_name(w.type) +
                                              " weights need x quantized (Q8Activation) to " +
                                              std::to_string(w.n_cols) + " values");
        }
    } else if (!x.f32 && w.n_cols > 0) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": x is missing");
    }
}

void check_rows(const WeightMatrix &w, const uint32_t *rows, size_t n, const char *what) {
    if (n > 0 && !rows) fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": the row list is missing");
    for (size_t i = 0; i < n; ++i) {
        if (rows[i] >= w.n_rows) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": row index " + std::to_string(rows[i]) + " at " +
                                              std::to_string(i) + " is out of range (" + std::to_string(w.n_rows) +
                                              " rows)");
        }
    }
}

size_t threads_for(const ThreadPool *pool, size_t bytes) {
    if (!pool || bytes < kMinParallelBytes) return 1;
    return static_cast<size_t>(pool->size());
}

// The row split of one product: shares, taken in chunks of kMinChunkBytes to kChunkBytes (in rows of row_bytes).
// Chunks of a range are whole multiples of `align` rows (the last one excepted): F16X8 and Q4_0X8 matrices are read
// eight rows at a time (rows_per_group).
size_t min_chunk_rows(size_t row_bytes) { return kMinChunkBytes / std::max<size_t>(1, row_bytes); }
size_t max_chunk_rows(size_t row_bytes) { return kChunkBytes / std::max<size_t>(1, row_bytes); }

// Rows a dot kernel reads together in a range: 8 for F16X8 and Q4_0X8, else 1.
size_t rows_per_group(const WeightMatrix &w) { return weight_type_group_rows(w.type); }

template <typename Body>
void split_rows(ThreadPool *pool, size_t n, size_t n_threads, size_t row_bytes, Body &&body, size_t align = 1) {
    if (n_threads <= 1 || n < 2) {
        body(size_t{0}, n);
        return;
    }
    RowShares shares(n, n_threads, min_chunk_rows(row_bytes), max_chunk_rows(row_bytes), align);
    pool->run([&](int t) {
        size_t begin = 0, end = 0;
        while (shares.next(static_cast<size_t>(t), begin, end)) body(begin, end);
    });
}

}  // namespace

void matvec(const WeightMatrix &w, const MatvecInput &x, size_t r0, size_t r1, float *y, ThreadPool *pool,
            IsaLevel isa) {
    check_input(w, x, "matvec");
    if (r0 > r1 || r1 > w.n_rows) {
        fail(PI_ERR_INVALID_ARGUMENT, "matvec: row range [" + std::to_string(r0) + ", " + std::to_string(r1) +
                                          ") is not within " + std::to_string(w.n_rows) + " rows");
    }
    const size_t n = r1 - r0;
    if (n == 0) return;
    if (!y) fail(PI_ERR_INVALID_ARGUMENT, "matvec: y is missing");
    const detail::KernelTable &k = detail::kernels(isa);
    const size_t row_bytes = weight_row_bytes(w.type, w.n_cols);
    const size_t n_threads = threads_for(pool, n * row_bytes);
    split_rows(
        pool, n, n_threads, row_bytes,
        [&](size_t begin, size_t end) { k.dot_rows(w, x.f32, x.q8, nullptr, r0 + begin, end - begin, y + begin); },
        r0 % rows_per_group(w) == 0 ? rows_per_group(w) : 1);
}

void matvec_batch(const MatvecJob *jobs, size_t n_jobs, ThreadPool *pool, IsaLevel isa) {
    size_t total_bytes = 0;
    for (size_t j = 0; j < n_jobs; ++j) {
        check_input(*jobs[j].w, jobs[j].x, "matvec_batch");
        if (!jobs[j].y && jobs[j].w->n_rows > 0) fail(PI_ERR_INVALID_ARGUMENT, "matvec_batch: y is missing");
        total_bytes += jobs[j].w->n_rows * weight_row_bytes(jobs[j].w->type, jobs[j].w->n_cols);
    }
    const detail::KernelTable &k = detail::kernels(isa);
    const size_t n_threads = threads_for(pool, total_bytes);
    // One dispatch for all products: each job's rows are split in shares of their own, taken in job order, so a
    // thread that finds nothing left of one matrix goes on with the next instead of waiting at a barrier.
    if (n_jobs > kMaxBatchJobs) {
        fail(PI_ERR_INVALID_ARGUMENT, "matvec_batch: at most " + std::to_string(kMaxBatchJobs) + " products");
    }
    std::optional<RowShares> shares[kMaxBatchJobs];
    for (size_t j = 0; j < n_jobs; ++j) {
        const size_t row_bytes = weight_row_bytes(jobs[j].w->type, jobs[j].w->n_cols);
        shares[j].emplace(jobs[j].w->n_rows, n_threads, min_chunk_rows(row_bytes), max_chunk_rows(row_bytes),
                          rows_per_group(*jobs[j].w));
    }
    auto work = [&](int t) {
        for (size_t j = 0; j < n_jobs; ++j) {
            const MatvecJob &job = jobs[j];
            size_t begin = 0, end = 0;
            while (shares[j]->next(static_cast<size_t>(t), begin, end)) {
                k.dot_rows(*job.w, job.x.f32, job.x.q8, nullptr, begin, end - begin, job.y + begin);
            }
        }
    };
    if (n_threads <= 1) work(0);
    else pool->run(work);
}

void matvec_rows(const WeightMatrix &w, const MatvecInput &x, const uint32_t *rows, size_t n_rows, float *y,
                 ThreadPool *pool, IsaLevel isa) {
    check_input(w, x, "matvec_rows");
    check_rows(w, rows, n_rows, "matvec_rows");
    if (n_rows == 0) return;
    if (!y) fail(PI_ERR_INVALID_ARGUMENT, "matvec_rows: y is missing");
    const detail::KernelTable &k = detail::kernels(isa);
    const size_t row_bytes = weight_row_bytes(w.type, w.n_cols);
    const size_t n_threads = threads_for(pool, n_rows * row_bytes);
    split_rows(pool, n_rows, n_threads, row_bytes,
               [&](size_t begin, size_t end) { k.dot_rows(w, x.f32, x.q8, rows + begin, 0, end - begin, y + begin); });
}

void axpy_rows(const WeightMatrix &wt, const float *a, const uint32_t *rows, size_t n, float *y, ThreadPool *pool,
               IsaLevel isa) {
    check_weight_matrix(wt, "axpy_rows");
    if (n > 0 && !a) fail(PI_ERR_INVALID_ARGUMENT, "axpy_rows: the coefficients are missing");
    if (rows) {
        check_rows(wt, rows, n, "axpy_rows");
    } else if (n > wt.n_rows) {
        fail(PI_ERR_INVALID_ARGUMENT,
             "axpy_rows: " + std::to_string(n) + " coefficients for " + std::to_string(wt.n_rows) + " rows");
    }
    if (n == 0 || wt.n_cols == 0) return;
    if (!y) fail(PI_ERR_INVALID_ARGUMENT, "axpy_rows: y is missing");
    const detail::KernelTable &k = detail::kernels(isa);

    // Drop zero coefficients once, here, rather than in every thread. ReLU-family activations make many exact zeros.
    thread_local std::vector<uint32_t> live_rows;
    thread_local std::vector<float> live_a;
    live_rows.clear();
    live_a.clear();
    for (size_t i = 0; i < n; ++i) {
        if (a[i] != 0.0f) {
            live_rows.push_back(rows ? rows[i] : static_cast<uint32_t>(i));
            live_a.push_back(a[i]);
        }
    }
    const size_t live = live_rows.size();
    if (live == 0) return;

    const size_t n_cols = wt.n_cols;
    const size_t n_units = (n_cols + kAxpyColumnAlign - 1) / kAxpyColumnAlign;
    size_t n_threads = threads_for(pool, live * weight_row_bytes(wt.type, n_cols));
    if (n_threads > n_units) n_threads = n_units;
    const uint32_t *r = live_rows.data();
    const float *av = live_a.data();
    auto columns = [&](size_t t) {
        const size_t c0 = n_units * t / n_threads * kAxpyColumnAlign;
        size_t c1 = n_units * (t + 1) / n_threads * kAxpyColumnAlign;
        if (c1 > n_cols) c1 = n_cols;
        if (c0 < c1) k.axpy_rows(wt, av, r, live, c0, c1, y);
    };
    if (n_threads <= 1) {
        columns(0);
    } else {
        pool->run([&](int t) {
            if (static_cast<size_t>(t) < n_threads) columns(static_cast<size_t>(t));
        });
    }
}

}  // namespace pi::cpu
