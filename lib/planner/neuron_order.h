// Ranks a layer's neurons hottest first: the k neurons a layer puts on the GPU are always its k most frequent ones
// (equal frequencies: the lower index first).
#pragma once

#include <cstdint>
#include <vector>

namespace pi::planner {

// The frequencies sorted descending. Throws pi::Error(PI_ERR_INVALID_ARGUMENT) naming `layer` and the neuron if a
// frequency is NaN or outside [0, 1]. A radix sort on the float bits (linear time): planning an 80-layer model with
// 28672 neurons per layer sorts 2.3 million values, where a comparison sort alone would take tens of milliseconds.
// Only values are sorted: the solver needs group sums, which do not depend on which of equal values is where.
std::vector<float> sorted_hottest_first(const std::vector<float> &freq, uint32_t layer);

// The `count` most frequent neurons in ascending index (ties: lower index), given the sorted values above: every
// neuron above the count-th value, then as many at that value as are missing, lowest index first. O(n_ff).
std::vector<uint32_t> hottest_neurons(const std::vector<float> &freq, const std::vector<float> &sorted, uint32_t count);

}  // namespace pi::planner
