#include "backends/sim/sim_device.h"

#include <algorithm>

#include "common/error.h"

namespace pi::sim {

Device::Device(uint64_t capacity, uint64_t alignment) : capacity_(capacity), alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        fail(PI_ERR_INVALID_ARGUMENT, "sim::Device: alignment " + std::to_string(alignment) + " is not a power of two");
    }
}

uint64_t Device::allocate(uint64_t bytes, const std::string &what) {
    // Rounded without overflow: a request near 2^64 is simply too large.
    const uint64_t rounded = bytes > UINT64_MAX - alignment_ ? UINT64_MAX : planner::align_up(bytes, alignment_);
    const uint64_t left = capacity_ - used_;
    if (rounded > left) {
        ++n_refused_;
        fail(PI_ERR_OUT_OF_MEMORY, "simulated device: cannot allocate " + std::to_string(rounded) + " bytes for " +
                                       what + ": " + std::to_string(left) + " of " + std::to_string(capacity_) +
                                       " bytes are free");
    }
    used_ += rounded;
    peak_ = std::max(peak_, used_);
    ++n_allocations_;
    live_[next_id_] = rounded;
    return next_id_++;
}

void Device::release(uint64_t id) noexcept {
    auto it = live_.find(id);
    if (it == live_.end()) {
        ++bad_releases_;
        return;
    }
    used_ -= it->second;
    live_.erase(it);
}

}  // namespace pi::sim
