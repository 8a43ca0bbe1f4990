#include "planner/cost_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backends/cpu/bandwidth.h"
#include "common/error.h"
#include "common/log.h"

namespace pi::planner {
namespace {

std::string cpu_bandwidth_key(int n_threads) { return "cpu_bandwidth_gbps.t" + std::to_string(n_threads); }

// The probe's short run, for a load: two passes over max(2 x the last-level cache, 512 MiB) instead of five over
// 8 x the cache (VMs often report the whole host's L3, which made the full probe's buffer 2.5 GiB and 3 s here).
// Twice the cache still cannot be served from it. About 0.3 s, most of it faulting the buffer in.
double measure_cpu_short(int n_threads) {
    long llc = 0;
#if defined(_SC_LEVEL3_CACHE_SIZE)
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    cpu::BandwidthOptions options;
    options.buffer_bytes = std::max<size_t>(2 * static_cast<size_t>(std::max(llc, 0L)), size_t(512) << 20);
    options.repeats = 2;
    return cpu::measure_read_bandwidth(n_threads, nullptr, cpu::active_isa_level(), options);
}

bool usable(double v) { return std::isfinite(v) && v > 0.0; }

// Cache keys of a device's numbers: "gpu.<name>.<field>", spaces in the name as '_'.
std::string gpu_key(const std::string &name, const char *field) {
    std::string n = name;
    for (char &c : n) {
        if (c == ' ' || c == '\t' || c == '#') c = '_';
    }
    return "gpu." + n + "." + field;
}

// The device's numbers from the cache, else measured now (and added to `cache`, which the caller writes back).
// Fills only the parameters the caller did not pin. Returns the source, or default_value when nothing was usable.
CostSource resolve_gpu(const CostOverrides &o, const CostCacheOptions &options, std::map<std::string, double> &cache,
                       bool &cache_changed, CostParams &p) {
    if (options.gpu_name.empty() || !options.measure_gpu) return CostSource::default_value;
    const char *fields[4] = {"bandwidth_gbps", "launch_us", "transfer_latency_us", "transfer_gbps"};
    double v[4] = {0, 0, 0, 0};
    bool all_cached = true;
    for (int i = 0; i < 4; ++i) {
        auto it = cache.find(gpu_key(options.gpu_name, fields[i]));
        if (it == cache.end()) all_cached = false;
        else v[i] = it->second;
    }
    CostSource source = CostSource::cached;
    if (!all_cached) {
        const GpuMeasurement m = options.measure_gpu();
        const double measured[4] = {m.bandwidth_gbps, m.launch_us, m.transfer_latency_us, m.transfer_gbps};
        bool any = false;
        for (int i = 0; i < 4; ++i) {
            v[i] = usable(measured[i]) ? measured[i] : 0.0;
            if (v[i] > 0) {
                cache[gpu_key(options.gpu_name, fields[i])] = v[i];
                any = cache_changed = true;
            }
        }
        if (!any) {
            log_warn("cost model: the device probe measured nothing usable; GPU parameters keep their defaults");
            return CostSource::default_value;
        }
        source = CostSource::measured;
    }
    if (o.gpu_bandwidth_gbps <= 0 && v[0] > 0) p.gpu_bandwidth = v[0] * 1e9;
    if (o.launch_us <= 0 && v[1] > 0) p.gpu_launch_s = v[1] * 1e-6;
    if (o.transfer_latency_us <= 0 && v[2] > 0) p.d2h_latency_s = p.h2d_latency_s = v[2] * 1e-6;
    if (o.transfer_gbps <= 0 && v[3] > 0) p.d2h_bandwidth = p.h2d_bandwidth = v[3] * 1e9;
    return source;
}

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
    std::string s = name;
    for (char &c : s) {
        if (c == '/' || c == '\\') c = '_';  // a file name, whatever the hostname holds
    }
    return s;
}

}  // namespace

void validate_overrides(const CostOverrides &o, const char *function) {
    const std::pair<const char *, double> fields[] = {
        {"cost_gpu_bandwidth_gbps", o.gpu_bandwidth_gbps}, {"cost_cpu_bandwidth_gbps", o.cpu_bandwidth_gbps},
        {"cost_sync_us", o.sync_us},                       {"cost_launch_us", o.launch_us},
        {"cost_transfer_latency_us", o.transfer_latency_us}, {"cost_transfer_gbps", o.transfer_gbps},
    };
    for (const auto &[name, value] : fields) {
        if (!(std::isfinite(value) && value >= 0.0)) {
            fail(PI_ERR_INVALID_ARGUMENT, std::string(function) + ": " + name + " must be a finite number >= 0 (0 = "
                                              "measure or default), got " + std::to_string(value));
        }
    }
}

const char *cost_source_name(CostSource source) {
    switch (source) {
        case CostSource::default_value: return "default";
        case CostSource::measured: return "measured";
        case CostSource::cached: return "cached";
        case CostSource::pinned: return "pinned";
    }
    return "unknown";
}

