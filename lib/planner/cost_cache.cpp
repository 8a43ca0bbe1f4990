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
    if (o.gpu_bandwidth_gbps > 0 && o.sync_us > 0 && o.launch_us > 0) r.gpu_source = CostSource::pinned;

    if (o.cpu_bandwidth_gbps > 0) {
        p.cpu_bandwidth = o.cpu_bandwidth_gbps * 1e9;
        r.cpu_bandwidth_source = CostSource::pinned;
        return r;
    }
    const int threads = options.n_threads > 0 ? options.n_threads : 1;
    r.cache_path = options.cache_path.empty() ? default_cost_cache_path() : options.cache_path;
    const std::string key = cpu_bandwidth_key(threads);
    std::map<std::string, double> cache;
    if (!r.cache_path.empty()) cache = read_cost_cache(r.cache_path);
    if (auto it = cache.find(key); it != cache.end()) {
        p.cpu_bandwidth = it->second * 1e9;
        r.cpu_bandwidth_source = CostSource::cached;
        return r;
    }
    const double gbps = options.measure_cpu_gbps ? options.measure_cpu_gbps(threads) : measure_cpu_short(threads);
    if (!usable(gbps)) {
        log_warn("cost model: the CPU bandwidth probe gave " + std::to_string(gbps) + " GB/s; using the default");
        return r;
    }
    p.cpu_bandwidth = gbps * 1e9;
    r.cpu_bandwidth_source = CostSource::measured;
    if (!r.cache_path.empty()) {
        cache[key] = gbps;
        if (!write_cost_cache(r.cache_path, cache)) {
            log_info("cost model: cannot write the cache " + r.cache_path + " (the measurement is used anyway)");
        }
    }
    return r;
}

}  // namespace pi::planner
