#include "runtime/forward_pass.h"

namespace pi {

std::unique_ptr<ForwardPass> make_forward_pass(const Model &, const SessionOptions &) {
    // No executor is built yet (the CPU forward pass arrives with the dense-inference work); sessions report
    // PI_ERR_UNSUPPORTED from calls that need one.
    return nullptr;
}

}  // namespace pi
