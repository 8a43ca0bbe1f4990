// The readable forward pass: one token at a time, scalar float code, every architecture, top to bottom like
// llama2.c's forward(). It is the engine's baseline on the CPU and the executor the optimized paths are tested
// against. Dense sessions compute every FFN neuron; sparse ones run the predictors for every token and leave out the
// inactive neurons (no activation rounding: the float semantics of the numpy reference's act_quant=None).
#pragma once

#include <memory>

#include "runtime/forward_pass.h"

namespace pi {

std::unique_ptr<ForwardPass> make_reference_forward(const Model &model, const SessionOptions &options);

}  // namespace pi
