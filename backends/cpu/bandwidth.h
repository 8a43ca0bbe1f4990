// Memory read bandwidth of this machine, measured in-process: the denominator of the decode roofline.
#pragma once

#include <cstddef>

#include "backends/cpu/cpu_features.h"

namespace pi::cpu {

class ThreadPool;

struct BandwidthOptions {
    size_t buffer_bytes = 0;  // 0: 8 x the last-level cache, at least 512 MiB
    int repeats = 5;          // the best of this many full passes is reported
};

// Reads a buffer much larger than the last-level cache with n_threads threads (each streams its own contiguous
// share with the widest loads the ISA level has) and returns the best rate in GB/s (1e9 bytes/s). Uses `pool` when
// given (n_threads is then pool->size()), else temporary threads. The buffer is allocated, touched once (so pages
// exist) and freed.
double measure_read_bandwidth(int n_threads, ThreadPool *pool = nullptr, IsaLevel isa = active_isa_level(),
                              const BandwidthOptions &options = {});

}  // namespace pi::cpu
