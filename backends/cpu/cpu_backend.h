// The CPU backend as a backends/backend.h table, the same contract the GPU modules implement. It is the reference
// of the conformance suite (tests/conformance/) and the CPU side of the hybrid executor's interface; the CPU-only
// executor (lib/runtime/cpu_forward.cpp) calls the same kernels directly.
//
// On the CPU "device" memory is host memory, every queue runs each operation to completion before the call returns,
// and events are always complete. A context owns a thread pool (pi_bk_context_params::n_threads) and runs the
// kernels of one ISA level (isa_level); one queue of a context is used by one thread at a time.
#pragma once

#include "backends/backend.h"

namespace pi::cpu {

const pi_backend_ops *cpu_backend_ops();

}  // namespace pi::cpu
