// The cost parameters' sources: pinned overrides, the per-host cache file, a measurement (injected here, so the test
// does not spend a second probing the memory), and the defaults; a bad or unwritable cache never fails a plan.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "common/error.h"
#include "planner/cost_cache.h"

using namespace pi::planner;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/pi-cost-XXXXXX";
        REQUIRE(mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// Restores an environment variable at scope exit.
struct EnvGuard {
    std::string name;
    bool had = false;
    std::string old;
    explicit EnvGuard(const char *n) : name(n) {
        if (const char *v = std::getenv(n)) {
            had = true;
            old = v;
        }
    }
    ~EnvGuard() {
        if (had) setenv(name.c_str(), old.c_str(), 1);
        else unsetenv(name.c_str());
    }
};

}  // namespace

TEST_CASE("cost cache: pinned overrides are used as given, nothing is measured or written", "[planner][cost]") {
    TempDir dir;
    int measured = 0;
    CostCacheOptions options;
    options.cache_path = dir.path + "/sub/cost.txt";
    options.measure_cpu_gbps = [&](int) { ++measured; return 10.0; };
    CostOverrides o;
    o.gpu_bandwidth_gbps = 900;
    o.cpu_bandwidth_gbps = 12.5;
    o.sync_us = 7;
    o.launch_us = 3;
    o.transfer_latency_us = 11;
    o.transfer_gbps = 25;
    const ResolvedCosts r = resolve_costs(o, options);
    CHECK(measured == 0);
    CHECK_FALSE(std::filesystem::exists(options.cache_path));
    CHECK(r.params.gpu_bandwidth == 900e9);
    CHECK(r.params.cpu_bandwidth == 12.5e9);
    CHECK(r.params.sync_s == Approx(7e-6));
    CHECK(r.params.gpu_launch_s == Approx(3e-6));
    CHECK(r.params.d2h_latency_s == Approx(11e-6));
    CHECK(r.params.h2d_latency_s == Approx(11e-6));
    CHECK(r.params.d2h_bandwidth == 25e9);
    CHECK(r.params.h2d_bandwidth == 25e9);
    CHECK(r.cpu_bandwidth_source == CostSource::pinned);
    CHECK(r.gpu_source == CostSource::pinned);
    // Unpinned fields keep the documented defaults.
    const CostParams defaults;
    CHECK(r.params.cpu_layer_overhead_s == defaults.cpu_layer_overhead_s);
    CHECK(r.params.gpu_launches_front == defaults.gpu_launches_front);
}

TEST_CASE("cost cache: measured once per thread count, then read from the file", "[planner][cost]") {
    TempDir dir;
    int measured = 0;
    CostCacheOptions options;
    options.cache_path = dir.path + "/nested/dir/cost-host.txt";  // directories are created
    options.n_threads = 4;
    options.measure_cpu_gbps = [&](int threads) { ++measured; return 3.0 * threads; };
    const CostOverrides none;

    const ResolvedCosts first = resolve_costs(none, options);
    CHECK(measured == 1);
    CHECK(first.cpu_bandwidth_source == CostSource::measured);
    CHECK(first.params.cpu_bandwidth == 12e9);
    CHECK(first.gpu_source == CostSource::default_value);
    CHECK(first.params.gpu_bandwidth == CostParams{}.gpu_bandwidth);
    REQUIRE(std::filesystem::exists(options.cache_path));

    const ResolvedCosts second = resolve_costs(none, options);
    CHECK(measured == 1);
    CHECK(second.cpu_bandwidth_source == CostSource::cached);
    CHECK(second.params.cpu_bandwidth == 12e9);

    options.n_threads = 2;  // another key: measured, and the first entry is kept
    CHECK(resolve_costs(none, options).params.cpu_bandwidth == 6e9);
    CHECK(measured == 2);
    const auto entries = read_cost_cache(options.cache_path);
    CHECK(entries.size() == 2);
    CHECK(entries.at("cpu_bandwidth_gbps.t4") == 12.0);
    CHECK(entries.at("cpu_bandwidth_gbps.t2") == 6.0);
    // No temporary file is left behind.
    int files = 0;
    for (const auto &e : std::filesystem::directory_iterator(std::filesystem::path(options.cache_path).parent_path())) {
        (void)e;
        ++files;
    }
    CHECK(files == 1);
}

