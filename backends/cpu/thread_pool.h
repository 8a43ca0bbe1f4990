// A fixed set of persistent worker threads for the CPU kernels.
//
// Decode calls the pool about ten times per layer per token (some 300-600 dispatches per token), each for well
// under a millisecond of work, so dispatch must cost a few microseconds at most: workers spin on a generation counter
// for a short while after each job (about spin_us), then sleep on a condition variable; the caller runs share 0
// itself and spins for the others. Work is split statically (thread t always gets the same share of the same
// call), so any result that depends on the split is still reproducible for a fixed thread count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace pi::cpu {

class ThreadPool {
public:
    // n_threads >= 1 counts the calling thread: n_threads - 1 workers are started. spin_us: how long an idle worker
    // polls for the next job before it sleeps.
    explicit ThreadPool(int n_threads, int spin_us = 200);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }

    // Runs fn(t) once on each thread t in [0, size()) (t = 0 on the caller) and returns when all are done. If fn
    // throws, the first exception is rethrown here after every thread has finished. A call made from inside a job
    // (nested), or while another thread is using the pool, runs fn for every t on the calling thread, in order: the
    // results are the same, only slower. One caller at a time is the intended use (a pool per session).
    template <typename F>
    void run(F &&fn) {
        using Fn = std::remove_reference_t<F>;
        dispatch([](void *ctx, int t) { (*static_cast<Fn *>(ctx))(t); }, &fn);
    }

    // Static partition of n_tasks over the threads: thread t runs tasks [t * n / T, (t + 1) * n / T) in increasing
    // order, calling fn(task, t). Threads with no task return at once.
    template <typename F>
    void parallel_for(size_t n_tasks, F &&fn) {
        const size_t n_threads = static_cast<size_t>(n_threads_);
        run([&](int t) {
            const size_t begin = n_tasks * static_cast<size_t>(t) / n_threads;
            const size_t end = n_tasks * static_cast<size_t>(t + 1) / n_threads;
            for (size_t task = begin; task < end; ++task) fn(task, t);
        });
    }

private:
    using JobFn = void (*)(void *ctx, int thread);

    void dispatch(JobFn fn, void *ctx);
    void worker_main(int thread);
    void run_job(int thread);

    const int n_threads_;
    const int spin_us_;
    std::vector<std::thread> workers_;

    // The current job: written by the caller before it bumps generation_ (release), read by workers after they see
    // the new generation (acquire).
    JobFn job_fn_ = nullptr;
    void *job_ctx_ = nullptr;

    alignas(64) std::atomic<uint64_t> generation_{0};
    alignas(64) std::atomic<int> pending_{0};  // workers still running the current job
    alignas(64) std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    std::atomic<bool> busy_{false};  // a caller is inside dispatch()
    std::mutex mutex_;
    std::condition_variable wake_;

    std::mutex error_mutex_;
    std::exception_ptr error_;
};

}  // namespace pi::cpu
