// pi-planner-bench: how long load-time planning takes for a large model.
//
// The model is 70B-sized (llama-2-70b shapes, F16): 80 layers, n_embd 8192, n_ff 28672, 8 KV heads of 128, a
// 1024-wide predictor, vocab 32000, KV for 4096 tokens of one session, 256 MiB scratch; groups of 32 neurons and a
// 24 GiB budget by default. Frequencies are synthetic but shaped like profiles: a random fifth of each layer's
// neurons hot (0.3-0.9), the rest following a power law below 0.1. Prints the median, minimum and maximum of
// several plan() calls (wall and process CPU time), and the placement it found.
//
//   pi-planner-bench [--runs N] [--budget-gib G] [--group G] [--unit-bytes B]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "planner/planner.h"

using namespace pi::planner;

namespace {

// CPU time of this process: on a machine shared with other jobs it shows the work itself, wall time the wait too.
double process_cpu_ms() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
}

PlacementProblem model_70b(uint32_t group, uint64_t budget) {
    const uint64_t n_embd = 8192, n_ff = 28672, kv_dim = 8 * 128, n_ctx = 4096, pred = 1024, vocab = 32000;
    std::mt19937_64 rng(70);
    std::uniform_real_distribution<double> u(0, 1);
    PlacementProblem p;
    p.group_size = group;
    for (int l = 0; l < 80; ++l) {
        LayerInput in;
        in.act_freq.resize(n_ff);
        for (float &f : in.act_freq) f = float(u(rng) < 0.2 ? 0.3 + 0.6 * u(rng) : 0.1 * std::pow(u(rng), 3.0));
        in.neuron_bytes = 3 * n_embd * 2;
        in.attn_bytes = (2 * n_embd * n_embd + 2 * n_embd * kv_dim) * 2 + 2 * n_embd * 4;
        in.kv_bytes = 2 * n_ctx * kv_dim * 2;
        in.kv_read_bytes = in.kv_bytes;
        in.pred_bytes = (n_embd * pred + pred * n_ff) * 2;
        in.hidden_bytes = n_embd * 4;
        p.layers.push_back(std::move(in));
    }
    p.output_bytes = n_embd * vocab * 2 + n_embd * 4;
    p.logits_bytes = vocab * 4;
    p.scratch_bytes = uint64_t(256) << 20;
    p.budget_bytes = budget;
    return p;
}

}  // namespace

int main(int argc, char **argv) {
    int runs = 11;
    double budget_gib = 24.0;
    uint32_t group = 32;
    PlannerOptions options;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--runs")) runs = std::max(1, std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--budget-gib")) budget_gib = std::atof(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--group")) group = uint32_t(std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--unit-bytes")) options.memory_unit_bytes = std::strtoull(argv[i + 1], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: %s [--runs N] [--budget-gib G] [--group G] [--unit-bytes B]\n", argv[0]);
            return 2;
        }
    }
    const PlacementProblem problem = model_70b(group, uint64_t(budget_gib * double(uint64_t(1) << 30)));
    const CostParams params;

    std::vector<double> ms, cpu_ms;
    Placement p;
    for (int r = 0; r < runs; ++r) {
        const double c0 = process_cpu_ms();
        const auto t0 = std::chrono::steady_clock::now();
        p = plan(problem, params, options);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        cpu_ms.push_back(process_cpu_ms() - c0);
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu_ms.begin(), cpu_ms.end());

    int n_cpu = 0, n_split = 0, n_gpu = 0;
    uint64_t gpu_neurons = 0;
    for (const LayerPlacement &lp : p.layers) {
        n_cpu += lp.kind == LayerKind::cpu;
        n_split += lp.kind == LayerKind::split;
        n_gpu += lp.kind == LayerKind::gpu;
        gpu_neurons += lp.n_gpu_neurons;
    }
    std::printf("planner: 80 layers x 28672 neurons, group %u, budget %.2f GiB, unit %llu bytes (%llu units used)\n",
                group, budget_gib, (unsigned long long)p.memory_unit_bytes, (unsigned long long)p.gpu_units);
    std::printf("plan time: median %.2f ms (min %.2f, max %.2f, %d runs); CPU time median %.2f ms\n",
                ms[ms.size() / 2], ms.front(), ms.back(), runs, cpu_ms[cpu_ms.size() / 2]);
    std::printf("placement: %d layers on the GPU, %d split, %d on the CPU; %llu GPU neurons; output head on %s\n",
                n_gpu, n_split, n_cpu, (unsigned long long)gpu_neurons, p.output_on_gpu ? "GPU" : "CPU");
    std::printf("GPU bytes %.3f GiB of %.3f; predicted step %.2f ms\n", double(p.gpu_bytes) / double(1ull << 30),
                budget_gib, p.step_time * 1e3);
    return 0;
}
