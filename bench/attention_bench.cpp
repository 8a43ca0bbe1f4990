// pi-attention-bench: a decode token's CPU attention over a cold F16 KV cache, against the read bandwidth.
//
//   pi-attention-bench [--threads N] [--positions P[,P...]] [--isa scalar|avx2|avx512] [--reps N]
//
// bench-7b's shape (32 layers, 32 heads of 128, no GQA). Each timed pass walks the 32 layers in order, as a decode
// step does, and before each layer reads a 64 MiB buffer so that the layer's cache rows come from memory (in a real
// step ~55 MB of weights pass between two layers' attention). The heads are split over the threads as a short-context
// decode splits them (host_attention); longer contexts are split by positions there, which this does not model.
// Prints microseconds per layer and the cache bytes it read per second, best of --reps passes, with the streaming
// read bandwidth of the same threads.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/bandwidth.h"
#include "backends/cpu/cpu_features.h"
#include "backends/cpu/layer_math.h"
#include "backends/cpu/numeric.h"
#include "backends/cpu/thread_pool.h"
#include "bench/number_list.h"

namespace {

using namespace pi::cpu;
using Clock = std::chrono::steady_clock;

struct Args {
    int threads = 2;
    int reps = 5;
    std::vector<uint32_t> positions = {64, 256, 512};
    IsaLevel isa = active_isa_level();
};

Args parse(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        const bool has_value = i + 1 < argc;
        if (s == "--threads" && has_value) {
            a.threads = std::max(1, std::atoi(argv[++i]));
        } else if (s == "--reps" && has_value) {
            a.reps = std::max(1, std::atoi(argv[++i]));
        } else if (s == "--positions" && has_value) {
            a.positions.clear();
            for (long v : pi::bench::parse_number_list(argv[++i], 1, 32768,
                                                       "--positions: a comma-separated list of counts in 1..32768")) {
                a.positions.push_back(static_cast<uint32_t>(v));
            }
        } else if (s == "--isa" && has_value) {
            const std::string level = argv[++i];
            a.isa = level == "scalar" ? IsaLevel::Scalar : level == "avx2" ? IsaLevel::Avx2 : IsaLevel::Avx512;
            if (a.isa > best_isa_level()) {
                std::fprintf(stderr, "this CPU has no %s\n", level.c_str());
                std::exit(2);
            }
        } else {
            std::fprintf(stderr,
                         "usage: %s [--threads N] [--positions P[,P...]] [--isa scalar|avx2|avx512] [--reps N]\n",
                         argv[0]);
            std::exit(2);
        }
    }
    return a;
}

}  // namespace

int main(int argc, char **argv) {
    const Args args = parse(argc, argv);
    constexpr uint32_t kLayers = 32, kHeads = 32, kHeadDim = 128, kKvDim = kHeads * kHeadDim;
    ThreadPool pool(args.threads);
    std::printf("pi-attention-bench: ISA %s, %d thread%s, bench-7b's attention shape (F16 cache)\n",
                isa_level_name(args.isa).c_str(), args.threads, args.threads > 1 ? "s" : "");
    std::printf("read bandwidth: %.2f GB/s\n", measure_read_bandwidth(args.threads, &pool, args.isa));
    std::vector<uint8_t> sweep(64u << 20, 1);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> q(kKvDim), out(kKvDim);
    for (float &v : q) v = normal(rng);
    const uint32_t per = (kHeads + static_cast<uint32_t>(args.threads) - 1) / static_cast<uint32_t>(args.threads);
    for (const uint32_t n_pos : args.positions) {
        const size_t layer_elems = size_t(n_pos) * kKvDim;
        std::vector<uint16_t> keys(kLayers * layer_elems), values(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            keys[i] = fp32_to_fp16(0.5f * normal(rng));
            values[i] = fp32_to_fp16(normal(rng));
        }
        std::vector<float> scores(size_t(args.threads) * per * n_pos);
        const float scale = 1.0f / std::sqrt(float(kHeadDim));
        double best = 1e30;
        volatile uint64_t sink = 0;
        for (int r = 0; r < args.reps; ++r) {
            double seconds = 0.0;
            for (uint32_t l = 0; l < kLayers; ++l) {
                pool.run([&](int t) {  // evict (all threads, so none of them sleeps before the timed part)
                    uint64_t s = 0;
                    const size_t b = sweep.size() * size_t(t) / size_t(args.threads);
                    const size_t e = sweep.size() * size_t(t + 1) / size_t(args.threads);
                    for (size_t i = b; i < e; i += 64) s += sweep[i];
                    sink = sink + s;
                });
                const auto t0 = Clock::now();
                pool.run([&](int t) {
                    const uint32_t h0 = std::min(kHeads, uint32_t(t) * per), h1 = std::min(kHeads, h0 + per);
                    attend_heads(&keys[l * layer_elems], &values[l * layer_elems], true, kKvDim, 0, kHeadDim, 1, h0, h1,
                                 q.data(), n_pos, scale, &scores[size_t(t) * per * n_pos], out.data(), args.isa);
                });
                seconds += std::chrono::duration<double>(Clock::now() - t0).count();
            }
            best = std::min(best, seconds / kLayers);
        }
        const double bytes = 2.0 * double(layer_elems) * sizeof(uint16_t);
        std::printf("%5u positions: %8.1f us a layer, %6.2f GB/s of cache rows\n", n_pos, best * 1e6,
                    bytes / best / 1e9);
        std::fflush(stdout);
    }
    return 0;
}
