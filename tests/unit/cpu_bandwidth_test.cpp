// The memory bandwidth probe runs on every level and returns a plausible rate.
#include "backends/cpu/bandwidth.h"
#include "backends/cpu/thread_pool.h"
#include "cpu_test_helpers.h"

using namespace pi::cpu;

TEST_CASE("measure_read_bandwidth returns a positive rate on every level", "[cpu]") {
    BandwidthOptions opt;
    opt.buffer_bytes = 16u << 20;  // small: this checks the mechanics, the benchmark measures
    opt.repeats = 2;
    ThreadPool pool(2);
    for (IsaLevel level : cpu_test::available_levels()) {
        const double one = measure_read_bandwidth(1, nullptr, level, opt);
        const double two = measure_read_bandwidth(2, &pool, level, opt);
        INFO(isa_level_name(level) << ": " << one << " / " << two << " GB/s");
        CHECK(one > 0.1);
        CHECK(two > 0.1);
        CHECK(one < 10000.0);
    }
}
