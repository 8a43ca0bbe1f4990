// The hybrid CPU || device executor (DESIGN §1): layers run where the model's placement put them. A CPU layer runs
// the CPU executor's kernels; a layer with attention on the device runs attention and the predictor there, and in a
// sparse decode step splits its FFN: the device's hot rows on the device while the CPU thread pool runs the cold
// active neurons, with one device-to-host and one host-to-device copy per layer. docs/HYBRID.md.
#pragma once

#include <memory>

#include "runtime/device_model.h"
#include "runtime/forward_pass.h"
#include "runtime/session.h"

namespace pi {

// Throws PI_ERR_OUT_OF_MEMORY when the session's device KV cache does not fit the reservation or the budget.
std::unique_ptr<ForwardPass> make_hybrid_forward(const Model &model, const SessionOptions &options,
                                                 const DeviceModel &device);

}  // namespace pi
