#include "planner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace pi::planner {

namespace {

void check(double value, bool positive, const char *name) {
    if (!std::isfinite(value) || value < 0.0 || (positive && value == 0.0)) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string("planner cost model: ") + name + " must be finite and " +
                                          (positive ? "> 0" : ">= 0") + ", got " + std::to_string(value));
    }
}

// Attention weights, the KV read at the planning context and the whole predictor, on the GPU, with their launches.
double gpu_front(const CostParams &p, const LayerInput &l) {
    const double bytes = double(l.attn_bytes) + double(l.kv_read_bytes) + double(l.pred_bytes);
    return bytes / p.gpu_bandwidth + p.gpu_launches_front * p.gpu_launch_s;
}

}  // namespace

void validate(const CostParams &p) {
    check(p.gpu_bandwidth, true, "gpu_bandwidth");
    check(p.cpu_bandwidth, true, "cpu_bandwidth");
    check(p.gpu_launch_s, false, "gpu_launch_s");
    check(p.gpu_launches_front, false, "gpu_launches_front");
    check(p.gpu_launches_ffn, false, "gpu_launches_ffn");
    check(p.gpu_launches_output, false, "gpu_launches_output");
    check(p.cpu_layer_overhead_s, false, "cpu_layer_overhead_s");
    check(p.d2h_latency_s, false, "d2h_latency_s");
    check(p.d2h_bandwidth, true, "d2h_bandwidth");
    check(p.h2d_latency_s, false, "h2d_latency_s");
    check(p.h2d_bandwidth, true, "h2d_bandwidth");
    check(p.sync_s, false, "sync_s");
    check(p.index_bytes, false, "index_bytes");
}

LayerTimes cpu_layer_times(const CostParams &p, const LayerInput &l, double active) {
    const double bytes = double(l.attn_bytes) + double(l.kv_read_bytes) + double(l.pred_bytes) +
                         active * double(l.neuron_bytes);
    LayerTimes t;
    t.t_cpu = bytes / p.cpu_bandwidth + p.cpu_layer_overhead_s;
    t.time = t.t_cpu;
    return t;
}

LayerTimes split_layer_times(const CostParams &p, const LayerInput &l, double hot_active, double cold_active) {
    const double front = gpu_front(p, l);
    const double hot = hot_active * double(l.neuron_bytes) / p.gpu_bandwidth + p.gpu_launches_ffn * p.gpu_launch_s;
    const double d2h = p.d2h_latency_s + (double(l.hidden_bytes) + p.index_bytes * cold_active) / p.d2h_bandwidth;
    const double cold = cold_active * double(l.neuron_bytes) / p.cpu_bandwidth + p.cpu_layer_overhead_s;
    const double h2d = p.h2d_latency_s + double(l.hidden_bytes) / p.h2d_bandwidth;
    LayerTimes t;
    t.t_gpu = front + hot;
    t.t_cpu = front + d2h + cold + h2d;
    t.time = std::max(t.t_gpu, t.t_cpu) + p.sync_s;
    return t;
}

LayerTimes gpu_layer_times(const CostParams &p, const LayerInput &l, double active) {
    LayerTimes t;
    t.t_gpu = gpu_front(p, l) + active * double(l.neuron_bytes) / p.gpu_bandwidth +
              p.gpu_launches_ffn * p.gpu_launch_s;
    t.time = t.t_gpu;
    return t;
}

double output_time(const CostParams &p, const PlacementProblem &problem, bool on_gpu) {
    if (on_gpu) {
        return double(problem.output_bytes) / p.gpu_bandwidth + p.gpu_launches_output * p.gpu_launch_s +
               p.d2h_latency_s + double(problem.logits_bytes) / p.d2h_bandwidth;
    }
    return double(problem.output_bytes) / p.cpu_bandwidth + p.cpu_layer_overhead_s;
}

}  // namespace pi::planner
