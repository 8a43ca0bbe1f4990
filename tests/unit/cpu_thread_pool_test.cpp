// The kernels' thread pool: every share runs exactly once per call, the partition is static, nested and concurrent
// calls are safe, exceptions come back to the caller, shutdown is clean. Run under TSan (PI_SANITIZE=thread) too.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "backends/cpu/thread_pool.h"
#include "common/error.h"
#include "cpu_test_helpers.h"

using pi::cpu::ThreadPool;

TEST_CASE("run calls every thread index once, the caller as thread 0", "[cpu]") {
    for (int n : {1, 2, 3, 5}) {
        ThreadPool pool(n);
        REQUIRE(pool.size() == n);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::vector<std::thread::id> who(static_cast<size_t>(n));
        pool.run([&](int t) {
            hits[static_cast<size_t>(t)].fetch_add(1);
            who[static_cast<size_t>(t)] = std::this_thread::get_id();
        });
        for (int t = 0; t < n; ++t) REQUIRE(hits[static_cast<size_t>(t)].load() == 1);
        REQUIRE(who[0] == std::this_thread::get_id());
        for (int t = 1; t < n; ++t) REQUIRE(who[static_cast<size_t>(t)] != std::this_thread::get_id());
    }
}

TEST_CASE("parallel_for covers each task once with a static partition", "[cpu]") {
    ThreadPool pool(3);
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{100}}) {
        std::vector<int> owner(n, -1);
        std::vector<std::atomic<int>> count(n);
        pool.parallel_for(n, [&](size_t task, int t) {
            count[task].fetch_add(1);
            owner[task] = t;
        });
        for (size_t i = 0; i < n; ++i) {
            REQUIRE(count[i].load() == 1);
            // Thread t owns [t * n / 3, (t + 1) * n / 3).
            int want = -1;
            for (size_t t = 0; t < 3; ++t) {
                if (t * n / 3 <= i && i < (t + 1) * n / 3) want = static_cast<int>(t);
            }
            REQUIRE(owner[i] == want);
        }
    }
}

TEST_CASE("many back-to-back dispatches lose no work", "[cpu]") {
    ThreadPool pool(4, /*spin_us=*/50);
    std::atomic<long> sum{0};
    for (int i = 0; i < 3000; ++i) {
        pool.parallel_for(8, [&](size_t task, int) { sum.fetch_add(static_cast<long>(task) + 1); });
        if (i % 1000 == 999) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let workers fall asleep
    }
    REQUIRE(sum.load() == 3000L * 36);
}

TEST_CASE("a nested call runs inline, a failing share rethrows on the caller", "[cpu]") {
    ThreadPool pool(2);
    std::atomic<int> inner{0};
    pool.run([&](int) { pool.run([&](int) { inner.fetch_add(1); }); });
    REQUIRE(inner.load() == 4);  // each of the 2 outer shares ran both inner shares itself

    REQUIRE_THROWS_AS(pool.run([&](int t) {
        if (t == 1) throw pi::Error(PI_ERR_INTERNAL, "share 1 failed");
    }),
                      pi::Error);
    REQUIRE_THROWS_AS(pool.run([&](int t) {
        if (t == 0) throw std::runtime_error("caller share failed");
    }),
                      std::runtime_error);
    // Still usable afterwards.
    std::atomic<int> after{0};
    pool.run([&](int) { after.fetch_add(1); });
    REQUIRE(after.load() == 2);
}

TEST_CASE("two threads sharing one pool both get correct results", "[cpu]") {
    ThreadPool pool(2);
    std::atomic<long> a{0}, b{0};
    auto user = [&](std::atomic<long> &acc) {
        for (int i = 0; i < 500; ++i)
            pool.parallel_for(10, [&](size_t task, int) { acc.fetch_add(static_cast<long>(task)); });
    };
    std::thread other([&] { user(b); });
    user(a);
    other.join();
    REQUIRE(a.load() == 500L * 45);
    REQUIRE(b.load() == 500L * 45);
}

TEST_CASE("a pool starts and stops cleanly, also without ever running a job", "[cpu]") {
    for (int i = 0; i < 20; ++i) {
        ThreadPool pool(3, i % 2 ? 0 : 100);
        if (i % 3 == 0) pool.run([](int) {});
    }
    REQUIRE_THROWS_AS(ThreadPool(0), pi::Error);
}

// Dispatch latency is measured by pi-kernel-bench (unit tests make no timing assertions).
