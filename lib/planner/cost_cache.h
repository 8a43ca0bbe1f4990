// The cost model's parameters as the library uses them (DESIGN §6: "measured quickly at load, or taken from a cache
// file keyed by the machine, or from params, and overridable"):
//   - a parameter the caller pins (a non-zero override) is used as given;
//   - the CPU read bandwidth is measured by the CPU backend's probe (a short run) at the model's thread count, and
//     cached in a small text file per host, so the next load reads it instead of measuring;
//   - GPU numbers (read bandwidth of a large product, host time per launched operation, a small copy's round trip,
//     copy bandwidth) are measured by the device backend at load (runtime/device_probe.h) and cached per device
//     name in the same file; without a device or a probe, the CostParams defaults.
// Pinning every override gives reproducible plans (tests, benchmarks): nothing is measured and no file is touched.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "planner/cost_model.h"

namespace pi::planner {

// The public overrides (pi_model_params.cost_*), in the units of the API. 0 = measure, or the default.
struct CostOverrides {
    double gpu_bandwidth_gbps = 0.0;   // GPU reads, GB/s (1e9 bytes/s)
    double cpu_bandwidth_gbps = 0.0;   // CPU reads, GB/s
    double sync_us = 0.0;              // the GPU waiting for the CPU's part of a split layer, microseconds
    double launch_us = 0.0;            // one kernel launch, microseconds
    double transfer_latency_us = 0.0;  // fixed part of one host<->device copy (both directions), microseconds
    double transfer_gbps = 0.0;        // host<->device copy bandwidth (both directions), GB/s
};

// Throws pi::Error(PI_ERR_INVALID_ARGUMENT) naming `function` and the field when one is negative, NaN or infinite.
void validate_overrides(const CostOverrides &overrides, const char *function);

// Where a parameter's value came from.
enum class CostSource {
    default_value = 0,  // the CostParams default (no measurement exists for it yet)
    measured = 1,       // measured now (and written to the cache)
    cached = 2,         // read from the cache file
    pinned = 3,         // given by the caller
};
const char *cost_source_name(CostSource source);

struct ResolvedCosts {
    CostParams params;
    CostSource cpu_bandwidth_source = CostSource::default_value;
    CostSource gpu_source = CostSource::default_value;  // GPU bandwidth, launch and sync
    std::string cache_path;                             // the cache consulted ("" when none was)
};

// What the device probe measured (0 = not measured: that parameter keeps its default).
struct GpuMeasurement {
    double bandwidth_gbps = 0.0;       // a large matrix-vector product's weight bytes over its time
    double launch_us = 0.0;            // host time per enqueued small operation
    double transfer_latency_us = 0.0;  // one small copy to the host and a wait for it
    double transfer_gbps = 0.0;        // a large pinned host-to-device copy
};

struct CostCacheOptions {
    std::string cache_path;  // "" = default_cost_cache_path()
    int n_threads = 1;       // CPU threads the model runs with: the bandwidth depends on it, so it is part of the key
    // Measures the CPU read bandwidth in GB/s with n threads; empty = the CPU backend's probe, short run. Tests
    // inject a counter here.
    std::function<double(int n_threads)> measure_cpu_gbps;
    // The device's GPU numbers, keyed in the cache by gpu_name; empty: no device (GPU parameters keep defaults).
    std::string gpu_name;
    std::function<GpuMeasurement()> measure_gpu;
};

// $XDG_CACHE_HOME/powerinfer/cost-<hostname>.txt, else $HOME/.cache/powerinfer/cost-<hostname>.txt; "" when neither
// variable is set. The hostname keys the machine (a shared home directory serves several machines).
std::string default_cost_cache_path();

// The cache file: "key value" lines (key "cpu_bandwidth_gbps.t<threads>"), '#' comments. A missing, unreadable or
// corrupt file reads as empty (a line that does not parse, or a value that is not a positive finite number, is
// skipped): the cache can only save a measurement, never break a load.
std::map<std::string, double> read_cost_cache(const std::string &path);
// Writes all entries (creating the directory), through a temporary file and a rename so that concurrent loads never
// see half a file. Returns false when it could not; never throws.
bool write_cost_cache(const std::string &path, const std::map<std::string, double> &entries);

// The parameters for a plan: overrides, else cache, else measurement (then cached), else defaults.
ResolvedCosts resolve_costs(const CostOverrides &overrides, const CostCacheOptions &options);

}  // namespace pi::planner
