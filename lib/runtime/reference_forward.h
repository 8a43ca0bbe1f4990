// The readable forward pass: one token at a time, scalar float code, every architecture, top to bottom like
// llama2.c's forward(). It is the engine's baseline on the CPU and the executor the optimized paths are tested
// against. Dense semantics: every FFN neuron is computed.
#pragma once

#include <memory>

#include "runtime/forward_pass.h"

namespace pi {

std::unique_ptr<ForwardPass> make_reference_forward(const Model &model, uint32_t n_ctx, KvType kv_type);

}  // namespace pi
