#include "backends/cpu/thread_pool.h"

#include <chrono>
#include <string>

#include "common/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PI_CPU_RELAX() _mm_pause()
#else
#define PI_CPU_RELAX() std::this_thread::yield()
#endif

namespace pi::cpu {
namespace {

// The pool whose job this thread is running (nullptr outside jobs): a nested call must not wait for workers that
// are busy with the outer job.
thread_local const ThreadPool *t_running_pool = nullptr;

}  // namespace

ThreadPool::ThreadPool(int n_threads, int spin_us) : n_threads_(n_threads), spin_us_(spin_us < 0 ? 0 : spin_us) {
    if (n_threads < 1)
        fail(PI_ERR_INVALID_ARGUMENT, "a thread pool needs at least 1 thread, got " + std::to_string(n_threads));
    workers_.reserve(static_cast<size_t>(n_threads - 1));
    try {
        for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker_main(t); });
    } catch (...) {
        stop_.store(true);
        { std::lock_guard<std::mutex> lock(mutex_); }
        wake_.notify_all();
        for (auto &w : workers_) w.join();
        throw;
    }
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_seq_cst);
    {
        // Taking the mutex orders the store before any sleeper's predicate check.
        std::lock_guard<std::mutex> lock(mutex_);
    }
    wake_.notify_all();
    for (auto &w : workers_) w.join();
}

void ThreadPool::run_job(int thread) {
    const ThreadPool *outer = t_running_pool;
    t_running_pool = this;
    try {
        job_fn_(job_ctx_, thread);
    } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
    t_running_pool = outer;
}

void ThreadPool::dispatch(JobFn fn, void *ctx) {
    bool expected = false;
    if (n_threads_ == 1 || t_running_pool == this ||
        !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        // Single thread, nested inside one of our own jobs, or another caller has the workers: run every share
        // here, in order.
        for (int t = 0; t < n_threads_; ++t) fn(ctx, t);
        return;
    }
    struct Release {
        std::atomic<bool> &busy;
        ~Release() { busy.store(false, std::memory_order_release); }
    } release{busy_};
    job_fn_ = fn;
    job_ctx_ = ctx;
    error_ = nullptr;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    // seq_cst pairs with the sleepers' seq_cst increment: either we see a sleeper, or it sees the new generation.
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        wake_.notify_all();
    }
    run_job(0);
    // The other shares usually finish within microseconds of ours; after a while, yield the core instead.
    for (unsigned spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
        if (spins < 20000)
            PI_CPU_RELAX();
        else
            std::this_thread::yield();
    }
    job_fn_ = nullptr;
    job_ctx_ = nullptr;
    if (error_) {
        std::exception_ptr e = error_;
        error_ = nullptr;
        std::rethrow_exception(e);
    }
}

void ThreadPool::worker_main(int thread) {
    uint64_t seen = 0;
    const auto spin_for = std::chrono::microseconds(spin_us_);
    while (true) {
        // Spin: the next job of a decode step normally comes within microseconds.
        uint64_t gen = generation_.load(std::memory_order_acquire);
        if (gen == seen && !stop_.load(std::memory_order_relaxed)) {
            const auto start = std::chrono::steady_clock::now();
            unsigned spins = 0;
            while ((gen = generation_.load(std::memory_order_acquire)) == seen &&
                   !stop_.load(std::memory_order_relaxed)) {
                PI_CPU_RELAX();
                if ((++spins & 255) == 0 && std::chrono::steady_clock::now() - start > spin_for) break;
            }
        }
        if (gen == seen && !stop_.load(std::memory_order_relaxed)) {
            std::unique_lock<std::mutex> lock(mutex_);
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            wake_.wait(lock, [&] {
                return generation_.load(std::memory_order_seq_cst) != seen || stop_.load(std::memory_order_seq_cst);
            });
            sleepers_.fetch_sub(1, std::memory_order_relaxed);
            gen = generation_.load(std::memory_order_acquire);
        }
        if (stop_.load(std::memory_order_acquire)) return;
        seen = gen;
        run_job(thread);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace pi::cpu
