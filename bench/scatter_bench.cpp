// pi-scatter-bench: how fast this machine reads lists of scattered chunks, against a streaming read.
//
//   pi-scatter-bench [--threads N] [--reps N] [--sizes B[,B...]] [--small-pages]
//
// A sparse FFN step reads the active neurons' rows: chunks of a few KiB at random places (bench-7b Q4_0: 2304-byte
// rows, 6912-byte gate|up|down bundles). This reads random chunks of each size from a 1 GiB buffer, one 8-byte load
// a cache line, with the kernels' software prefetch (detail::prefetch_line, kPrefetchBytes ahead along the list) and
// without it, each thread its own list, and alternates each timed pass with the streaming read bandwidth probe of the
// same threads (measure_read_bandwidth, the roofline's denominator). Best of --reps each. So what scattered reads
// cost on this machine shows as a fraction of the probe, with no arithmetic in the way. One stream a thread: the dot
// kernels read several rows at once, line by line, which keeps other lines in flight (pi-kernel-bench --sparse has
// that pattern's bare read); on the development VM the two patterns measured alike within its noise.
// 2 MiB pages by default (the engine keeps FFN bundles in huge pages); --small-pages for 4 KiB pages.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/bandwidth.h"
#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/thread_pool.h"
#include "bench/number_list.h"

namespace {

using namespace pi::cpu;
using Clock = std::chrono::steady_clock;

constexpr size_t kBufferBytes = size_t(1) << 30;
constexpr size_t kBytesPerThread = size_t(32) << 20;  // per timed pass: 32 MiB a thread, the LLC's size

struct Args {
    int threads = 2;
    int reps = 7;
    std::vector<size_t> sizes = {2304, 6912, 16384, 65536, 262144, 1048576};
    bool small_pages = false;
};

[[noreturn]] void usage(const char *argv0) {
    std::fprintf(stderr, "usage: %s [--threads N] [--reps N] [--sizes B[,B...]] [--small-pages]\n", argv0);
    std::exit(2);
}

Args parse(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        const bool has_value = i + 1 < argc;
        if (s == "--threads" && has_value) {
            a.threads = std::max(1, std::atoi(argv[++i]));
        } else if (s == "--reps" && has_value) {
            a.reps = std::max(1, std::atoi(argv[++i]));
        } else if (s == "--sizes" && has_value) {
            a.sizes.clear();
            for (long v : pi::bench::parse_number_list(
                     argv[++i], 64, 64l << 20, "--sizes: a comma-separated list of chunk bytes in 64..64 MiB")) {
                a.sizes.push_back(static_cast<size_t>(v));
            }
        } else if (s == "--small-pages") {
            a.small_pages = true;
        } else {
            usage(argv[0]);
        }
    }
    return a;
}

// The chunks one thread reads in a pass: `count` random chunk-aligned offsets in the buffer (chunks of one list may
// repeat, rarely: 1 GiB holds thousands of 256 KiB chunks).
std::vector<size_t> random_chunks(size_t chunk, size_t count, std::mt19937_64 &rng) {
    std::vector<size_t> offsets(count);
    const size_t slots = kBufferBytes / chunk;
    for (size_t &o : offsets) o = (rng() % slots) * chunk;
    return offsets;
}

// Reads every listed chunk, one 8-byte load a 64-byte line; with `prefetch`, the line kPrefetchBytes further along
// the list is prefetched beside each load (the kernels' distance and hint). Returns a value the loads feed.
uint64_t read_chunks(const uint8_t *base, const std::vector<size_t> &offsets, size_t chunk, bool prefetch) {
    const size_t lines = chunk / 64, ahead = detail::kPrefetchBytes / 64;
    size_t pf_chunk = ahead / lines, pf_line = ahead % lines;  // the prefetch cursor, `ahead` lines on
    uint64_t acc = 0;
    for (size_t c = 0; c < offsets.size(); ++c) {
        const uint8_t *p = base + offsets[c];
        for (size_t l = 0; l < lines; ++l) {
            if (prefetch && pf_chunk < offsets.size()) {
                detail::prefetch_line(base + offsets[pf_chunk] + 64 * pf_line);
                if (++pf_line == lines) pf_line = 0, ++pf_chunk;
            }
            uint64_t v;
            std::memcpy(&v, p + 64 * l, sizeof v);
            acc ^= v;
        }
    }
    return acc;
}