TEST_CASE("cost cache: corrupt lines are skipped, the file is repaired", "[planner][cost]") {
    TempDir dir;
    const std::string path = dir.path + "/cost.txt";
    {
        std::ofstream out(path);
        out << "garbage without value\n"
               "cpu_bandwidth_gbps.t1 -5\n"
               "cpu_bandwidth_gbps.t1 nan\n"
               "cpu_bandwidth_gbps.t1 12 trailing\n"
               "\x01\x02\x03\n"
               "other.key 4.5\n";
    }
    auto entries = read_cost_cache(path);
    CHECK(entries.size() == 1);
    CHECK(entries.at("other.key") == 4.5);
    int measured = 0;
    CostCacheOptions options;
    options.cache_path = path;
    options.measure_cpu_gbps = [&](int) { ++measured; return 8.0; };
    const ResolvedCosts r = resolve_costs(CostOverrides{}, options);
    CHECK(measured == 1);
    CHECK(r.params.cpu_bandwidth == 8e9);
    entries = read_cost_cache(path);
    CHECK(entries.at("cpu_bandwidth_gbps.t1") == 8.0);
    CHECK(entries.at("other.key") == 4.5);
    CHECK(read_cost_cache(dir.path + "/missing.txt").empty());
}

TEST_CASE("cost cache: an unwritable cache or a failed probe never fails", "[planner][cost]") {
    TempDir dir;
    const std::string blocker = dir.path + "/a-file";
    std::ofstream(blocker) << "x";
    CostCacheOptions options;
    options.cache_path = blocker + "/cost.txt";  // its "directory" is a file
    options.measure_cpu_gbps = [](int) { return 9.0; };
    ResolvedCosts r;
    REQUIRE_NOTHROW(r = resolve_costs(CostOverrides{}, options));
    CHECK(r.cpu_bandwidth_source == CostSource::measured);
    CHECK(r.params.cpu_bandwidth == 9e9);
    CHECK_FALSE(write_cost_cache(options.cache_path, {{"k", 1.0}}));

    for (double bad : {0.0, -1.0, std::nan("")}) {
        options.cache_path = dir.path + "/probe.txt";
        options.measure_cpu_gbps = [bad](int) { return bad; };
        r = resolve_costs(CostOverrides{}, options);
        CHECK(r.cpu_bandwidth_source == CostSource::default_value);
        CHECK(r.params.cpu_bandwidth == CostParams{}.cpu_bandwidth);
        CHECK_FALSE(std::filesystem::exists(options.cache_path));  // a failed probe is not cached
    }
}

TEST_CASE("cost cache: bad overrides name the field", "[planner][cost]") {
    const double bad_values[] = {-1.0, std::nan(""), std::numeric_limits<double>::infinity()};
    for (double bad : bad_values) {
        for (int field = 0; field < 6; ++field) {
            CostOverrides o;
            double *fields[] = {&o.gpu_bandwidth_gbps, &o.cpu_bandwidth_gbps, &o.sync_us,
                                &o.launch_us,          &o.transfer_latency_us, &o.transfer_gbps};
            const char *names[] = {"cost_gpu_bandwidth_gbps", "cost_cpu_bandwidth_gbps", "cost_sync_us",
                                   "cost_launch_us", "cost_transfer_latency_us", "cost_transfer_gbps"};
            *fields[field] = bad;
            try {
                validate_overrides(o, "f");
                FAIL("accepted " << names[field] << " = " << bad);
            } catch (const pi::Error &e) {
                CHECK(e.status() == PI_ERR_INVALID_ARGUMENT);
                CHECK_THAT(e.what(), StartsWith("f: ") && Contains(names[field]));
            }
        }
    }
    CHECK_NOTHROW(validate_overrides(CostOverrides{}, "f"));  // zeros: measure or default
}

TEST_CASE("cost cache: the default path follows XDG_CACHE_HOME, then HOME", "[planner][cost]") {
    EnvGuard xdg("XDG_CACHE_HOME"), home("HOME");
    setenv("XDG_CACHE_HOME", "/somewhere/cache", 1);
    setenv("HOME", "/home/someone", 1);
    CHECK_THAT(default_cost_cache_path(), StartsWith("/somewhere/cache/powerinfer/cost-") && EndsWith(".txt"));
    setenv("XDG_CACHE_HOME", "relative/ignored", 1);  // the XDG spec: relative paths are invalid
    CHECK_THAT(default_cost_cache_path(), StartsWith("/home/someone/.cache/powerinfer/cost-"));
    unsetenv("XDG_CACHE_HOME");
    CHECK_THAT(default_cost_cache_path(), StartsWith("/home/someone/.cache/powerinfer/cost-"));
    unsetenv("HOME");
    CHECK(default_cost_cache_path().empty());
    // Without any cache location the probe still runs and its result is used.
    int measured = 0;
    CostCacheOptions options;
    options.measure_cpu_gbps = [&](int) { ++measured; return 5.0; };
    const ResolvedCosts r = resolve_costs(CostOverrides{}, options);
    CHECK(measured == 1);
    CHECK(r.cache_path.empty());
    CHECK(r.params.cpu_bandwidth == 5e9);
}

