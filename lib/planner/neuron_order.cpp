#include "planner/neuron_order.h"

#include <array>
#include <cstring>
#include <string>

#include "common/error.h"

namespace pi::planner {

namespace {

// For floats in [0, 1] the IEEE bit pattern orders like the value; its complement orders descending.
uint32_t descending_key(float f) {
    f += 0.0f;  // -0 becomes +0, so both rank as zero
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return ~bits;
}

float from_key(uint32_t key) {
    const uint32_t bits = ~key;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

constexpr int kDigitBits = 11;  // three passes over 32 bits (11 + 11 + 10) with 2048 counters each
constexpr uint32_t kDigitMask = (1u << kDigitBits) - 1;

}  // namespace

std::vector<float> sorted_hottest_first(const std::vector<float> &freq, uint32_t layer) {
    const size_t n = freq.size();
    std::vector<uint32_t> keys(n), tmp(n);
    std::array<std::array<uint32_t, 1u << kDigitBits>, 3> count{};
    for (size_t i = 0; i < n; ++i) {
        const float f = freq[i];
        if (!(f >= 0.0f && f <= 1.0f)) {
            fail(PI_ERR_INVALID_ARGUMENT, "planner: layer " + std::to_string(layer) + " neuron " + std::to_string(i) +
                                              ": activation frequency " + std::to_string(f) + " is not in [0, 1]");
        }
        const uint32_t k = descending_key(f);
        keys[i] = k;
        ++count[0][k & kDigitMask];
        ++count[1][(k >> kDigitBits) & kDigitMask];
        ++count[2][k >> (2 * kDigitBits)];
    }
    // Stable counting passes, low digit first. A digit shared by all keys leaves the order as it is: skipped.
    for (int pass = 0; pass < 3; ++pass) {
        const int shift = pass * kDigitBits;
        std::array<uint32_t, 1u << kDigitBits> &c = count[pass];
        if (n == 0 || c[(keys[0] >> shift) & kDigitMask] == n) continue;
        uint32_t sum = 0;
        for (uint32_t &x : c) {
            const uint32_t here = x;
            x = sum;
            sum += here;
        }
        for (size_t i = 0; i < n; ++i) tmp[c[(keys[i] >> shift) & kDigitMask]++] = keys[i];
        keys.swap(tmp);
    }
    std::vector<float> sorted(n);
    for (size_t i = 0; i < n; ++i) sorted[i] = from_key(keys[i]);
    return sorted;
}

std::vector<uint32_t> hottest_neurons(const std::vector<float> &freq, const std::vector<float> &sorted, uint32_t count) {
    std::vector<uint32_t> list;
    if (count == 0) return list;
    list.reserve(count);
    const float threshold = sorted[count - 1];
    uint32_t above = 0;
    for (float f : freq) above += f > threshold;
    uint32_t at_threshold = count - above;  // how many neurons equal to the threshold still go to the GPU
    for (uint32_t i = 0; i < freq.size(); ++i) {
        if (freq[i] > threshold) {
            list.push_back(i);
        } else if (freq[i] == threshold && at_threshold > 0) {
            list.push_back(i);
            --at_threshold;
        }
    }
    return list;
}

}  // namespace pi::planner