struct Result {
    double gbps, probe_gbps;
};

Result measure(const uint8_t *buffer, size_t chunk, bool prefetch, ThreadPool &pool, int reps, std::mt19937_64 &rng) {
    const size_t n_threads = static_cast<size_t>(pool.size());
    const size_t per_thread = std::max<size_t>(1, kBytesPerThread / chunk);
    BandwidthOptions probe;
    probe.buffer_bytes = size_t(256) << 20;
    probe.repeats = 1;
    std::atomic<uint64_t> sink{0};
    double best_sec = 1e30, best_probe = 0.0;
    for (int r = 0; r <= reps; ++r) {  // pass 0 warms the code and the page tables and is not counted
        std::vector<std::vector<size_t>> lists(n_threads);
        for (auto &list : lists) list = random_chunks(chunk, per_thread, rng);
        if (r > 0)
            best_probe = std::max(best_probe, measure_read_bandwidth(pool.size(), &pool, active_isa_level(), probe));
        const auto t0 = Clock::now();
        pool.run([&](int t) {
            sink.fetch_xor(read_chunks(buffer, lists[static_cast<size_t>(t)], chunk, prefetch),
                           std::memory_order_relaxed);
        });
        if (r > 0) best_sec = std::min(best_sec, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (sink.load() == 0x5eed) std::printf(" ");  // keeps the loads
    return {static_cast<double>(n_threads * per_thread * chunk) / best_sec / 1e9, best_probe};
}

// This process's memory in transparent huge pages (/proc/self/smaps_rollup), MiB; 0 when unknown.
size_t huge_page_mib() {
    size_t kib = 0;
    if (FILE *f = std::fopen("/proc/self/smaps_rollup", "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, f)) {
            if (std::sscanf(line, "AnonHugePages: %zu kB", &kib) == 1) break;
        }
        std::fclose(f);
    }
    return kib >> 10;
}

}  // namespace

int main(int argc, char **argv) {
    const Args args = parse(argc, argv);
    void *mem = nullptr;
    if (posix_memalign(&mem, size_t(2) << 20, kBufferBytes) != 0) {
        std::fprintf(stderr, "pi-scatter-bench: cannot allocate %zu MiB\n", kBufferBytes >> 20);
        return 1;
    }
    auto *buffer = static_cast<uint8_t *>(mem);
    if (!args.small_pages) madvise(buffer, kBufferBytes, MADV_HUGEPAGE);
    std::memset(buffer, 0x5a, kBufferBytes);  // pages exist before any timing

    std::printf(
        "pi-scatter-bench: random chunks of a 1 GiB buffer (%s pages asked; %zu MiB of this process in 2 MiB pages), "
        "%zu MiB a thread a pass, best of %d;\nGB/s of the chunks read (%% of the streaming read probe of the same "
        "threads, same period)\n",
        args.small_pages ? "4 KiB" : "2 MiB", huge_page_mib(), kBytesPerThread >> 20, args.reps);
    std::printf("%-10s %-11s", "chunk", "prefetch");
    for (int t = 1; t <= args.threads; ++t) std::printf("   %2d thr GB/s (%% of probe)", t);
    std::printf("\n");
    std::vector<std::unique_ptr<ThreadPool>> pools;
    for (int t = 1; t <= args.threads; ++t) pools.push_back(std::make_unique<ThreadPool>(t));
    std::mt19937_64 rng(7);
    // Untimed warm-up: in trials the first case of a run read up to ~30 % slower than the same case later.
    for (int i = 0; i < 4; ++i) measure(buffer, 4096, true, *pools.back(), 1, rng);
    for (size_t size : args.sizes) {
        const size_t chunk = (size + 63) / 64 * 64;
        for (bool prefetch : {true, false}) {
            std::printf("%-10zu %-11s", chunk, prefetch ? "kernels'" : "none");
            for (auto &pool : pools) {
                const Result r = measure(buffer, chunk, prefetch, *pool, args.reps, rng);
                std::printf("   %8.2f      (%3.0f%% of %4.1f)", r.gbps, 100.0 * r.gbps / r.probe_gbps, r.probe_gbps);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    }
    std::free(buffer);
    return 0;
}