TEST_CASE("cost cache: the device's numbers are measured once per device name, pinned ones win", "[planner][cost]") {
    TempDir dir;
    int probes = 0;
    CostCacheOptions options;
    options.cache_path = dir.path + "/cost-host.txt";
    options.measure_cpu_gbps = [](int) { return 50.0; };
    options.gpu_name = "cuda.NVIDIA H100 80GB HBM3";
    options.measure_gpu = [&] {
        ++probes;
        GpuMeasurement m;
        m.bandwidth_gbps = 2500.0;
        m.launch_us = 3.0;
        m.transfer_latency_us = 15.0;
        m.transfer_gbps = 0.0;  // not measured: keeps its default
        return m;
    };
    const CostOverrides none;
    const ResolvedCosts first = resolve_costs(none, options);
    CHECK(probes == 1);
    CHECK(first.gpu_source == CostSource::measured);
    CHECK(first.params.gpu_bandwidth == 2500e9);
    CHECK(first.params.gpu_launch_s == Approx(3e-6));
    CHECK(first.params.d2h_latency_s == Approx(15e-6));
    CHECK(first.params.h2d_latency_s == Approx(15e-6));
    CHECK(first.params.h2d_bandwidth == CostParams{}.h2d_bandwidth);
    const auto entries = read_cost_cache(options.cache_path);
    CHECK(entries.at("gpu.cuda.NVIDIA_H100_80GB_HBM3.bandwidth_gbps") == 2500.0);
    CHECK(entries.count("gpu.cuda.NVIDIA_H100_80GB_HBM3.transfer_gbps") == 0);

    // An incomplete entry set is measured again; a complete one is read.
    resolve_costs(none, options);
    CHECK(probes == 2);
    options.measure_gpu = [&] {
        ++probes;
        GpuMeasurement m;
        m.bandwidth_gbps = 2600.0;
        m.launch_us = 2.5;
        m.transfer_latency_us = 12.0;
        m.transfer_gbps = 40.0;
        return m;
    };
    CHECK(resolve_costs(none, options).params.h2d_bandwidth == 40e9);
    CHECK(probes == 3);
    const ResolvedCosts cached = resolve_costs(none, options);
    CHECK(probes == 3);
    CHECK(cached.gpu_source == CostSource::cached);
    CHECK(cached.params.gpu_bandwidth == 2600e9);

    // A pinned field wins over the cache; everything pinned: no probe, no file read for the GPU.
    CostOverrides some;
    some.gpu_bandwidth_gbps = 1000.0;
    CHECK(resolve_costs(some, options).params.gpu_bandwidth == 1000e9);
    CHECK(resolve_costs(some, options).params.gpu_launch_s == Approx(2.5e-6));
    CostOverrides all;
    all.gpu_bandwidth_gbps = 1000.0;
    all.sync_us = 5.0;
    all.launch_us = 4.0;
    all.transfer_latency_us = 9.0;
    all.transfer_gbps = 30.0;
    all.cpu_bandwidth_gbps = 20.0;
    options.gpu_name = "cuda.another device";
    const ResolvedCosts pinned = resolve_costs(all, options);
    CHECK(probes == 3);
    CHECK(pinned.gpu_source == CostSource::pinned);
    CHECK(pinned.params.d2h_bandwidth == 30e9);

    // A probe that measures nothing leaves the defaults and writes nothing for that device.
    options.measure_gpu = [&] {
        ++probes;
        return GpuMeasurement{};
    };
    const ResolvedCosts failed = resolve_costs(none, options);
    CHECK(probes == 4);
    CHECK(failed.gpu_source == CostSource::default_value);
    CHECK(failed.params.gpu_bandwidth == CostParams{}.gpu_bandwidth);
}
