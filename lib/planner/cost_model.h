// The cost model: predicted seconds of one decode step for each way a layer can be placed (DESIGN.md section 6).
// Every term is bytes read over the bandwidth of the side that reads them, plus fixed latencies. "Active" counts
// are expected numbers of firing neurons per token, i.e. sums of activation frequencies.
#pragma once

#include <cstdint>

#include "planner/placement_problem.h"

namespace pi::planner {

// Units: bandwidths in bytes per second, latencies in seconds. The defaults are rough figures for an H100 host
// (HBM about 2 TB/s effective, DDR about 50 GB/s, PCIe about 20 GB/s); the library replaces them with measured or
// pinned values.
struct CostParams {
    double gpu_bandwidth = 2.0e12;      // bytes/s the GPU reads weights and KV at
    double cpu_bandwidth = 50.0e9;      // bytes/s the CPU reads weights and KV at
    double gpu_launch_s = 4.0e-6;       // one kernel launch
    double gpu_launches_front = 6.0;    // launches of attention + predictor (before the FFN)
    double gpu_launches_ffn = 2.0;      // launches of the GPU's FFN share (fused sparse FFN, merge)
    double gpu_launches_output = 2.0;   // launches of the output head (norm, matmul)
    double cpu_layer_overhead_s = 10.0e-6;  // fixed cost of a layer's CPU work (thread-pool fork/join)
    double d2h_latency_s = 10.0e-6;     // one device-to-host copy, fixed part
    double d2h_bandwidth = 20.0e9;      // bytes/s of device-to-host copies
    double h2d_latency_s = 10.0e-6;     // one host-to-device copy, fixed part
    double h2d_bandwidth = 20.0e9;      // bytes/s of host-to-device copies
    double sync_s = 5.0e-6;             // the GPU waiting for the CPU's part of a split layer (event + merge)
    double index_bytes = 4.0;           // bytes per entry of the cold active list copied to the host
};

// Throws pi::Error(PI_ERR_INVALID_ARGUMENT) unless bandwidths are > 0 and every other field is finite and >= 0.
void validate(const CostParams &params);

struct LayerTimes {
    double t_gpu = 0.0;  // GPU path, from the start of the layer
    double t_cpu = 0.0;  // CPU path, from the start of the layer (includes waiting for the GPU's front part)
    double time = 0.0;   // what the layer adds to the step
};

// Attention, predictor and all neurons on the CPU; `active` = expected firing neurons of the layer.
LayerTimes cpu_layer_times(const CostParams &params, const LayerInput &layer, double active);

// Attention + predictor on the GPU, `hot_active` expected firing neurons on the GPU and `cold_active` on the CPU:
// time = max(T_gpu, T_cpu) + sync, with T_gpu = front + hot FFN and T_cpu = front + D2H (hidden state + cold
// active list) + cold FFN + H2D (partial output).
LayerTimes split_layer_times(const CostParams &params, const LayerInput &layer, double hot_active, double cold_active);

// Everything on the GPU: no copies, no synchronization.
LayerTimes gpu_layer_times(const CostParams &params, const LayerInput &layer, double active);

// The output head on either side; on the GPU the logits come back to the host.
double output_time(const CostParams &params, const PlacementProblem &problem, bool on_gpu);

}  // namespace pi::planner
