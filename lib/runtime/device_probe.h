// The planner's GPU cost parameters measured on the real device at load (DESIGN §6, issue 6): a few tens of
// milliseconds of work through the backend table, done once per device and host (the results go to the cost cache).
#pragma once

#include "backends/backend.h"
#include "planner/cost_cache.h"

namespace pi {

// Measures, on the device of `ctx`:
//   - bandwidth: F16 matrix-vector products over a 64 MiB matrix (the decode step's dominant operation);
//   - launch: host time per enqueued small operation (what the host spends per kernel of a step);
//   - transfer latency: a 4-byte copy to pinned host memory and the wait for it;
//   - transfer bandwidth: a 64 MiB pinned host-to-device copy.
// Never throws: a failure (no memory, an error of the backend) leaves the affected numbers at 0, which the cost
// cache treats as "not measured" (defaults).
planner::GpuMeasurement probe_device(const pi_backend_ops *ops, pi_bk_context *ctx);

}  // namespace pi
