// A simulated GPU memory: it holds no bytes, it only accounts them. Every allocation and free is recorded; an
// allocation that would take the total past the capacity is refused with PI_ERR_OUT_OF_MEMORY (and counted), and
// the peak is kept, so a test can prove that the library never asks a device for more than the VRAM budget.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "planner/device_reservation.h"

namespace pi::sim {

class Device final : public planner::DeviceAllocator {
public:
    // alignment: every allocation is rounded up to it (a power of two; 256 like cudaMalloc).
    explicit Device(uint64_t capacity, uint64_t alignment = 256);

    uint64_t allocate(uint64_t bytes, const std::string &what) override;
    void release(uint64_t id) noexcept override;  // an unknown id is counted in bad_releases()
    uint64_t capacity() const override { return capacity_; }
    uint64_t used() const override { return used_; }
    uint64_t alignment() const override { return alignment_; }

    uint64_t peak() const { return peak_; }
    uint64_t n_live() const { return live_.size(); }
    uint64_t n_allocations() const { return n_allocations_; }  // successful ones, ever
    uint64_t n_refused() const { return n_refused_; }          // allocations that would have exceeded the capacity
    uint64_t bad_releases() const { return bad_releases_; }

private:
    uint64_t capacity_;
    uint64_t alignment_;
    uint64_t used_ = 0;
    uint64_t peak_ = 0;
    uint64_t next_id_ = 1;
    uint64_t n_allocations_ = 0;
    uint64_t n_refused_ = 0;
    uint64_t bad_releases_ = 0;
    std::map<uint64_t, uint64_t> live_;  // id -> bytes (rounded)
};

}  // namespace pi::sim
