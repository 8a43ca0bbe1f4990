#include "runtime/forward_pass.h"

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "runtime/cpu_forward.h"
#include "runtime/reference_forward.h"
#include "runtime/session.h"

namespace pi {

std::unique_ptr<ForwardPass> make_forward_pass(const Model &model, const SessionOptions &options) {
    // PI_EXECUTOR=reference selects the readable scalar executor (tests compare the two; DESIGN §8).
    const char *forced = std::getenv("PI_EXECUTOR");
    const std::string which = forced ? forced : "cpu";
    if (which == "reference") return make_reference_forward(model, options.n_ctx, options.kv_type);
    if (which != "cpu") fail(PI_ERR_INVALID_ARGUMENT, "PI_EXECUTOR='" + which + "' is not 'cpu' or 'reference'");
    return make_cpu_forward(model, options);
}

}  // namespace pi
