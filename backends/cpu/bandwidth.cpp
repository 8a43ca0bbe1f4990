#include "backends/cpu/bandwidth.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"

namespace pi::cpu {
namespace {

size_t default_buffer_bytes() {
    long llc = 0;
#if defined(_SC_LEVEL3_CACHE_SIZE)
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    if (llc <= 0) llc = 64L << 20;
    const size_t eight_llc = 8 * static_cast<size_t>(llc);
    return eight_llc > (512u << 20) ? eight_llc : (512u << 20);
}

}  // namespace

double measure_read_bandwidth(int n_threads, ThreadPool *pool, IsaLevel isa, const BandwidthOptions &options) {
    std::unique_ptr<ThreadPool> own;
    if (!pool) {
        own = std::make_unique<ThreadPool>(n_threads);
        pool = own.get();
    }
    const size_t threads = static_cast<size_t>(pool->size());
    const detail::KernelTable &k = detail::kernels(isa);
    // Each thread's share is a whole number of 4 KiB pages, so shares never split a cache line or page.
    size_t bytes = options.buffer_bytes ? options.buffer_bytes : default_buffer_bytes();
    const size_t share = bytes / threads / 4096 * 4096;
    if (share == 0) fail(PI_ERR_INVALID_ARGUMENT, "measure_read_bandwidth: buffer too small");
    bytes = share * threads;
    AlignedBuffer<uint8_t> buf(bytes);
    // Touch every page from the thread that will read it (first-touch NUMA placement) with a pattern that sums to
    // something finite.
    pool->run([&](int t) { std::memset(buf.data() + share * static_cast<size_t>(t), 0, share); });

    double best = 0.0;
    float sink[64] = {};
    for (int rep = 0; rep < (options.repeats > 0 ? options.repeats : 1); ++rep) {
        const auto start = std::chrono::steady_clock::now();
        pool->run([&](int t) { sink[t % 64] += k.read_sum(buf.data() + share * static_cast<size_t>(t), share); });
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double gbps = static_cast<double>(bytes) / seconds / 1e9;
        if (gbps > best) best = gbps;
    }
    // Make the sums observable so the reads cannot be dropped.
    volatile float keep = sink[0];
    (void)keep;
    return best;
}

}  // namespace pi::cpu
