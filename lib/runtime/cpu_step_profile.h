// PI_CPU_PROFILE=1: where the CPU executor's decode steps go, part by part (DESIGN §8 asks benchmarks to say where the
// time goes), with the bytes each part read, so that each part's read speed can be set against the bandwidth probe
// (powerinfer-bench prints it). Printed to stderr when the session ends, as PI_HYBRID_PROFILE does for the hybrid
// executor. Off, it costs one branch per part; on, a clock read per part (~30 a layer, well under 1 % of a step).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pi {

class CpuStepProfile {
public:
    enum Part : unsigned {
        kQkv,        // the q, k, v projections (falcon: the fused one)
        kAttention,  // RoPE, the KV cache write and attention over the cache
        kOutProj,    // the attention output projection
        kPredictor,  // the activation predictor and its neuron selection
        kFfn,        // the FFN: sparse (active rows) or dense
        kGlue,       // norms, biases, residual adds
        kOutside,    // the token embedding, the output norm and the logits
        kPartCount
    };
    static const char *part_name(Part p);
    // Whether PI_CPU_PROFILE is set to something other than "" or "0" (read at each call; sessions read it once).
    static bool requested();

    using Clock = std::chrono::steady_clock;
    // A decode step starts: the clock for its first part starts.
    void begin_step() { last_ = Clock::now(); }
    // The time since the last mark (or begin_step) and `bytes` go to part p.
    void mark(Part p, uint64_t bytes = 0) {
        const Clock::time_point now = Clock::now();
        add(p, std::chrono::duration<double>(now - last_).count(), bytes);
        last_ = now;
    }
    // The step ends (after its last mark).
    void end_step() { ++steps_; }

    void add(Part p, double seconds, uint64_t bytes) {
        seconds_[p] += seconds;
        bytes_[p] += bytes;
    }
    uint64_t steps() const { return steps_; }
    double seconds(Part p) const { return seconds_[p]; }
    uint64_t bytes(Part p) const { return bytes_[p]; }

    // One line of totals and one line per part: milliseconds a step, share of the step, MB a step and GB/s (bytes
    // over time; "-" where a part read no weights or cache). Empty when no step was profiled.
    std::string report() const;

private:
    Clock::time_point last_{};
    double seconds_[kPartCount] = {};
    uint64_t bytes_[kPartCount] = {};
    uint64_t steps_ = 0;
};

}  // namespace pi