std::string default_cost_cache_path() {
    std::string dir;
    if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0] == '/') {
        dir = xdg;  // the XDG spec ignores relative paths
    } else if (const char *home = std::getenv("HOME"); home && home[0] != '\0') {
        dir = std::string(home) + "/.cache";
    } else {
        return "";
    }
    return dir + "/powerinfer/cost-" + host_name() + ".txt";
}

std::map<std::string, double> read_cost_cache(const std::string &path) {
    std::map<std::string, double> entries;
    std::ifstream in(path);
    std::string line;
    while (in && std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        std::string key, rest;
        double value = 0.0;
        if (!(fields >> key >> value) || (fields >> rest) || !usable(value)) continue;
        entries[key] = value;
    }
    return entries;
}

bool write_cost_cache(const std::string &path, const std::map<std::string, double> &entries) {
    try {
        const std::filesystem::path p(path);
        std::error_code ec;
        if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
        const std::string tmp = path + ".tmp." + std::to_string(::getpid());
        {
            std::ofstream out(tmp, std::ios::trunc);
            if (!out) return false;
            out << "# libpowerinfer cost-model cache for host " << host_name()
                << " (measured parameters; delete this file to measure again)\n";
            char value[64];
            for (const auto &[key, v] : entries) {
                std::snprintf(value, sizeof value, "%.6g", v);
                out << key << ' ' << value << '\n';
            }
            out.flush();
            if (!out) {
                std::filesystem::remove(tmp, ec);
                return false;
            }
        }
        std::filesystem::rename(tmp, p, ec);
        if (ec) {
            std::filesystem::remove(tmp, ec);
            return false;
        }
        return true;
    } catch (...) {  // a cache is an optimization: no failure of it may fail a load
        return false;
    }
}

ResolvedCosts resolve_costs(const CostOverrides &o, const CostCacheOptions &options) {
    validate_overrides(o, "resolve_costs");
    ResolvedCosts r;
    CostParams &p = r.params;
    if (o.gpu_bandwidth_gbps > 0) p.gpu_bandwidth = o.gpu_bandwidth_gbps * 1e9;
    if (o.sync_us > 0) p.sync_s = o.sync_us * 1e-6;
    if (o.launch_us > 0) p.gpu_launch_s = o.launch_us * 1e-6;
    if (o.transfer_latency_us > 0) p.d2h_latency_s = p.h2d_latency_s = o.transfer_latency_us * 1e-6;
    if (o.transfer_gbps > 0) p.d2h_bandwidth = p.h2d_bandwidth = o.transfer_gbps * 1e9;
    const bool gpu_pinned = o.gpu_bandwidth_gbps > 0 && o.sync_us > 0 && o.launch_us > 0 &&
                            o.transfer_latency_us > 0 && o.transfer_gbps > 0;
    const bool gpu_wanted = !gpu_pinned && !options.gpu_name.empty() && options.measure_gpu;
    if (o.gpu_bandwidth_gbps > 0 && o.sync_us > 0 && o.launch_us > 0) r.gpu_source = CostSource::pinned;
    if (o.cpu_bandwidth_gbps > 0) {
        p.cpu_bandwidth = o.cpu_bandwidth_gbps * 1e9;
        r.cpu_bandwidth_source = CostSource::pinned;
        if (!gpu_wanted) return r;
    }
    const int threads = options.n_threads > 0 ? options.n_threads : 1;
    r.cache_path = options.cache_path.empty() ? default_cost_cache_path() : options.cache_path;
    std::map<std::string, double> cache;
    if (!r.cache_path.empty()) cache = read_cost_cache(r.cache_path);
    bool cache_changed = false;
    if (gpu_wanted) {
        const CostSource s = resolve_gpu(o, options, cache, cache_changed, p);
        if (s != CostSource::default_value) r.gpu_source = s;
    }
    if (r.cpu_bandwidth_source != CostSource::pinned) {
        const std::string key = cpu_bandwidth_key(threads);
        if (auto it = cache.find(key); it != cache.end()) {
            p.cpu_bandwidth = it->second * 1e9;
            r.cpu_bandwidth_source = CostSource::cached;
        } else {
            const double gbps = options.measure_cpu_gbps ? options.measure_cpu_gbps(threads) : measure_cpu_short(threads);
            if (!usable(gbps)) {
                log_warn("cost model: the CPU bandwidth probe gave " + std::to_string(gbps) + " GB/s; using the default");
            } else {
                p.cpu_bandwidth = gbps * 1e9;
                r.cpu_bandwidth_source = CostSource::measured;
                cache[key] = gbps;
                cache_changed = true;
            }
        }
    }
    if (cache_changed && !r.cache_path.empty() && !write_cost_cache(r.cache_path, cache)) {
        log_info("cost model: cannot write the cache " + r.cache_path + " (the measurement is used anyway)");
    }
    return r;
}

}  // namespace pi::planner
