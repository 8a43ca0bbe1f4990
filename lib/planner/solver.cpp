#include "planner/solver.h"

#include <algorithm>

#include "planner/min_plus.h"

namespace pi::planner {

namespace {

// Per (layer, m) what the DP chose: one of these, or a split's index into best_split (>= 0).
constexpr int32_t kChoseCpu = -1;
constexpr int32_t kChoseGpu = -2;

// Adds one layer: next[m] from cur[m'] for m' <= m, recording the choice per m.
void add_layer(const LayerOptions &o, const std::vector<double> &cur, std::vector<double> &next, int32_t *choice,
               bool plain_scan, std::vector<double> &h, std::vector<uint32_t> &arg) {
    const size_t M = cur.size() - 1;
    for (size_t m = 0; m <= M; ++m) {
        next[m] = cur[m] + o.cpu.time;
        choice[m] = kChoseCpu;
        if (m >= o.gpu_units) {
            const double v = cur[m - o.gpu_units] + o.gpu.time;
            if (v < next[m]) {
                next[m] = v;
                choice[m] = kChoseGpu;
            }
        }
    }
    if (o.base_units > M || o.best_split.empty()) return;
    const size_t s = o.group_units;
    const bool convex = o.best_split_convex && !plain_scan;
    for (size_t r = 0; r < s && o.base_units + r <= M; ++r) {
        // Rows m = base + r + j * s read D at r + (j - k) * s.
        const size_t count = (M - o.base_units - r) / s + 1;
        if (convex) {
            min_plus_convex(cur.data() + r, s, count, o.best_split, h.data(), arg.data());
        } else {
            min_plus_plain(cur.data() + r, s, count, o.best_split, h.data(), arg.data());
        }
        for (size_t j = 0; j < count; ++j) {
            const size_t m = o.base_units + r + j * s;
            if (h[j] < next[m]) {
                next[m] = h[j];
                choice[m] = int32_t(arg[j]);
            }
        }
    }
}

}  // namespace

Solution solve(const std::vector<LayerOptions> &layers, const OutputOption &output, uint64_t units, bool plain_scan) {
    const size_t M = units;
    const size_t L = layers.size();
    std::vector<double> cur(M + 1), next(M + 1), h(M + 1);
    std::vector<uint32_t> arg(M + 1);
    std::vector<int32_t> choice(L * (M + 1));

    // The output head first: two options.
    std::vector<bool> out_on_gpu(M + 1, false);
    for (size_t m = 0; m <= M; ++m) {
        cur[m] = output.cpu_time;
        if (m >= output.gpu_units && output.gpu_time < cur[m]) {
            cur[m] = output.gpu_time;
            out_on_gpu[m] = true;
        }
    }
    for (size_t l = 0; l < L; ++l) {
        add_layer(layers[l], cur, next, choice.data() + l * (M + 1), plain_scan, h, arg);
        cur.swap(next);
    }

    // Walk back from "at most M units" to the choices that reached it.
    Solution sol;
    sol.time = cur[M];
    sol.layers.resize(L);
    size_t m = M;
    for (size_t l = L; l-- > 0;) {
        const LayerOptions &o = layers[l];
        const int32_t c = choice[l * (M + 1) + m];
        LayerChoice &lc = sol.layers[l];
        if (c == kChoseCpu) {
            lc.kind = LayerKind::cpu;
        } else if (c == kChoseGpu) {
            lc.kind = LayerKind::gpu;
            m -= o.gpu_units;
            sol.units += o.gpu_units;
        } else {
            // The convolution charged base + c groups of memory; best_k says how many of them the best split uses.
            const size_t k = size_t(c);
            lc.kind = LayerKind::split;
            lc.groups = o.best_k[std::min(k, o.best_k.size() - 1)];
            m -= o.base_units + k * o.group_units;
            sol.units += o.base_units + lc.groups * o.group_units;
        }
    }
    sol.output_on_gpu = out_on_gpu[m];
    if (sol.output_on_gpu) sol.units += output.gpu_units;
    return sol;
}

}  // namespace pi::planner
