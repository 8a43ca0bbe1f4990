// PI_CUDA_PROFILE=1: GPU time per operation of the table, for finding where a decode step's time goes (DESIGN §8:
// benchmarks say where the time goes). Each wrapped call records a timing event before and after its work on the
// queue's stream; at each queue_synchronize the finished pairs are summed per name, and queue_free prints the table
// to stderr. The events themselves cost about a microsecond of GPU time per call, so absolute step times measured
// with profiling on are a little slower; the split between operations is what it is for. Off: one branch per call.
#pragma once

#include <cstdint>
#include <string>

#include "backends/backend.h"

struct pi_bk_queue;

namespace pi::cuda {

bool op_profile_enabled();
// The table handed out: `ops` itself, or a copy whose queue operations are wrapped in timers when profiling is on.
const pi_backend_ops *profiled_table(const pi_backend_ops *ops);

// Called by memory.cu: after a completed stream synchronization (sums the finished events) and before a queue goes
// (prints its table).
void op_profile_collect(pi_bk_queue *queue);
void op_profile_release(pi_bk_queue *queue);

}  // namespace pi::cuda
