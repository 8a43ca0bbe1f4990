// The CPU executor: SIMD matrix-vector kernels on a thread pool for decode, GEMM (oneDNN) for prefill. Dense
// semantics (every FFN neuron); tested against reference_forward and the numpy reference.
#pragma once

#include <memory>

#include "runtime/forward_pass.h"
#include "runtime/session.h"

namespace pi {

std::unique_ptr<ForwardPass> make_cpu_forward(const Model &model, const SessionOptions &options);

}  // namespace pi
