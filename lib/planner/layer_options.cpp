#include "planner/layer_options.h"

#include <algorithm>
#include <cmath>

#include "planner/memory_units.h"
#include "planner/neuron_order.h"

namespace pi::planner {

namespace {

// Second differences >= 0 up to rounding: the sums behind the times carry relative errors near 1e-16, so a kink
// smaller than 1e-12 of the layer's time is noise, not a broken model. What slips through costs at most that much.
bool is_convex(const std::vector<double> &g) {
    if (g.size() < 3) return true;
    const double tol = 1e-12 * std::max(std::fabs(g.front()), std::fabs(g.back()));
    for (size_t k = 1; k + 1 < g.size(); ++k) {
        if ((g[k + 1] - g[k]) - (g[k] - g[k - 1]) < -tol) return false;
    }
    return true;
}

}  // namespace

LayerOptions build_layer_options(const CostParams &params, const LayerInput &layer, uint32_t index,
                                 uint32_t group_size, uint64_t unit) {
    LayerOptions o;
    o.sorted = sorted_hottest_first(layer.act_freq, index);
    o.group_size = group_size;
    const size_t n = o.sorted.size();
    const size_t n_groups = (n + group_size - 1) / group_size;
    const size_t full_groups = n / group_size;
    const size_t partial = n % group_size;

    // Expected firing neurons per group, hottest group first: non-increasing, since each group's members are each
    // at least as frequent as the next group's (and rounding is monotone).
    std::vector<double> group_active(n_groups, 0.0);
    for (size_t g = 0; g < n_groups; ++g) {
        const size_t end = std::min(n, (g + 1) * size_t(group_size));
        double s = 0.0;
        for (size_t r = g * group_size; r < end; ++r) s += double(o.sorted[r]);
        group_active[g] = s;
    }
    double total = 0.0;
    for (double a : group_active) total += a;

    o.cpu = cpu_layer_times(params, layer, total);
    o.gpu = gpu_layer_times(params, layer, total);
    o.base_units = units_for(layer.attn_bytes + layer.kv_bytes + layer.pred_bytes, unit);
    o.group_units = units_for(uint64_t(group_size) * layer.neuron_bytes, unit);
    o.gpu_units = o.base_units + full_groups * o.group_units + (partial ? units_for(partial * layer.neuron_bytes, unit) : 0);

    // k = 0 .. n_groups - 1 whole groups: without a partial group k = n_groups is the "all on the GPU" option;
    // with one, k = full_groups = n_groups - 1 leaves just the partial group on the CPU.
    const size_t n_split = layer.splittable ? n_groups : 1;  // unsplittable: k = 0 only (FFN on the CPU)
    o.hot_active.resize(n_split);
    o.cold_active.resize(n_split);
    double hot = 0.0;
    for (size_t k = 0; k < n_split; ++k) {
        o.hot_active[k] = hot;
        hot += group_active[k];
    }
    double cold = 0.0;
    for (size_t k = n_groups; k-- > 0;) {
        cold += group_active[k];
        if (k < n_split) o.cold_active[k] = cold;
    }
    o.split_time.resize(n_split);
    o.best_split.resize(n_split);
    o.best_k.resize(n_split);
    for (size_t k = 0; k < n_split; ++k) {
        o.split_time[k] = split_layer_times(params, layer, o.hot_active[k], o.cold_active[k]).time;
        if (k == 0 || o.split_time[k] < o.best_split[k - 1]) {
            o.best_split[k] = o.split_time[k];
            o.best_k[k] = uint32_t(k);
        } else {
            o.best_split[k] = o.best_split[k - 1];
            o.best_k[k] = o.best_k[k - 1];
        }
    }
    // Past the first k reaching the minimum the table is flat: more groups never help this layer, and the
    // solver's convolutions get shorter.
    o.best_split.resize(o.best_k.back() + size_t(1));
    o.best_k.resize(o.best_split.size());
    o.best_split_convex = is_convex(o.best_split);
    return o;
}

}  // namespace pi::planner
