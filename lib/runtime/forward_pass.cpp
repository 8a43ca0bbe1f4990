#include "runtime/forward_pass.h"

#include "runtime/reference_forward.h"
#include "runtime/session.h"

namespace pi {

std::unique_ptr<ForwardPass> make_forward_pass(const Model &model, const SessionOptions &options) {
    // The readable scalar executor runs every architecture; the optimized CPU executor replaces it here.
    return make_reference_forward(model, options.n_ctx, options.kv_type);
}

}  // namespace pi
