#include "runtime/forward_pass.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "runtime/cpu_forward.h"
#include "runtime/hybrid_forward.h"
#include "runtime/reference_forward.h"
#include "runtime/session.h"

namespace pi {

SparseSettings sparse_settings(const Model &model, const SessionOptions &options) {
    SparseSettings s;
    s.sparse = options.sparse == SparseMode::On || (options.sparse == SparseMode::Auto && model.is_sparse());
    s.profile = options.profile_activations;
    s.threshold = std::isnan(options.sparse_threshold) ? model.sparse_threshold() : options.sparse_threshold;
    if (s.keeps_stats() && !model.is_sparse()) {
        fail(PI_ERR_INVALID_ARGUMENT, "sparse execution and activation profiling need a model with activation "
                                      "predictors (fc1/fc2 tensors); this one has none");
    }
    return s;
}

std::unique_ptr<ForwardPass> make_forward_pass(const Model &model, const SessionOptions &options) {
    // PI_EXECUTOR=reference selects the readable scalar executor (tests compare the two; DESIGN §8).
    const char *forced = std::getenv("PI_EXECUTOR");
    const std::string which = forced ? forced : "cpu";
    if (which == "reference") return make_reference_forward(model, options);
    if (which != "cpu") fail(PI_ERR_INVALID_ARGUMENT, "PI_EXECUTOR='" + which + "' is not 'cpu' or 'reference'");
    // A model with a device share runs the hybrid executor (CPU layers inside it run the CPU executor's kernels).
    if (const DeviceModel *device = model.device()) return make_hybrid_forward(model, options, *device);
    return make_cpu_forward(model, options);
}

}  // namespace pi
